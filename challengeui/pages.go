package challengeui

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"time"
)

// Page is one renderable page. It is implemented only by the page structs of
// this package (ChallengePage, RecoveryPage, SecurityPage, AdminPage,
// ErrorPage), by value or by pointer.
type Page interface{ pageName() string }

// Base holds the fields every page shares.
type Base struct {
	CSRF    string // token for the hidden csrf field of every form
	User    string // signed-in app user id ("" when unknown)
	Title   string // optional override of the page's default title
	IsAdmin bool   // the user is a team admin: the header links to the admin page
}

func (b Base) base() Base { return b }

// ChallengePage asks for the 6-digit code: from the authenticator app, or
// sent by email or text message.
type ChallengePage struct {
	Base
	Account string // who is signing in: "Signing in as …", with "Not you?"
	Next    string // validated same-origin path to return to
	Method  string // "totp" (or ""), "email" or "sms"
	SentTo  string // for email and sms: where the code went, masked
	Notice  string
	Error   string
	Others  []MethodChoice // "Use a different method"
	// RememberDays offers "Remember this browser for N days"; 0 hides it.
	RememberDays int
}

// MethodChoice is another way to answer the challenge.
type MethodChoice struct {
	Method string
	Label  string
	Href   string
}

// RecoveryPage asks for a single-use recovery code instead of a TOTP code.
type RecoveryPage struct {
	Base
	Account string
	Next    string
	Error   string
}

// SecurityPage is the account security page: 2FA status, enrolment, recovery
// codes and disable. When Codes is set the recovery-codes dialog is shown; else
// when Setup is set the setup dialog is shown. The codes dialog wins if both are
// set, as it is the later step.
type SecurityPage struct {
	Base
	Enrolled          bool // an authenticator app is set up
	Required          bool // the team requires 2FA
	MustEnrol         bool // the user is blocked from the app until enrolled
	CanDisable        bool // the session passed a second factor in this sign-in (AAL2)
	RecoveryRemaining int
	Next              string
	Notice, Error     string
	Setup             *SetupView     // the setup dialog
	Change            *SetupView     // the "change authenticator app" dialog
	Confirm           *ConfirmView   // the dialog asking for a current code before a change
	SentMethods       []MethodView   // codes by email or text message: held, or offered to set up
	Verify            *VerifyView    // the dialog asking for the code sent to a new destination
	Devices           []DeviceView   // remembered browsers; none hides the card
	Addresses         *AddressesView // "only from new addresses"; nil without a method
	Proof             *ProofView     // the dialog proving the email address before a first factor
	Codes             []string
	CodesError        string
	DownloadHref      template.URL  // data: URI built with DownloadURL
	Sessions          []SessionView // the user's active sessions; none hides the card
}

// SessionView is one active gateway session, on the security page (the user's
// own) and on the admin page (everyone's).
type SessionView struct {
	ID         string    // opaque handle for the revoke forms; never the session token
	User       string    // app user id the session belongs to
	Device     string    // summarised user agent, e.g. "Chrome on Linux"; see useragent.Describe
	Address    string    // client address the session was last seen from
	Started    time.Time // sign-in time
	LastActive time.Time
	AAL        int  // 2: the second factor was passed in this sign-in; else password only
	Pending    bool // a sign-in waiting for its second factor: the password alone, not signed in yet
	Current    bool // the session this page is rendered for; it has no Sign out button
}

// modal reports whether a dialog is open, making the rest of the page inert.
func (p SecurityPage) modal() bool {
	return p.Setup != nil || p.Change != nil || p.Confirm != nil || p.Verify != nil || p.Proof != nil || len(p.Codes) > 0
}

// ConfirmView asks for fresh proof, a current authenticator or recovery
// code (or one sent for the purpose), before a change that weakens or
// resets the second factor.
type ConfirmView struct {
	Action string         // "disable", "regenerate", or "remove-email", "remove-sms", "remove-totp"
	Send   []MethodChoice // methods that can send a code to confirm with
	Notice string
	Error  string
}

// MethodView is one way of getting codes, on the security page.
type MethodView struct {
	Method  string // "email" or "sms"
	Held    bool
	SentTo  string // masked destination, when held
	Primary bool
	Allowed bool // the user may set it up here
}

// ProofView asks for the code sent to the user's email address before the
// first factor can be set up.
type ProofView struct {
	SentTo string
	Notice string
	Error  string
}

// AddressesView is the user's choice to be asked for the second factor
// only from new addresses, and the addresses they passed it from.
type AddressesView struct {
	On      bool
	Current string // this request's address
	Known   []KnownAddress
}

// KnownAddress is an address the user passed a challenge from.
type KnownAddress struct {
	Address  string
	LastUsed time.Time
}

// DeviceView is a remembered browser on the security page.
type DeviceView struct {
	ID       string // the handle "Forget" posts
	Device   string // "Chrome on Linux"
	Address  string
	LastUsed time.Time
	Expires  time.Time
}

// VerifyView asks for the code sent to a destination being set up.
type VerifyView struct {
	Method      string
	SentTo      string
	Destination string // as the user typed it, for "Send again"
	Error       string
}

// SetupView is the content of the setup dialog.
type SetupView struct {
	Secret     string       // base32 TOTP secret, for typing by hand
	OTPAuthURI template.URL // otpauth://totp/… link for phones
	QRDataURI  template.URL // data:image/png;base64,… of the QR code
	Error      string       // error about the confirmation code
}

// ErrorPage is a plain page with a message and an optional link, for example
// back to the app's sign-in.
type ErrorPage struct {
	Base
	Status   int
	Message  string
	Href     string
	LinkText string
}

func (ChallengePage) pageName() string { return "challenge" }
func (RecoveryPage) pageName() string  { return "recovery" }
func (SecurityPage) pageName() string  { return "security" }
func (AdminPage) pageName() string     { return "admin" }
func (ErrorPage) pageName() string     { return "error" }

// DownloadURL returns a base64 data URI of a UTF-8 text file, for the
// recovery codes' Download link. Base64 keeps newlines and any character safe
// inside the href; the img-src CSP does not apply to downloads.
func DownloadURL(text string) template.URL {
	return template.URL("data:text/plain;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(text)))
}

// defaultTitle is the title a page gets when Base.Title is empty.
func defaultTitle(p Page) string {
	switch v := p.(type) {
	case ChallengePage, *ChallengePage:
		return "Two-factor authentication"
	case RecoveryPage, *RecoveryPage:
		return "Use a recovery code"
	case SecurityPage, *SecurityPage:
		return "Security"
	case AdminPage, *AdminPage:
		return "Team security"
	case ErrorPage:
		return errorTitle(v.Status)
	case *ErrorPage:
		return errorTitle(v.Status)
	}
	return ""
}

func errorTitle(status int) string {
	if t := http.StatusText(status); t != "" && status >= 400 {
		return t
	}
	return "Something went wrong"
}
