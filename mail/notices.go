package mail

import (
	"strconv"
	"strings"
	"time"
)

// The notices the gateway sends. They are plain and short, hold no link
// unless the operator configured one, and never a secret: no code, no
// recovery code, no reset token. Each names the account (issuer and user)
// so the reader can tell which of their accounts it is about. To is left
// empty for the caller (see Address).

// EnforcementNotice tells user that an administrator now requires 2FA.
// securityURL, if not empty, is where to set it up.
func EnforcementNotice(issuer, user, securityURL string) Message {
	issuer, user, securityURL = clean(issuer), clean(user), clean(securityURL)
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("Your administrator now requires two-factor authentication for " + account(issuer) + ".\n\n")
	b.WriteString("Nothing changes for the session you have open now. The next time you sign in, you will be asked to set up an authenticator app: scan a QR code and type the code it shows. It takes about a minute.\n\n")
	if securityURL != "" {
		b.WriteString("You can also set it up now, while signed in:\n" + securityURL + "\n\n")
	}
	b.WriteString("Sessions that still have no two-factor authentication will be signed out after a grace period, so it is best to set it up soon.\n\n")
	b.WriteString(closing(issuer))
	return Message{
		Subject: "Two-factor authentication is now required" + forIssuer(issuer),
		Text:    b.String(),
	}
}

// ResetNotice tells user that an administrator (by, if known) reset their
// 2FA.
func ResetNotice(issuer, user, by string) Message {
	issuer, user, by = clean(issuer), clean(user), clean(by)
	who := "an administrator"
	if by != "" {
		who = "an administrator (" + by + ")"
	}
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("Your two-factor authentication for " + account(issuer) + " was reset by " + who + ".\n\n")
	b.WriteString("This means your authenticator app and your recovery codes no longer work for this account, and you have been signed out everywhere. ")
	b.WriteString("The next time you sign in, you will be asked to set up two-factor authentication again. You can remove the old entry from your authenticator app.\n\n")
	b.WriteString("If you did not ask for this, contact your administrator right away: someone may be trying to get into your account.\n\n")
	b.WriteString(closing(issuer))
	return Message{
		Subject: "Your two-factor authentication was reset by an administrator",
		Text:    b.String(),
	}
}

// ForcedLogoutNotice tells user their sessions were ended because 2FA is
// required and the grace period has passed.
func ForcedLogoutNotice(issuer, user string) Message {
	issuer, user = clean(issuer), clean(user)
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("Your administrator requires two-factor authentication for " + account(issuer) + ", and the grace period for setting it up has passed, so you have been signed out on all your devices.\n\n")
	b.WriteString("Sign in again and you will be asked to set up an authenticator app before you continue. Nothing else about your account has changed.\n\n")
	b.WriteString("If you have questions, contact your administrator.\n\n")
	b.WriteString(closing(issuer))
	return Message{
		Subject: "You have been signed out: two-factor authentication is required" + forIssuer(issuer),
		Text:    b.String(),
	}
}

func greeting(user string) string {
	if user == "" {
		return "Hello,\n\n"
	}
	return "Hello " + user + ",\n\n"
}

func account(issuer string) string {
	if issuer == "" {
		return "your account"
	}
	return "your " + issuer + " account"
}

func forIssuer(issuer string) string {
	if issuer == "" {
		return ""
	}
	return " for " + issuer
}

func closing(issuer string) string {
	if issuer == "" {
		return "This is an automatic message; replies are not read.\n"
	}
	return "This is an automatic message from " + issuer + "; replies are not read.\n"
}

// clean makes a value safe to place in a subject or a line of text:
// control characters (CR and LF above all, which would otherwise break the
// subject header) become spaces, and runs of space collapse.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// FactorLockedNotice tells user their authenticator was locked after n wrong
// codes in a row.
func FactorLockedNotice(issuer, user string, n int) Message {
	issuer, user = clean(issuer), clean(user)
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("Someone entered " + strconv.Itoa(n) + " wrong authenticator codes in a row while signing in to " + account(issuer) + ", so your authenticator has been locked. To get that far, they needed your password.\n\n")
	b.WriteString("To sign in, use one of your recovery codes, or ask your administrator to unlock your authenticator. ")
	b.WriteString("If these attempts were not yours, change your password now and tell your administrator.\n\n")
	b.WriteString(closing(issuer))
	return Message{
		Subject: "Your authenticator was locked after too many wrong codes",
		Text:    b.String(),
	}
}

// CodeMessage carries a one-time code: for signing in, or (enrol) to prove
// the address for sign-in codes. ttl is how long it works.
func CodeMessage(issuer, user, code string, enrol bool, ttl time.Duration) Message {
	issuer, user = clean(issuer), clean(user)
	var b strings.Builder
	b.WriteString(greeting(user))
	if enrol {
		b.WriteString("Enter this code to confirm that sign-in codes for " + account(issuer) + " may be sent to this address:\n\n")
	} else {
		b.WriteString("Enter this code to finish signing in to " + account(issuer) + ":\n\n")
	}
	b.WriteString("    " + code + "\n\n")
	b.WriteString("It works once, for " + strconv.Itoa(int(ttl/time.Minute)) + " minutes. Never share it with anyone.\n\n")
	b.WriteString("If you did not just try to sign in, someone has your password: change it now and tell your administrator.\n\n")
	b.WriteString(closing(issuer))
	subject := "Your sign-in code"
	if enrol {
		subject = "Confirm your email for sign-in codes"
	}
	return Message{Subject: subject, Text: b.String()}
}

// MethodRemovedNotice tells user an admin (by) removed one of their ways of
// getting sign-in codes; last reports it was their only one.
func MethodRemovedNotice(issuer, user, by, method string, last bool) Message {
	issuer, user, by = clean(issuer), clean(user), clean(by)
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("An administrator" + fromBy(by) + " removed " + clean(method) + " from the two-factor authentication of " + account(issuer) + ".\n\n")
	if last {
		b.WriteString("It was your only way of getting codes, so two-factor authentication is off and you were signed out. When you next sign in, set it up again.\n\n")
	} else {
		b.WriteString("Your other ways of getting codes still work. Set up a replacement on your security page when you next sign in.\n\n")
	}
	b.WriteString("If you did not ask for this, tell your administrator.\n\n")
	b.WriteString(closing(issuer))
	return Message{Subject: "A way of getting sign-in codes was removed", Text: b.String()}
}

func fromBy(by string) string {
	if by == "" {
		return ""
	}
	return " (" + by + ")"
}

// NewLoginNotice tells user they signed in from a browser they had not used
// before: when, on what (browser, a summary such as "Firefox on macOS"), from
// where, and where to see their sessions.
func NewLoginNotice(issuer, user string, when time.Time, browser, address, sessionsURL string) Message {
	issuer, user = clean(issuer), clean(user)
	var b strings.Builder
	b.WriteString(greeting(user))
	b.WriteString("Someone signed in to " + account(issuer) + " from a browser you have not used before:\n\n")
	b.WriteString("    When:     " + when.UTC().Format("2 Jan 2006, 15:04 UTC") + "\n")
	b.WriteString("    Browser:  " + clean(browser) + "\n")
	b.WriteString("    Address:  " + clean(address) + "\n\n")
	b.WriteString("If it was you, there is nothing to do. If not, sign that session out and change your password now:\n\n")
	b.WriteString("    " + clean(sessionsURL) + "\n\n")
	b.WriteString(closing(issuer))
	return Message{Subject: "New sign-in to your account", Text: b.String()}
}
