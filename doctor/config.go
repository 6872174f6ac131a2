// Package doctor checks a gateway configuration against the app it guards:
// it signs in to the app directly (never through the gateway), with a
// throwaway cookie jar, and reports where the configured sign-in, identity,
// success rule, session cookies and sign-out do not match what the app
// really does. A wrong line in that configuration fails open and silently,
// so each finding names the line to change.
//
// The package knows nothing of Caddy: it takes a plain description of the
// configuration (Config), each item with the line it came from.
package doctor

import (
	"fmt"

	"github.com/mfagate/mfagate/guard"
)

// Ref is where a configuration item was written: its line in a file, or,
// for a configuration that has no file (a running handler's), the
// directive as it would be written.
type Ref struct {
	File      string
	Line      int
	Directive string // e.g. "session_cookie sid"; used when Line is 0
}

// IsZero reports whether the ref names nothing: the item was not written.
func (r Ref) IsZero() bool { return r.Line == 0 && r.Directive == "" }

func (r Ref) String() string {
	switch {
	case r.Line == 0:
		return r.Directive
	case r.File == "":
		return fmt.Sprintf("line %d", r.Line)
	}
	return fmt.Sprintf("%s:%d", r.File, r.Line)
}

// Match is a request matcher reduced to what the doctor can send: a
// sign_in or sign_out line.
type Match struct {
	Methods []string            // empty: any
	Paths   []string            // Caddy path patterns (exact, or with *); empty: any
	Query   map[string][]string // query matcher: each key must have one of its values
	Other   []string            // matchers the doctor cannot satisfy on its own (header, remote_ip, …)
	Ref     Ref
}

// SignIn is a sign_in line with the rules it is judged by (its own, or
// the block's filled in).
type SignIn struct {
	Match      Match
	Field      *guard.Field // sign_in_field; nil: none
	FieldRef   Ref
	Identity   []Source // user_from, in order; empty means the default, form username
	Success    guard.Success
	SuccessRef Ref // zero when success is not written: its default applies
}

// Source is a user_from line.
type Source struct {
	guard.IdentitySource
	Ref Ref
}

// Pattern is one session_cookie name or glob.
type Pattern struct {
	Name string
	Ref  Ref
}

// Param is one strip_header or strip_param name.
type Param struct {
	Name string
	Ref  Ref
}

// Config is the part of an mfa_gateway block that the doctor checks.
type Config struct {
	Upstream      string   // the app's base URL, e.g. http://127.0.0.1:9080
	UpstreamRef   Ref      // the reverse_proxy line
	BlockRef      Ref      // the mfa_gateway line
	SignIns       []SignIn // each with its rules, the block's filled in
	Identity      []Source // the block's user_from: it judges requests outside the sign-in
	SignOuts      []Match
	SignOutOnReq  bool
	Cookies       []Pattern
	StripHeaders  []Param
	StripParams   []Param
	NormalizeFold bool
	NormalizeRef  Ref
}

// asksApp is the first whoami or page source: when there is one, it alone
// names the user (as the gateway reads it).
func (s SignIn) asksApp() *Source {
	for i := range s.Identity {
		if k := s.Identity[i].Kind; k == guard.FromWhoami || k == guard.FromPage {
			return &s.Identity[i]
		}
	}
	return nil
}

// identity is the sources in force: the default is form username.
func (s SignIn) identity() []Source {
	if len(s.Identity) == 0 {
		return []Source{{IdentitySource: guard.IdentitySource{Kind: guard.FromForm, Name: "username"}, Ref: s.Match.Ref}}
	}
	return s.Identity
}

// successKind is the success rule in force, with the gateway's default.
func (s SignIn) successKind() string {
	if s.Success.Kind != "" {
		return s.Success.Kind
	}
	if s.asksApp() != nil {
		return guard.SuccessWhoami
	}
	return guard.SuccessDefault
}

// successRef is the line to change for the success rule: the success
// line, else the source or sign_in it defaults from.
func (s SignIn) successRef() Ref {
	if !s.SuccessRef.IsZero() {
		return s.SuccessRef
	}
	if a := s.asksApp(); a != nil {
		return a.Ref // success whoami is its default
	}
	return s.Match.Ref
}

// identityRef is the line to change for who signed in.
func (s SignIn) identityRef() Ref {
	if len(s.Identity) > 0 {
		return s.Identity[0].Ref
	}
	return s.Match.Ref
}
