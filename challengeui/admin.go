package challengeui

import (
	"net/url"
	"time"
)

// AdminPage is the team admin page ("Team security", Prefix+"admin"): the
// 2FA policy and session timeout of one scope, the members and their 2FA
// status, everyone's active sessions, the audit log and, when the site has
// widget traffic, identity verification. Each section is a card with an
// anchor (#policy, #members, #sessions, #audit, #identity) so a handler can
// redirect back to the section a form came from.
//
// Forms (all POST, all with the csrf field):
//
//	Prefix+"admin/policy"              scope, require_2fa ("on" when checked)
//	Prefix+"admin/timeout"             scope, minutes (5..1440)
//	Prefix+"admin/reset"               user
//	Prefix+"admin/sessions/revoke"     session (SessionView.ID)
//	Prefix+"admin/identity/secret"     (nothing else)
//	Prefix+"admin/identity/mode"       mode (off, monitor or enforce)
//	Prefix+"admin/doctor"              user, password, wrong_password (optional)
//
// The audit filter is a GET form to Prefix+"admin" with user and type; the
// "Older events" link adds before=AuditView.Next.
type AdminPage struct {
	Base
	Notice, Error   string
	Policy          PolicyView
	Members         []MemberView
	Sessions        []SessionView // everyone's active sessions, each with a Sign out button except the current one
	Audit           AuditView
	Identity        *IdentityView // nil hides the identity verification section
	EmailConfigured bool          // false: the policy and reset texts say users won't be emailed
	Doctor          *DoctorView   // nil hides "Check this configuration" (#doctor)
}

// DoctorView is "Check this configuration": a form for a test account of
// the app, and the report of the check just run. It never holds a password:
// the form's password fields are always empty.
type DoctorView struct {
	User   string        // the test account just checked with, put back in the form
	Error  string        // why the check was refused or could not be made
	Result *DoctorResult // the report of the check just run; nil: none
}

// DoctorResult is a check's report.
type DoctorResult struct {
	Verdict   string // "safe", "safe with warnings" or "unsafe"
	Level     int    // 0 safe, 1 safe with warnings, 2 unsafe
	Requests  int    // requests sent to the app
	Findings  []DoctorFinding
	Exchanges []DoctorExchange
}

// DoctorFinding is one finding of a check.
type DoctorFinding struct {
	Severity         string // ok, info, warn or fail
	Topic, Text, Fix string
	Where            string // the line or directive to change; "" for none
}

// Problems counts the findings to act on (warn and fail).
func (r DoctorResult) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == "warn" || f.Severity == "fail" {
			n++
		}
	}
	return n
}

// DoctorExchange is one request a check sent, credentials hidden.
type DoctorExchange struct {
	Label, Request string
	Status         int
	Location       string
	Cookies        []string
}

// PolicyView is the "Require 2FA" switch and the session timeout of one scope.
type PolicyView struct {
	Scope       string    // "" = the site's only scope; otherwise its name (e.g. "agents"), shown in the heading and posted back
	Require2FA  bool      // every member must use 2FA
	Since       time.Time // when enforcement was switched on (zero if off)
	GraceDays   int       // unenrolled sessions that predate enforcement are signed out after this many days
	GraceEnds   time.Time // when that happens (zero if off)
	IdleMinutes int       // session timeout, 5..1440
	Unenrolled  int       // how many members have no 2FA yet
	// RememberDays is how long "remember this browser" lasts here (0: the
	// block does not offer it); RememberAllowed is the team's switch.
	RememberDays    int
	RememberAllowed bool
	LoginAlerts     bool   // members are emailed when they sign in from a new browser
	Error           string // a rejected policy or timeout change, e.g. a timeout out of range
}

// MemberView is one row of the members table: a user the gateway has seen.
type MemberView struct {
	User       string
	Email      string         // "" when unknown
	Enrolled   bool           // has a second factor
	Method     string         // the primary method for people: "Authenticator app", "Recovery codes only", "—"
	Methods    []MethodChoice // every method held, for "Remove"
	LastSignIn time.Time      // zero: never seen signing in
	Sessions   int            // active sessions
	Admin      bool
	Locked     bool // the authenticator is locked after too many wrong codes
}

// AuditView is one page of the audit log with its filters.
type AuditView struct {
	Events      []AuditRow // newest first
	User, Type  string     // current filters, echoed into the filter form
	Types       []string   // event types offered in the filter's select
	Next        string     // cursor for the "Older events" link; "" hides it
	ExportJSONL string     // href of the JSON Lines export, built by the caller
	ExportCSV   string     // href of the CSV export, built by the caller
}

// AuditRow is one security event. It never holds a secret or a code.
type AuditRow struct {
	Time                                             time.Time
	Type, Actor, Subject, Address, UserAgent, Detail string
}

// IdentityView is the widget identity verification section.
type IdentityView struct {
	Mode           string       // "off", "monitor" or "enforce"
	HasSecret      bool         // an identity secret exists
	NewSecret      string       // the secret just generated, shown once; "" otherwise
	SecretCreated  time.Time    // when the current secret was generated
	PrevUntil      time.Time    // after a rotation: the previous secret works until then (zero hides the note)
	Overlap        string       // how long a rotated secret keeps working, e.g. "24 h"
	WidgetKey      string       // ab_live_…: public, identifies the workspace
	Health         string       // "none", "healthy", "warning" or "failing"
	LastVerified   time.Time    // time of the last verified request
	Verified       uint64       // verified requests in the last 24 h
	Failures       []CauseCount // failures in the last 24 h by cause, most common first
	TopCauseWords  string       // the most common cause in words, e.g. "expired token"
	GateError      string       // why a switch to Enforce was just refused (409), shown by the mode form
	EnforceAllowed bool         // the enforce gate is open
	EnforceReason  string       // why Enforce is not allowed yet, shown under the option
	EnforceOpensAt time.Time    // when the failures that hold the gate (Failures) leave the 24-hour window; zero: none hold it
	NeedsVerified  bool         // the gate opens only at a verified request after EnforceOpensAt (or now)
	Examples       []CodeExample
}

// CauseCount is the number of failed identity checks with one cause.
type CauseCount struct {
	Cause string // machine name, e.g. "expired_token"
	Words string // for people, e.g. "expired token"
	N     uint64
}

// CodeExample is a token-minting example in one language, shown in <pre><code>.
type CodeExample struct{ Lang, Code string }

// FailureTotal is the sum of the failure counts.
func (v IdentityView) FailureTotal() uint64 {
	var n uint64
	for _, c := range v.Failures {
		n += c.N
	}
	return n
}

// olderURL is the href of the audit log's "Older events" link: the filters
// and the cursor, query-escaped, landing on the audit section.
func olderURL(prefix string, a AuditView) string {
	q := url.Values{}
	if a.User != "" {
		q.Set("user", a.User)
	}
	if a.Type != "" {
		q.Set("type", a.Type)
	}
	q.Set("before", a.Next)
	return prefix + "admin?" + q.Encode() + "#audit"
}
