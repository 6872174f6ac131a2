// Package guard is the request guard, the hot path of mfagate: on every
// request it strips the headers only the gateway may set, finds the gateway
// session, holds pending and unenrolled users back, rewrites the app's
// cookies so they pass only with the session they were issued under,
// captures the app's sign-ins and has the domain (package mfa) decide them,
// and checks widget identity tokens. Its own paths go to package web. It
// knows nothing of Caddy: matchers and the next handler come in through
// small interfaces.
package guard

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/web"
)

// Handler is the next handler in the chain (caddyhttp.Handler has this shape).
type Handler interface {
	ServeHTTP(http.ResponseWriter, *http.Request) error
}

// Matcher decides whether a request is, for example, the app's sign-in.
type Matcher interface {
	MatchWithError(*http.Request) (bool, error)
}

// Field is a form or JSON field condition: Value "" means "present".
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// IdentitySource says how the gateway learns who signed in.
type IdentitySource struct {
	Kind   string `json:"kind,omitempty"`      // "form", "json", "header", "whoami", "page", "query", "basic"
	Name   string `json:"name,omitempty"`      // form/json/query field, or response header
	Path   string `json:"path,omitempty"`      // whoami, page: app path (and query) called with the new session
	Field  string `json:"field,omitempty"`     // whoami: JSON field in its response; dots separate levels (data.user.name, items.0.id)
	Nobody string `json:"nobody_if,omitempty"` // whoami: a JSON field whose presence means nobody is signed in
	Match  string `json:"match,omitempty"`     // page: a regular expression; its first group is the user

	re *regexp.Regexp // Match, compiled
}

// asksApp reports whether the source is the app's own answer about the
// session (whoami or page), rather than something the client sent.
func (s IdentitySource) asksApp() bool { return s.Kind == FromWhoami || s.Kind == FromPage }

// Identity source kinds.
const (
	FromForm   = "form"
	FromJSON   = "json"
	FromHeader = "header"
	FromWhoami = "whoami"
	FromPage   = "page"
	FromQuery  = "query"
	FromBasic  = "basic"
)

// User name normalisations.
const (
	NormalizeNone = "none" // names are kept as learnt
	NormalizeFold = "fold" // case, accents, compatibility forms and '_' folded (username.Fold)
)

// Success criteria for the app's sign-in response.
const (
	SuccessDefault  = "default"  // sets the session cookie, or redirects while the request carried one
	SuccessCookie   = "cookie"   // sets a session cookie, or one of Cookies
	SuccessRedirect = "redirect" // any 3xx
	SuccessStatus   = "status"   // one of Statuses
	SuccessWhoami   = "whoami"   // the app's answer (whoami or page) names a user for the new session
)

// Success is the operator's sign-in success criterion.
type Success struct {
	Kind     string
	Statuses []int
	Cookies  []string // cookie: names (or path.Match globs) of which the response must set one; none: a session cookie
}

// Config is the gateway's configuration, with defaults applied by Normalize.
type Config struct {
	Prefix           string           // gateway paths, default "/_mfa/"
	SignIn           Matcher          // the app's sign-in request (required)
	SignInField      *Field           // extra form/JSON condition for apps posting to a shared path
	Routes           []SignInRoute    // sign-in endpoints with rules of their own, matched before SignIn
	SignOut          Matcher          // the app's sign-out; ends the gateway session when the app's answer shows it happened
	SignOutOnRequest bool             // end it when the request matches, without evidence from the app
	NormalizeUsers   string           // "fold": user names are folded (username.Fold); "" or "none": kept as learnt
	AppCookies       []string         // the app's session cookie names or globs (required)
	Identity         []IdentitySource // tried in order; default: form field "username"
	EmailFrom        []IdentitySource // where the user's email address comes from, tried in order
	EmailTemplate    string           // or an address made from the user id, e.g. "{user}@example.com"
	RoleFrom         []IdentitySource // where the user's role (group) comes from, for AdminRoles
	AdminRoles       []string         // roles that make a user an admin
	Widget           *WidgetConfig    // widget identity verification; nil: none
	Mailer           mfa.Mailer       // sends notices; nil: no email configured
	Texter           mfa.Texter       // sends text messages (SMS codes); nil: none configured
	// ClientIP is the client's address as the server determined it
	// (behind trusted proxies, from their headers); nil: the peer's.
	ClientIP       func(*http.Request) string
	Methods        []string // the methods users may set up; empty: every configured one
	Success        Success
	block          Rules         // the block's rules (SignInField, Identity, Success), set by Normalize
	IdleTimeout    time.Duration // default 240m, 5m..1440m
	MaxLifetime    time.Duration // default 12h: the second factor is asked again after it
	PendingTTL     time.Duration // how long a password sign-in waits for its second factor, default 10m
	Require2FA     bool          // users without a factor must enrol before they reach the app
	CookieName     string        // default "mfa_session"; "__Host-" is prepended on HTTPS
	Issuer         string        // name in authenticator apps and on pages
	UserHeader     string        // header the upstream receives the user in, default "X-Mfa-User"
	AALHeader      string        // default "X-Mfa-Aal"
	StripHeaders   []string      // extra request headers to remove (e.g. Authorization) outside the sign-in
	StripParams    []string      // query parameters to remove outside the sign-in (credential-bearing)
	MaxAttempts    int           // wrong codes per user (and 4x per address) per AttemptWindow, default 5
	MaxFailedCodes int           // wrong authenticator codes in a row before it locks, default 100
	RememberFor    time.Duration // how long "remember this browser" lasts; 0: not offered
	// EnrolEmailProof asks users held at the setup to prove the email
	// address the app reported before their first factor (with email set up).
	EnrolEmailProof bool
	// TrustedNetworks are client networks where the second factor is skipped
	// for everyone.
	TrustedNetworks []netip.Prefix
	AttemptWindow   time.Duration // default 15m
	MaxBodyBytes    int64         // sign-in request and response bodies read at most, default 1 MiB
	TemplateDir     string
	Scope           string        // the population this block's policy applies to, default "default"
	PolicyMaxAge    time.Duration // how stale a policy read from the store may be, default 5m
	Admins          []string      // user ids allowed on the admin page (with AAL2)
	GracePeriod     time.Duration // sessions from before "require 2FA" without it end after this, default 7 days
	// Subrequest, if set, prepares the whoami call as a request of its own
	// to the server's routes (the Caddy glue gives it a fresh context, so
	// route groups such as handle blocks are matched afresh).
	Subrequest func(r *http.Request, w http.ResponseWriter) *http.Request
	// Identified, if set, is told the user and AAL of every request with an
	// active session (the Caddy glue sets placeholders from them).
	Identified func(r *http.Request, user string, aal uint8)
	// Doctor, if set, checks this configuration against the app from the
	// admin page (the Caddy glue runs package doctor through the route).
	Doctor web.Doctor
}

// Defaults.
const (
	DefaultPrefix     = "/_mfa/"
	DefaultCookieName = "mfa_session"
)

// Normalize fills in defaults and checks the configuration, naming the bad item.
func (c *Config) Normalize() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return fmt.Errorf("prefix %q must start with /", c.Prefix)
	}
	c.Prefix = path.Clean(c.Prefix)
	if c.Prefix == "/" {
		return errors.New("prefix must not be /: the gateway would shadow the whole app")
	}
	c.Prefix += "/"
	if c.SignIn == nil && len(c.Routes) == 0 {
		return errors.New("a sign-in matcher is required")
	}
	if len(c.AppCookies) == 0 {
		return errors.New("at least one app session cookie name is required")
	}
	c.AppCookies = append([]string(nil), c.AppCookies...) // the caller's slice stays as given
	for i, n := range c.AppCookies {
		if err := cookies.CheckPattern(n); err != nil {
			return err
		}
		c.AppCookies[i] = cookies.Key(n)
	}
	if len(c.Identity) == 0 {
		c.Identity = []IdentitySource{{Kind: FromForm, Name: "username"}}
	}
	c.RoleFrom = append([]IdentitySource(nil), c.RoleFrom...)
	for i, s := range c.RoleFrom {
		if err := c.RoleFrom[i].validate(); err != nil {
			return fmt.Errorf("role source %d: %w", i+1, err)
		}
		// A role makes admins: only the app's own answer may carry it, never
		// a field the client writes into its sign-in request.
		if s.Kind != FromHeader && !s.asksApp() {
			return fmt.Errorf("role source %d: %s is sent by the client; use header, whoami or page, which the app answers", i+1, s.Kind)
		}
	}
	c.EmailFrom = append([]IdentitySource(nil), c.EmailFrom...)
	for i := range c.EmailFrom {
		if err := c.EmailFrom[i].validate(); err != nil {
			return fmt.Errorf("email source %d: %w", i+1, err)
		}
	}
	switch c.NormalizeUsers {
	case "", NormalizeNone, NormalizeFold:
	default:
		return fmt.Errorf("normalize_users %q: want fold or none", c.NormalizeUsers)
	}
	c.block = Rules{Field: c.SignInField, Identity: c.Identity, Success: c.Success}
	if err := c.block.normalize(nil); err != nil {
		return err
	}
	c.Identity, c.Success = c.block.Identity, c.block.Success
	c.Routes = append([]SignInRoute(nil), c.Routes...)
	for i := range c.Routes {
		if c.Routes[i].Match == nil {
			return fmt.Errorf("sign-in route %d: a matcher is required", i+1)
		}
		if err := c.Routes[i].Rules.normalize(&c.block); err != nil {
			return fmt.Errorf("sign-in route %d: %w", i+1, err)
		}
	}
	for name, d := range map[string]time.Duration{
		"max_lifetime":    c.MaxLifetime,
		"pending_timeout": c.PendingTTL, "attempt_window": c.AttemptWindow,
		"policy_cache": c.PolicyMaxAge, "grace_period": c.GracePeriod,
	} {
		if d < 0 {
			return fmt.Errorf("%s %v: must not be negative", name, d)
		}
	}
	if c.RememberFor < 0 || c.RememberFor > 365*24*time.Hour {
		return errors.New("remember_days must be 0 to 365")
	}
	if c.MaxAttempts < 0 || c.MaxBodyBytes < 0 || c.MaxFailedCodes < 0 || c.MaxFailedCodes > mfa.DefaultMaxFailedCodes {
		return errors.New("max_attempts and the body limit must not be negative; max_failed_codes must be 1 to 100")
	}
	for i, m := range c.Methods {
		if m != mfa.MethodTOTP && m != mfa.MethodEmail && m != mfa.MethodSMS {
			return fmt.Errorf("methods: %q is not a method: want totp, email or sms", m)
		}
		if slices.Contains(c.Methods[:i], m) {
			return fmt.Errorf("methods: %s twice", m)
		}
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = mfa.DefaultIdleTimeout
	}
	if err := mfa.ValidateIdleTimeout(c.IdleTimeout); err != nil {
		return err
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = max(mfa.DefaultMaxLifetime, c.IdleTimeout)
	}
	if c.MaxLifetime < c.IdleTimeout {
		return fmt.Errorf("max_lifetime %v is shorter than idle_timeout %v", c.MaxLifetime, c.IdleTimeout)
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = mfa.DefaultPendingTTL
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.Issuer == "" {
		c.Issuer = "mfagate"
	}
	if c.UserHeader == "" {
		c.UserHeader = "X-Mfa-User"
	}
	if c.AALHeader == "" {
		c.AALHeader = "X-Mfa-Aal"
	}
	// Set straight into the header map on the hot path, so canonical here.
	c.UserHeader = http.CanonicalHeaderKey(c.UserHeader)
	c.AALHeader = http.CanonicalHeaderKey(c.AALHeader)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.AttemptWindow == 0 {
		c.AttemptWindow = 15 * time.Minute
	}
	if c.Widget != nil {
		if c.Widget.Match == nil {
			return errors.New("widget: a matcher for the widget requests is required")
		}
		c.Widget.normalize()
	}
	if c.Scope == "" {
		c.Scope = "default"
	}
	if c.PolicyMaxAge == 0 {
		c.PolicyMaxAge = mfa.DefaultPolicyMaxAge
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = mfa.DefaultGracePeriod
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	return nil
}

// Rules judge a sign-in: the field that marks it, who signed in, and
// whether it succeeded. A block has its rules; a sign-in route may have its
// own, so that each endpoint reads only its own fields.
type Rules struct {
	Field    *Field           // nil: no field condition
	Identity []IdentitySource // empty in a route: the block's
	Success  Success          // empty in a route: the block's (whoami when the route asks the app)
}

// SignInRoute is a sign-in endpoint with rules of its own. Routes are
// matched in order, before the block's SignIn matcher.
type SignInRoute struct {
	Match Matcher
	Rules
}

// normalize validates the rules, filling what a route leaves empty from
// the block (nil for the block itself).
func (ru *Rules) normalize(block *Rules) error {
	if block != nil {
		if ru.Field == nil {
			ru.Field = block.Field
		}
		if len(ru.Identity) == 0 {
			ru.Identity = block.Identity
		}
	}
	ru.Identity = append([]IdentitySource(nil), ru.Identity...)
	for i := range ru.Identity {
		if err := ru.Identity[i].validate(); err != nil {
			return fmt.Errorf("user source %d: %w", i+1, err)
		}
	}
	switch ru.Success.Kind {
	case "":
		// The app's own answer is the best judge of a sign-in: when it is
		// asked, a sign-in succeeded when it names someone.
		switch {
		case ru.appAnswer() != nil:
			ru.Success.Kind = SuccessWhoami
		case block != nil && block.Success.Kind != SuccessWhoami:
			ru.Success = block.Success
		default:
			ru.Success.Kind = SuccessDefault
		}
	case SuccessWhoami:
		if ru.appAnswer() == nil {
			return errors.New("success whoami: needs a user_from whoami or page source")
		}
	case SuccessCookie:
		for _, n := range ru.Success.Cookies {
			if err := cookies.CheckPattern(n); err != nil {
				return fmt.Errorf("success cookie: %w", err)
			}
		}
	case SuccessDefault, SuccessRedirect:
	case SuccessStatus:
		if len(ru.Success.Statuses) == 0 {
			return errors.New("success status: at least one status code is required")
		}
		for _, s := range ru.Success.Statuses {
			if s < 100 || s > 599 {
				return fmt.Errorf("success status %d: not an HTTP status code", s)
			}
		}
	default:
		return fmt.Errorf("success %q: want default, cookie, redirect, status or whoami", ru.Success.Kind)
	}
	return nil
}

// appAnswer is the user source that asks the app (the first whoami or page
// source), or nil. When there is one, it alone names the user: the app's
// answer is the canonical id, whatever the client typed.
func (ru *Rules) appAnswer() *IdentitySource {
	for i := range ru.Identity {
		if ru.Identity[i].asksApp() {
			return &ru.Identity[i]
		}
	}
	return nil
}

// Check reports what is wrong with the source, as the Caddyfile adapter
// asks before a config is loaded.
func (s IdentitySource) Check() error { return s.validate() }

func (s *IdentitySource) validate() error {
	switch s.Kind {
	case FromForm, FromJSON, FromHeader, FromQuery:
		if s.Name == "" {
			return fmt.Errorf("%s: a field or header name is required", s.Kind)
		}
	case FromWhoami:
		if checkAppPath(s.Path) != nil || s.Field == "" {
			return errors.New("whoami: a path starting with / (a query is allowed) and a JSON field are required")
		}
		for _, f := range []string{s.Field, s.Nobody} {
			for part := range strings.SplitSeq(f, ".") {
				if part == "" && f != "" {
					return fmt.Errorf("whoami: field %q: an empty name between dots", f)
				}
			}
		}
	case FromPage:
		if err := checkAppPath(s.Path); err != nil {
			return fmt.Errorf("page: %w", err)
		}
		re, err := regexp.Compile(s.Match)
		if err != nil || re.NumSubexp() < 1 {
			return fmt.Errorf("page: %q: want a regular expression with a group for the user", s.Match)
		}
		s.re = re
	case FromBasic:
	default:
		return fmt.Errorf("unknown kind %q: want form, json, query, header, basic, whoami or page", s.Kind)
	}
	return nil
}

// checkAppPath accepts a path on the app, with a query, and nothing that
// would leave it (another host, a scheme).
func checkAppPath(p string) error {
	u, err := url.ParseRequestURI(p)
	if err != nil || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || u.Host != "" {
		return fmt.Errorf("%q: want a path starting with / (a query is allowed)", p)
	}
	return nil
}
