// Package caddymodule is the thin Caddy glue of mfagate: the
// http.handlers.mfa_gateway module, its Caddyfile directive, and the pool
// that shares one database (and its in-memory sessions) across reloads.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mfagate/mfagate/doctor"
	"github.com/mfagate/mfagate/guard"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/sms"
	"github.com/mfagate/mfagate/web"
)

func init() {
	caddy.RegisterModule(Gateway{})
}

// Gateway puts two-factor sign-in in front of an unmodified app. It
// intercepts the app's sign-in, holds the app's session cookies until a TOTP
// or recovery code is passed, and forwards the app's session cookie only
// with a valid gateway session.
//
// It sets these request headers for the upstream (client-sent copies, in any
// spelling, are removed first): the user (default X-Mfa-User) and the
// authenticator assurance level (default X-Mfa-Aal, "1" or "2").
type Gateway struct {
	// The app's sign-in request, as matcher sets. Required.
	SignInRaw caddyhttp.RawMatcherSets `json:"sign_in,omitempty" caddy:"namespace=http.matchers"`
	// Sign-in endpoints with rules of their own (identity sources, field,
	// success), matched before sign_in in order. Rules a route leaves empty
	// are the block's.
	SignInRoutes []SignInRoute `json:"sign_in_routes,omitempty"`
	// A form, JSON or query field the sign-in must carry (value "" = present),
	// for apps that post every action to one path.
	SignInField *guard.Field `json:"sign_in_field,omitempty"`
	// The app's sign-out request; it ends the gateway session too, once the
	// app's answer shows the sign-out happened.
	SignOutRaw caddyhttp.RawMatcherSets `json:"sign_out,omitempty" caddy:"namespace=http.matchers"`
	// End the gateway session when sign_out matches, without evidence from
	// the app (for apps that sign out without touching their cookies and
	// have no whoami).
	SignOutOnRequest bool `json:"sign_out_on_request,omitempty"`
	// "fold": user names are folded (case, accents, compatibility forms,
	// '_' as a space), so every spelling an app signs in as one account is
	// one user; stored users are moved to their folded names at start.
	// Default "none".
	NormalizeUsers string `json:"normalize_users,omitempty"`
	// The app's session cookie names; globs (path.Match) allowed. Required.
	SessionCookies []string `json:"session_cookies,omitempty"`
	// How to learn who signed in, tried in order. Default: form field "username".
	UserFrom []guard.IdentitySource `json:"user_from,omitempty"`
	// Sign-in success criterion: default, cookie, redirect, status or
	// whoami. Default: whoami with a whoami or page source, else default.
	Success string `json:"success,omitempty"`
	// Status codes for Success "status".
	SuccessStatus []int `json:"success_status,omitempty"`
	// Cookie names (or globs) for Success "cookie": the response must set
	// one of them. None: a session cookie.
	SuccessCookies []string `json:"success_cookies,omitempty"`
	// Path prefix of the gateway's pages and API. Default "/_mfa/".
	Prefix string `json:"prefix,omitempty"`
	// The bbolt file. Default: mfagate/mfagate.db in Caddy's data directory.
	DBPath string `json:"db_path,omitempty"`
	// The 32-byte master key (base64 or hex), usually "{env.MFA_KEY}" or
	// "{file./path}", resolved at provision so `caddy adapt` never shows it.
	EncryptionKey string `json:"encryption_key,omitempty"`
	// A key file created on first use (mode 0600). Default: mfagate/key in
	// Caddy's data directory. Ignored when EncryptionKey is set.
	KeyFile string `json:"key_file,omitempty"`
	// Idle timeout, 5m to 1440m. Default 240m.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// Absolute session lifetime: the second factor is asked again after it. Default 12h.
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`
	// How long a password sign-in waits for its second factor. Default 10m.
	PendingTimeout caddy.Duration `json:"pending_timeout,omitempty"`
	// Users without 2FA must set it up before they reach the app.
	Require2FA bool `json:"require_2fa,omitempty"`
	// The gateway cookie's name ("__Host-" is prepended on HTTPS). Default mfa_session.
	CookieName string `json:"cookie_name,omitempty"`
	// Name shown in authenticator apps and on the pages. Default "mfagate".
	Issuer string `json:"issuer,omitempty"`
	// Request header carrying the user to the upstream. Default X-Mfa-User.
	UserHeader string `json:"user_header,omitempty"`
	// Request header carrying the AAL to the upstream. Default X-Mfa-Aal.
	AALHeader string `json:"aal_header,omitempty"`
	// Request headers removed outside the sign-in (e.g. Authorization for apps
	// that accept Basic credentials on any URL).
	StripHeaders []string `json:"strip_headers,omitempty"`
	// Query parameters removed outside the sign-in.
	StripParams []string `json:"strip_params,omitempty"`
	// Wrong codes allowed per user per window (4x per client address). Default 5.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Wrong authenticator codes in a row, however slowly they come, before
	// the authenticator locks until a recovery code or an unlock. 1 to 100;
	// default 100.
	MaxFailedCodes int `json:"max_failed_codes,omitempty"`
	// How many days "remember this browser" skips the second factor;
	// 0 turns it off. Default 30.
	RememberDays *int `json:"remember_days,omitempty"`
	// How long signed-in traffic goes on from memory while the store does
	// not answer; past it, signed-in requests answer 503 too. Default 60s.
	StoreOutageLimit caddy.Duration `json:"store_outage_limit,omitempty"`
	// Client networks (CIDRs) where signing in skips the second factor
	// for everyone. The app's password is still needed.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`
	// Whether a user held at the setup (require 2FA, no factor yet) whose
	// email address the app reported must prove it with a code before the
	// first factor. Default: on (it needs smtp).
	EnrolEmailProof *bool `json:"enrol_email_proof,omitempty"`
	// Window for MaxAttempts. Default 15m.
	AttemptWindow caddy.Duration `json:"attempt_window,omitempty"`
	// Directory of templates overriding the embedded pages.
	TemplateDir string `json:"template_dir,omitempty"`
	// The population this block's team policy applies to (e.g. "agents" and
	// "users" in two blocks). Default "default".
	Scope string `json:"scope,omitempty"`
	// How stale the policy read from the store may be. Default 5m.
	PolicyCache caddy.Duration `json:"policy_cache,omitempty"`
	// User ids allowed on the admin page and API (at AAL2).
	Admins []string `json:"admins,omitempty"`
	// Where the user's role comes from (whoami field or response header),
	// and the roles that make a user an admin.
	RoleFrom   []guard.IdentitySource `json:"role_from,omitempty"`
	AdminRoles []string               `json:"admin_roles,omitempty"`
	// Outgoing mail for notices (2FA now required, admin reset). Without it
	// the features that email say so on the admin page.
	SMTP *SMTPConfig `json:"smtp,omitempty"`
	// Outgoing text messages, for SMS sign-in codes.
	SMS *SMSConfig `json:"sms,omitempty"`
	// The second-factor methods users may set up: totp, email, sms.
	// Default: every one that is configured (email needs smtp, sms needs sms).
	Methods []string `json:"methods,omitempty"`
	// Where users' email addresses come from, tried in order (form, json,
	// header or whoami sources, as for user_from).
	EmailFrom []guard.IdentitySource `json:"email_from,omitempty"`
	// Or an address made from the user id, e.g. "{user}@example.com".
	EmailTemplate string `json:"email_template,omitempty"`
	// Widget identity verification: which requests are widget traffic and
	// where their claimed user id and token are.
	Widget *WidgetConfig `json:"widget,omitempty"`
	// How long a rotated identity secret keeps working. Default 24h.
	IdentityOverlap caddy.Duration `json:"identity_overlap,omitempty"`
	// Clock leeway for widget JWTs. Default 30s.
	IdentityLeeway caddy.Duration `json:"identity_leeway,omitempty"`
	// How long audit events are kept. Default 90 days.
	AuditRetention caddy.Duration `json:"audit_retention,omitempty"`
	// The most audit events kept, oldest pruned first: a size cap besides the
	// retention. Default 250,000 (about 100 MB).
	AuditMaxEvents int `json:"audit_max_events,omitempty"`
	// After "require 2FA" is switched on, sessions of users still without it
	// that started before the switch end after this. Default 7 days.
	GracePeriod caddy.Duration `json:"grace_period,omitempty"`

	cfg    guard.Config
	store  Store     // from db_path; nil: the mfa app's store
	key    []byte    // from encryption_key; nil: a key file
	gw     *guardRef // set when the mfa app starts
	app    *App      // the mfa app of this config
	outbox *mail.Outbox
	texts  *sms.Outbox
	logger *zap.Logger
	// The admin page's doctor: this handler's settings for package doctor,
	// or why they cannot be described.
	doctorCfg doctor.Config
	doctorErr error
	debugLog  bool // Caddy logs at DEBUG: the check would put the password in the log
}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mfa_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision loads the matchers, checks the configuration and registers the
// handler with the mfa app, which opens the store and starts the handler
// when the config starts. Provision itself opens nothing: a config that is
// only validated never touches the database.
func (m *Gateway) Provision(ctx caddy.Context) error {
	app, err := ctx.App("mfa")
	if err != nil {
		return err
	}
	return m.provisionOn(ctx, app.(*App))
}

// provisionOn is Provision with the mfa app of the config being loaded.
func (m *Gateway) provisionOn(ctx caddy.Context, app *App) error {
	m.logger = ctx.Logger()
	// Before the matchers load: loading clears their raw fields.
	m.doctorCfg, m.doctorErr = liveDoctorConfig(m)
	m.debugLog = debugLogging(ctx, m.logger)
	m.logDoctorSetup()
	cfg, err := m.config(ctx)
	if err != nil {
		return err
	}
	if err := cfg.Normalize(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	if m.SMTP != nil {
		mc := m.SMTP.mailConfig(repl)
		if err := mc.Validate(); err != nil {
			return fmt.Errorf("smtp: %w", err)
		}
		sender, err := mail.NewSMTP(mc)
		if err != nil {
			return fmt.Errorf("smtp: %w", err)
		}
		m.outbox = mail.NewOutbox(sender, m.logger.Named("mail"), 1000)
		cfg.Mailer = m.outbox
	}
	if m.SMS != nil {
		sender, err := m.SMS.sender(repl)
		if err != nil {
			return err
		}
		m.texts = sms.NewOutbox(sender, m.logger.Named("sms"), 1000)
		cfg.Texter = m.texts
	}
	cfg.Identified = setPlaceholders
	cfg.ClientIP = clientIP
	cfg.Subrequest = subrequest
	cfg.Doctor = m.runDoctor
	m.cfg = cfg
	if m.EncryptionKey != "" {
		if m.key, err = parseKey(repl, m.EncryptionKey); err != nil {
			return err
		}
	}
	if m.DBPath != "" {
		st := &BoltStore{Path: m.DBPath}
		if err := st.Provision(ctx); err != nil {
			return fmt.Errorf("db_path: %w", err)
		}
		m.store = st
	}
	m.gw = &guardRef{}
	app.attach(m)
	return nil
}

// guardRef holds a handler's guard once the mfa app has started it.
type guardRef struct{ p atomic.Pointer[guard.Guard] }

func (r *guardRef) load() *guard.Guard {
	if r == nil {
		return nil
	}
	return r.p.Load()
}

// serviceOptions are the service settings a handler brings when it is the
// first to open its store.
func (m *Gateway) serviceOptions() mfa.Options {
	return mfa.Options{
		AuditRetention: time.Duration(m.AuditRetention), AuditMaxEvents: m.AuditMaxEvents, OutageLimit: time.Duration(m.StoreOutageLimit),
		IdentityOverlap: time.Duration(m.IdentityOverlap), IdentityLeeway: time.Duration(m.IdentityLeeway),
	}
}

func (m *Gateway) config(ctx caddy.Context) (guard.Config, error) {
	var nets []netip.Prefix
	for _, n := range m.TrustedNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return guard.Config{}, fmt.Errorf("trusted_networks: %q is not a network like 10.0.0.0/8: %w", n, err)
		}
		nets = append(nets, p.Masked())
	}
	cfg := guard.Config{
		Prefix: m.Prefix, SignInField: m.SignInField, AppCookies: m.SessionCookies,
		Identity: m.UserFrom, Success: guard.Success{Kind: m.Success, Statuses: m.SuccessStatus, Cookies: m.SuccessCookies},
		IdleTimeout: time.Duration(m.IdleTimeout), MaxLifetime: time.Duration(m.MaxLifetime),
		PendingTTL: time.Duration(m.PendingTimeout), Require2FA: m.Require2FA,
		CookieName: m.CookieName, Issuer: m.Issuer, UserHeader: m.UserHeader, AALHeader: m.AALHeader,
		StripHeaders: m.StripHeaders, StripParams: m.StripParams, SignOutOnRequest: m.SignOutOnRequest, NormalizeUsers: m.NormalizeUsers, MaxAttempts: m.MaxAttempts, MaxFailedCodes: m.MaxFailedCodes,
		RememberFor: rememberFor(m.RememberDays), TrustedNetworks: nets, EnrolEmailProof: m.EnrolEmailProof == nil || *m.EnrolEmailProof,
		AttemptWindow: time.Duration(m.AttemptWindow), TemplateDir: m.TemplateDir,
		Scope: m.Scope, PolicyMaxAge: time.Duration(m.PolicyCache), Admins: m.Admins,
		GracePeriod: time.Duration(m.GracePeriod),
		EmailFrom:   m.EmailFrom, EmailTemplate: m.EmailTemplate, Methods: m.Methods,
		RoleFrom: m.RoleFrom, AdminRoles: m.AdminRoles,
	}
	var err error
	if m.SignInRaw != nil {
		if cfg.SignIn, err = loadMatchers(ctx, m, "SignInRaw", "sign_in"); err != nil {
			return cfg, err
		}
	}
	for i := range m.SignInRoutes {
		rt := &m.SignInRoutes[i]
		match, err := loadMatchers(ctx, rt, "MatchRaw", "sign_in route")
		if err != nil {
			return cfg, err
		}
		cfg.Routes = append(cfg.Routes, guard.SignInRoute{Match: match, Rules: guard.Rules{
			Field: rt.SignInField, Identity: rt.UserFrom,
			Success: guard.Success{Kind: rt.Success, Statuses: rt.SuccessStatus, Cookies: rt.SuccessCookies},
		}})
	}
	if m.Widget != nil {
		wc := &guard.WidgetConfig{
			UserHeader: m.Widget.UserHeader, UserQuery: m.Widget.UserQuery, UserJSON: m.Widget.UserJSON,
			TokenHeader: m.Widget.TokenHeader, TokenQuery: m.Widget.TokenQuery, VerdictHeader: m.Widget.VerdictHeader,
		}
		if m.Widget.MatchRaw != nil {
			if wc.Match, err = loadMatchers(ctx, m.Widget, "MatchRaw", "widget match"); err != nil {
				return cfg, err
			}
		}
		cfg.Widget = wc
	}
	if m.SignOutRaw != nil {
		if cfg.SignOut, err = loadMatchers(ctx, m, "SignOutRaw", "sign_out"); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// parseKey resolves and parses encryption_key (placeholders such as
// {env.MFA_KEY} are resolved here, so `caddy adapt` never shows the key).
func parseKey(repl *caddy.Replacer, raw string) ([]byte, error) {
	v, err := repl.ReplaceOrErr(raw, true, true)
	if err != nil {
		return nil, fmt.Errorf("encryption_key: %w", err)
	}
	key, err := seal.ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("encryption_key: %w", err)
	}
	return key, nil
}

// loadKey is the master key: encryption_key, or the key file named by
// key_file or else kept beside the store, created on first use (mode 0600).
// A store with no place for a key file (PostgreSQL) needs one of the two.
func (m *Gateway) loadKey(st Store) ([]byte, error) {
	if m.key != nil {
		return m.key, nil
	}
	path := caddy.NewReplacer().ReplaceAll(m.KeyFile, "")
	if path == "" {
		path = st.DefaultKeyFile()
	}
	if path == "" {
		return nil, fmt.Errorf("store %s keeps no key file beside its database: set encryption_key (such as {env.MFA_KEY}), the same on every instance, or key_file", st.StoreKey())
	}
	key, err := seal.LoadOrCreateKeyFile(path, nil)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	return key, nil
}

// Validate checks the configuration without I/O.
func (m *Gateway) Validate() error {
	// The sign_in matchers are checked in Provision: LoadModule clears the
	// raw field before Validate runs.
	if len(m.SessionCookies) == 0 {
		return errors.New("mfa_gateway: session_cookie is required")
	}
	return nil
}

// ServeHTTP hands the request to the request guard, starting it first if
// the mfa app has not yet (a moment at start-up or reload).
func (m *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	gw := m.gw.load()
	if gw == nil {
		var err error
		if gw, err = m.app.ensure(m); err != nil {
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
	}
	err := gw.ServeHTTP(w, m.withDoctorRoute(r, next), next)
	if err == nil {
		return nil
	}
	return handlerError(err)
}

// handlerError gives a failure the guard left unanswered its status. It is
// a function of its own because errors.As moves its target to the heap:
// served requests, which return nil, allocate nothing for it.
func handlerError(err error) error {
	var fault *web.Error
	if errors.As(err, &fault) {
		// The guard answers its own failures; one it left unanswered gets
		// its status from Caddy (and handle_errors, where configured).
		return caddyhttp.Error(fault.Status, err)
	}
	return err
}

// clientIP is the client's address as Caddy determined it, honouring the
// server's trusted_proxies.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// setPlaceholders publishes the signed-in user for access logs and later
// handlers, as Caddy's authentication handler does.
func setPlaceholders(r *http.Request, user string, aal uint8) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	u := any(user) // boxed once for both names
	repl.Set("http.auth.user.id", u)
	repl.Set("http.mfa_gateway.user", u)
	repl.Set("http.mfa_gateway.aal", aalText[aal&3])
}

// aalText holds the AAL values already boxed: no allocation per request.
var aalText = [...]any{"0", "1", "2", "3"}

// subrequest gives the whoami call the context Caddy gives a request from a
// client: its own replacer, variables and route groups. Reusing the sign-in's
// context would leave a handle block already marked as served, and the call
// would reach no upstream.
func subrequest(r *http.Request, w http.ResponseWriter) *http.Request {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok {
		return r
	}
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, srv)
}

// Cleanup removes this handler from its service and closes its mail
// outbox; the mfa app releases the store.
func (m *Gateway) Cleanup() error {
	if gw := m.gw.load(); gw != nil {
		gw.Release() // before the outbox closes: nothing may queue on it after
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.outbox != nil {
		_ = m.outbox.Close(ctx) // queued notices get a few seconds to go out
	}
	if m.texts != nil {
		_ = m.texts.Close(ctx)
	}
	return nil
}

// WidgetConfig names the widget traffic. The defaults: the claimed user id
// in X-Widget-User-Id, the token in Authorization: Bearer, the verdict to
// the upstream in X-Widget-Identity.
type WidgetConfig struct {
	MatchRaw      caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`
	UserHeader    string                   `json:"user_header,omitempty"`
	UserQuery     string                   `json:"user_query,omitempty"`
	UserJSON      string                   `json:"user_json,omitempty"`
	TokenHeader   string                   `json:"token_header,omitempty"`
	TokenQuery    string                   `json:"token_query,omitempty"`
	VerdictHeader string                   `json:"verdict_header,omitempty"`
}

// SMTPConfig is the outgoing mail server. The password is usually
// "{env.SMTP_PASSWORD}", resolved at provision.
type SMTPConfig struct {
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Security string `json:"security,omitempty"` // starttls (default), tls or none (loopback only)
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	From     string `json:"from,omitempty"`
}

func (s *SMTPConfig) mailConfig(repl *caddy.Replacer) mail.Config {
	return mail.Config{
		Host: repl.ReplaceAll(s.Host, ""), Port: s.Port, Security: s.Security,
		Username: repl.ReplaceAll(s.Username, ""), Password: repl.ReplaceAll(s.Password, ""),
		From: repl.ReplaceAll(s.From, ""),
	}
}

// rememberFor is remember_days as a duration: 30 days when unset.
func rememberFor(days *int) time.Duration {
	if days == nil {
		return 30 * 24 * time.Hour
	}
	return time.Duration(*days) * 24 * time.Hour
}

// SMSConfig sends text messages through a webhook or a Twilio-compatible
// Messages API. Secrets may be placeholders ({env.SMS_SECRET}).
type SMSConfig struct {
	Webhook   string `json:"webhook,omitempty"`    // POST JSON here, signed with Secret
	Secret    string `json:"secret,omitempty"`     // the webhook's HMAC key
	TwilioSID string `json:"twilio_sid,omitempty"` // account SID, for the Messages API
	AuthToken string `json:"auth_token,omitempty"` // its auth token
	From      string `json:"from,omitempty"`       // the sending number or messaging service
	BaseURL   string `json:"base_url,omitempty"`   // default https://api.twilio.com
}

// sender builds the configured sender, refusing a half configuration.
func (c *SMSConfig) sender(repl *caddy.Replacer) (sms.Sender, error) {
	r := func(s string) string { return repl.ReplaceAll(s, "") }
	switch {
	case c.Webhook != "" && c.TwilioSID != "":
		return nil, errors.New("sms: choose webhook or twilio, not both")
	case c.Webhook != "":
		if err := sms.CheckURL(r(c.Webhook)); err != nil {
			return nil, err
		}
		if r(c.Secret) == "" {
			return nil, errors.New("sms: the webhook needs a secret (use {env.…})")
		}
		return &sms.Webhook{URL: r(c.Webhook), Secret: r(c.Secret)}, nil
	case c.TwilioSID != "":
		if r(c.AuthToken) == "" || r(c.From) == "" {
			return nil, errors.New("sms: twilio needs auth_token and from")
		}
		if c.BaseURL != "" {
			if err := sms.CheckURL(r(c.BaseURL)); err != nil {
				return nil, err
			}
		}
		return &sms.Twilio{BaseURL: r(c.BaseURL), AccountSID: r(c.TwilioSID), AuthToken: r(c.AuthToken), From: r(c.From)}, nil
	}
	return nil, errors.New("sms: set webhook or twilio")
}

// loadMatchers loads the matcher sets in field of structPtr (a
// caddyhttp.RawMatcherSets tagged with the http.matchers namespace).
func loadMatchers(ctx caddy.Context, structPtr any, field, what string) (guard.Matcher, error) {
	mod, err := ctx.LoadModule(structPtr, field)
	if err != nil {
		return nil, fmt.Errorf("loading %s matchers: %w", what, err)
	}
	var sets caddyhttp.MatcherSets
	if err := sets.FromInterface(mod); err != nil {
		return nil, fmt.Errorf("%s matchers: %w", what, err)
	}
	for _, set := range sets {
		methodFirst(set)
	}
	return anyMatch(sets), nil
}

// methodFirst moves a set's method matchers to its front. The matchers of a
// set are ANDed in the order of a map's iteration, that is any order; the
// guard asks its sign-in and sign-out matchers about every request, and a
// method comparison rules out a GET at once, where a path matcher first
// looks up the replacer and cleans and matches the path.
func methodFirst(set caddyhttp.MatcherSet) {
	sort.SliceStable(set, func(i, j int) bool { return isMethod(set[i]) && !isMethod(set[j]) })
}

func isMethod(m any) bool {
	switch m.(type) {
	case caddyhttp.MatchMethod, *caddyhttp.MatchMethod:
		return true
	}
	return false
}

// anyMatch adapts matcher sets (OR of ANDs) to the core's Matcher.
type anyMatch caddyhttp.MatcherSets

func (a anyMatch) MatchWithError(r *http.Request) (bool, error) {
	return caddyhttp.MatcherSets(a).AnyMatchWithError(r)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddy.CleanerUpper          = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)

// SignInRoute is a sign-in endpoint with rules of its own: each endpoint
// reads only its own fields, so a decoy field another endpoint reads names
// nobody.
type SignInRoute struct {
	// The matchers of the endpoint.
	MatchRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`
	// A field the sign-in must carry.
	SignInField *guard.Field `json:"sign_in_field,omitempty"`
	// How to learn who signed in at this endpoint.
	UserFrom []guard.IdentitySource `json:"user_from,omitempty"`
	// Its success criterion: default, cookie, redirect, status or whoami.
	Success        string   `json:"success,omitempty"`
	SuccessStatus  []int    `json:"success_status,omitempty"`
	SuccessCookies []string `json:"success_cookies,omitempty"`
}
