package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"

	"github.com/mfagate/mfagate/challengeui"
)

// The admin page's success notices. An action redirects to the page
// (post/redirect/get) with what it did in the query, landing on #notice at
// the top of the page, so the notice is in view without script. What it
// did to whom (the member, a signed-out session's device) is signed with
// the admin's session: a crafted link names nobody, and the page names
// only a member it knows. Everything else the notice says (the policy, the
// timeout, the mode) is read from the gateway when the page is built.

// adminNotice is what one admin action tells the admin.
type adminNotice struct {
	Done   string // policy, timeout, reset, unlock, revoked, identity
	User   string // the member it was done to ("" for the settings)
	Device string // revoked: the session's device, e.g. "Chrome on Linux"
	Mailed bool   // reset: the member was emailed
}

// noticeAnchor is the id of the notice on the admin page.
const noticeAnchor = "notice"

// noticeURL is where an action redirects: done first, so the URL reads
// as what happened.
func (site *Site) noticeURL(c *call, n adminNotice) string {
	return site.cfg.Prefix + "admin?" + n.query(site.noticeKey(c)) + "#" + noticeAnchor
}

// noticeKey signs notices for one session: its CSRF token, a secret of the
// session that a page of another site cannot read.
func (site *Site) noticeKey(c *call) string { return site.svc.CSRFToken(c.sess()) }

func (n adminNotice) query(key string) string {
	q := n.subject()
	if n.User != "" {
		q += "&sig=" + sign(key, q)
	}
	return q
}

// subject is the query without the signature, the text the signature covers.
func (n adminNotice) subject() string {
	q := "done=" + url.QueryEscape(n.Done)
	if n.User != "" {
		q += "&user=" + url.QueryEscape(n.User)
		if n.Device != "" {
			q += "&device=" + url.QueryEscape(n.Device)
		}
		if n.Mailed {
			q += "&mailed=1"
		}
	}
	return q
}

func sign(key, subject string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("admin-notice?" + subject))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// readNotice is the notice in a query. A subject without a valid signature
// is dropped (so is everything without a key): the notice then says what
// happened, not to whom.
func readNotice(q url.Values, key string) adminNotice {
	n := adminNotice{Done: q.Get("done"), User: q.Get("user"), Device: q.Get("device"), Mailed: q.Get("mailed") == "1"}
	if n.User == "" || key == "" || !hmac.Equal([]byte(q.Get("sig")), []byte(sign(key, n.subject()))) {
		return adminNotice{Done: n.Done}
	}
	return n
}

// noticeText says what happened to whom, in the page's words, from the
// page as built: a subject that is not one of its members is not named.
func noticeText(n adminNotice, p challengeui.AdminPage) string {
	who := ""
	for _, m := range p.Members {
		if m.User == n.User && n.User != "" {
			who = m.User
			break
		}
	}
	switch n.Done {
	case "policy":
		if p.Policy.Require2FA {
			return "Team policy: 2FA now required for everyone" + inScope(p.Policy.Scope) + "."
		}
		return "Team policy: 2FA no longer required" + inScope(p.Policy.Scope) + "."
	case "remember":
		if p.Policy.RememberAllowed {
			return "Members may now tick \"Remember this browser\"" + inScope(p.Policy.Scope) + "."
		}
		return "\"Remember this browser\" is now off" + inScope(p.Policy.Scope) + ": every sign-in asks for the second factor."
	case "alerts":
		if p.Policy.LoginAlerts {
			return "New-login alerts are on" + inScope(p.Policy.Scope) + ": members are emailed when they sign in from a new browser."
		}
		return "New-login alerts are off" + inScope(p.Policy.Scope) + "."
	case "timeout":
		return "Session timeout: now " + strconv.Itoa(p.Policy.IdleMinutes) + " minutes" + inScope(p.Policy.Scope) + "."
	case "reset":
		switch {
		case who == "":
			return "Two-factor authentication was reset."
		case n.Mailed:
			return "2FA reset for " + who + " — they were emailed."
		case !p.EmailConfigured:
			return "2FA reset for " + who + " — no email is configured, so tell them yourself."
		}
		return "2FA reset for " + who + " — no email address is known for them, so tell them yourself."
	case "method-removed":
		switch {
		case who == "":
			return "The method was removed."
		case n.Mailed:
			return "Method removed for " + who + " — they were emailed and set up their own replacement."
		}
		return "Method removed for " + who + " — tell them to set up a replacement when they next sign in."
	case "unlock":
		if who == "" {
			return "The authenticator was unlocked."
		}
		return "Authenticator unlocked for " + who + "."
	case "revoked":
		switch {
		case who == "":
			return "Session signed out."
		case n.Device == "":
			return "Signed out " + who + "'s session."
		}
		return "Signed out " + who + "'s session (" + n.Device + ")."
	case "identity":
		if p.Identity != nil {
			return "Identity verification: now " + modeWords[p.Identity.Mode] + "."
		}
		return "Identity verification mode saved."
	}
	return ""
}

var modeWords = map[string]string{"off": "Off", "monitor": "Monitor", "enforce": "Enforce"}

func inScope(scope string) string {
	if scope == "" {
		return ""
	}
	return " in " + scope
}
