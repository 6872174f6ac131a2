package caddymodule

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/guard"
	"github.com/mfagate/mfagate/mfa"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mfa_gateway", parseCaddyfile)
	// Beside the auth directives: after basic_auth/forward_auth, and so
	// before handle, route, respond and reverse_proxy, which it must guard.
	httpcaddyfile.RegisterDirectiveOrder("mfa_gateway", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Gateway)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mfa_gateway {
//	    sign_in [<path>] | { <matchers> }       # required; repeatable
//	    sign_in_field <name> [<value>]
//	    sign_out [<path>] | { <matchers> }
//	    sign_out_on_request [true|false]
//	    normalize_users fold|none
//	    session_cookie <name|glob>...           # required
//	    user_from form|json|query|header <name>
//	    user_from basic
//	    user_from whoami <path> <json_field>    # repeatable, tried in order
//	    success default|cookie|redirect|status <code>...
//	    prefix <path>
//	    db_path <file>
//	    encryption_key <key>                    # e.g. {env.MFA_KEY}
//	    key_file <file>
//	    idle_timeout <duration>
//	    max_lifetime <duration>
//	    pending_timeout <duration>
//	    require_2fa [true|false]
//	    cookie_name <name>
//	    issuer <name>
//	    user_header <header>
//	    aal_header <header>
//	    strip_header <header>...
//	    strip_param <param>...
//	    max_attempts <n>
//	    max_failed_codes <n>
//	    remember_days <n>                       # 0 turns "remember this browser" off; default 30
//	    trusted_networks <cidr>...              # the second factor is skipped there (never the password)
//	    store_outage_limit <duration>           # signed-in traffic goes on from memory this long; default 60s
//	    enrol_email_proof on|off                # prove the reported email before a first factor; default on
//	    audit_max_events <n>
//	    attempt_window <duration>
//	    template_dir <dir>
//	    scope <name>
//	    policy_cache <duration>
//	    grace_period <duration>
//	    email_from form|json|header <name> | whoami <path> <json_field>
//	    email_template <template with {user}>
//	    widget {
//	        match <path> | { <matchers> }      # required; repeatable
//	        user_header <name>                 # default X-Widget-User-Id
//	        user_query <param>
//	        user_json <field>
//	        token_header <name>                # default Authorization (Bearer)
//	        token_query <param>
//	        verdict_header <name>              # default X-Widget-Identity
//	    }
//	    identity_overlap <duration>
//	    identity_leeway <duration>
//	    audit_retention <duration>
//	    smtp {
//	        host <host>
//	        port <port>
//	        security starttls|tls|none
//	        username <user>
//	        password <password>     # e.g. {env.SMTP_PASSWORD}
//	        from <address>
//	    }
//	    sms {
//	        webhook <url>           # a JSON POST signed with secret
//	        secret <secret>         # e.g. {env.SMS_SECRET}
//	        # or, for a Twilio-compatible Messages API:
//	        twilio <account_sid>
//	        auth_token <token>      # e.g. {env.TWILIO_TOKEN}
//	        from <number|service>
//	        base_url <url>          # default https://api.twilio.com
//	    }
//	    methods totp|email|sms...
//	    admins <user>...
//	    role_from header <name> | whoami <path> <json_field>
//	    admin_roles <role>...
//	}
func (m *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	once := func(name string) error {
		if seen[name] {
			return d.Errf("%s already specified", name)
		}
		seen[name] = true
		return nil
	}
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "sign_in":
			set, route, err := parseSignIn(d)
			if err != nil {
				return err
			}
			if route != nil {
				m.SignInRoutes = append(m.SignInRoutes, *route)
			} else {
				m.SignInRaw = append(m.SignInRaw, set)
			}
		case "sign_out":
			set, err := parseMatcher(d)
			if err != nil {
				return err
			}
			m.SignOutRaw = append(m.SignOutRaw, set)
		case "sign_in_field":
			if err := once(name); err != nil {
				return err
			}
			f, err := parseField(d)
			if err != nil {
				return err
			}
			m.SignInField = f
		case "session_cookie":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if strings.ContainsAny(a, "=; \t") {
					return d.Errf("session_cookie %q: not a cookie name or glob", a)
				}
			}
			m.SessionCookies = append(m.SessionCookies, args...)
		case "user_from", "email_from", "role_from":
			src, err := parseUserFrom(d)
			if err != nil {
				return err
			}
			switch name {
			case "user_from":
				m.UserFrom = append(m.UserFrom, src)
			case "email_from":
				m.EmailFrom = append(m.EmailFrom, src)
			default:
				if src.Kind != guard.FromHeader && src.Kind != guard.FromWhoami && src.Kind != guard.FromPage {
					return d.Errf("role_from %s: the client sends that; use header, whoami or page, which the app answers", src.Kind)
				}
				m.RoleFrom = append(m.RoleFrom, src)
			}
		case "widget":
			if err := once(name); err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			w, err := parseWidget(d)
			if err != nil {
				return err
			}
			m.Widget = w
		case "smtp":
			if err := once(name); err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			s, err := parseSMTP(d)
			if err != nil {
				return err
			}
			m.SMTP = s
		case "sms":
			if err := once(name); err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			s, err := parseSMS(d)
			if err != nil {
				return err
			}
			m.SMS = s
		case "methods":
			if err := once(name); err != nil {
				return err
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if a != mfa.MethodTOTP && a != mfa.MethodEmail && a != mfa.MethodSMS {
					return d.Errf("methods: %q is not a method: want totp, email or sms", a)
				}
			}
			m.Methods = args
		case "success":
			if err := once(name); err != nil {
				return err
			}
			var err error
			s, err := parseSuccess(d)
			if err != nil {
				return err
			}
			m.Success, m.SuccessStatus, m.SuccessCookies = s.Kind, s.Statuses, s.Cookies
		case "admins", "admin_roles":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if name == "admins" {
				m.Admins = append(m.Admins, args...)
			} else {
				m.AdminRoles = append(m.AdminRoles, args...)
			}
		case "prefix", "db_path", "encryption_key", "key_file", "cookie_name", "issuer", "user_header", "aal_header", "template_dir", "scope", "email_template", "normalize_users":
			if err := once(name); err != nil {
				return err
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if name == "normalize_users" && v != guard.NormalizeFold && v != guard.NormalizeNone {
				return d.Errf("normalize_users %q: want fold or none", v)
			}
			*m.stringField(name) = v
		case "idle_timeout", "max_lifetime", "pending_timeout", "attempt_window", "policy_cache", "grace_period", "identity_overlap", "identity_leeway", "audit_retention", "store_outage_limit":
			if err := once(name); err != nil {
				return err
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q: want a positive duration such as 30m or 12h", name, v)
			}
			if name == "idle_timeout" {
				if err := mfa.ValidateIdleTimeout(dur); err != nil {
					return d.Errf("idle_timeout %q: %v", v, err)
				}
			}
			*m.durationField(name) = caddy.Duration(dur)
		case "require_2fa", "sign_out_on_request":
			if err := once(name); err != nil {
				return err
			}
			dst := &m.Require2FA
			if name == "sign_out_on_request" {
				dst = &m.SignOutOnRequest
			}
			*dst = true
			if d.NextArg() {
				b, err := strconv.ParseBool(d.Val())
				if err != nil {
					return d.Errf("%s %q: want true or false", name, d.Val())
				}
				*dst = b
				if d.NextArg() {
					return d.ArgErr()
				}
			}
		case "strip_header", "strip_param":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if name == "strip_header" {
				m.StripHeaders = append(m.StripHeaders, args...)
			} else {
				m.StripParams = append(m.StripParams, args...)
			}
		case "enrol_email_proof":
			if err := once(name); err != nil {
				return err
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if v != "on" && v != "off" {
				return d.Errf("enrol_email_proof %q: want on or off", v)
			}
			on := v == "on"
			m.EnrolEmailProof = &on
		case "trusted_networks":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if _, err := netip.ParsePrefix(a); err != nil {
					return d.Errf("trusted_networks: %q is not a network like 10.0.0.0/8", a)
				}
			}
			m.TrustedNetworks = append(m.TrustedNetworks, args...)
		case "remember_days":
			if err := once(name); err != nil {
				return err
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 365 {
				return d.Errf("remember_days %q: want a number from 0 (off) to 365", v)
			}
			m.RememberDays = &n
		case "max_attempts", "max_failed_codes", "audit_max_events":
			if err := once(name); err != nil {
				return err
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			dst, most := &m.MaxAttempts, 1000
			switch name {
			case "max_failed_codes":
				dst, most = &m.MaxFailedCodes, 100
			case "audit_max_events":
				dst, most = &m.AuditMaxEvents, 100_000_000
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > most {
				return d.Errf("%s %q: want a number from 1 to %d", name, v, most)
			}
			*dst = n
		default:
			return d.Errf("unrecognized subdirective '%s'", name)
		}
	}
	return nil
}

func (m *Gateway) stringField(name string) *string {
	return map[string]*string{
		"prefix": &m.Prefix, "db_path": &m.DBPath, "encryption_key": &m.EncryptionKey,
		"key_file": &m.KeyFile, "cookie_name": &m.CookieName, "issuer": &m.Issuer,
		"user_header": &m.UserHeader, "aal_header": &m.AALHeader, "template_dir": &m.TemplateDir,
		"scope": &m.Scope, "email_template": &m.EmailTemplate, "normalize_users": &m.NormalizeUsers,
	}[name]
}

func (m *Gateway) durationField(name string) *caddy.Duration {
	return map[string]*caddy.Duration{
		"idle_timeout": &m.IdleTimeout, "max_lifetime": &m.MaxLifetime,
		"pending_timeout": &m.PendingTimeout, "attempt_window": &m.AttemptWindow,
		"policy_cache": &m.PolicyCache, "grace_period": &m.GracePeriod, "store_outage_limit": &m.StoreOutageLimit,
		"identity_overlap": &m.IdentityOverlap, "identity_leeway": &m.IdentityLeeway, "audit_retention": &m.AuditRetention,
	}[name]
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// parseMatcher reads `sign_in /path`, `sign_in POST /path` or a nested
// matcher block.
// parseField reads `sign_in_field <name> [<value>]`.
func parseField(d *caddyfile.Dispenser) (*guard.Field, error) {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return nil, d.ArgErr()
	}
	f := &guard.Field{Name: args[0]}
	if len(args) == 2 {
		f.Value = args[1]
	}
	return f, nil
}

// parseSuccess reads `success <kind> [<status>...|<cookie>...]`.
func parseSuccess(d *caddyfile.Dispenser) (guard.Success, error) {
	var s guard.Success
	if !d.NextArg() {
		return s, d.ArgErr()
	}
	s.Kind = d.Val()
	switch s.Kind {
	case guard.SuccessDefault, guard.SuccessRedirect, guard.SuccessWhoami:
		if d.NextArg() {
			return s, d.ArgErr()
		}
	case guard.SuccessCookie:
		for d.NextArg() {
			if err := cookies.CheckPattern(d.Val()); err != nil {
				return s, d.Errf("success cookie: %v", err)
			}
			s.Cookies = append(s.Cookies, d.Val())
		}
	case guard.SuccessStatus:
		for d.NextArg() {
			code, err := strconv.Atoi(d.Val())
			if err != nil || code < 100 || code > 599 {
				return s, d.Errf("success status %q: want an HTTP status code", d.Val())
			}
			s.Statuses = append(s.Statuses, code)
		}
		if len(s.Statuses) == 0 {
			return s, d.Err("success status: at least one status code is required")
		}
	default:
		return s, d.Errf("success %q: want default, cookie, redirect, status or whoami", s.Kind)
	}
	return s, nil
}

// parseSignIn reads a sign_in: a path (with a method), or a block of Caddy
// matchers. Its block may also hold user_from, sign_in_field and success:
// then it is a sign-in route with rules of its own, returned as route.
//
//	sign_in POST /api/login {
//		user_from json login
//		success status 200
//	}
func parseSignIn(d *caddyfile.Dispenser) (set caddy.ModuleMap, route *SignInRoute, err error) {
	name := d.Token()
	args := d.RemainingArgs()
	var rt SignInRoute
	var matchers []caddyfile.Token
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "user_from":
			src, err := parseUserFrom(d)
			if err != nil {
				return nil, nil, err
			}
			rt.UserFrom = append(rt.UserFrom, src)
		case "sign_in_field":
			if rt.SignInField != nil {
				return nil, nil, d.Err("sign_in_field already specified in this sign_in")
			}
			if rt.SignInField, err = parseField(d); err != nil {
				return nil, nil, err
			}
		case "success":
			if rt.Success != "" {
				return nil, nil, d.Err("success already specified in this sign_in")
			}
			s, err := parseSuccess(d)
			if err != nil {
				return nil, nil, err
			}
			rt.Success, rt.SuccessStatus, rt.SuccessCookies = s.Kind, s.Statuses, s.Cookies
		default:
			if len(args) > 0 {
				return nil, nil, d.Errf("sign_in with a path: its block takes user_from, sign_in_field and success, not %q", d.Val())
			}
			matchers = append(matchers, d.NextSegment()...)
		}
	}
	if len(args) > 0 {
		set, err = matcherShorthand(d, name.Text, args)
	} else {
		set, err = nestedMatchers(d, name, matchers)
	}
	if err != nil {
		return nil, nil, err
	}
	if rt.UserFrom == nil && rt.SignInField == nil && rt.Success == "" {
		return set, nil, nil
	}
	rt.MatchRaw = caddyhttp.RawMatcherSets{set}
	return set, &rt, nil
}

// nestedMatchers parses matcher lines taken out of a sign_in block as the
// block of Caddy matchers they were.
func nestedMatchers(d *caddyfile.Dispenser, name caddyfile.Token, matchers []caddyfile.Token) (caddy.ModuleMap, error) {
	if len(matchers) == 0 {
		return nil, d.Errf("%s: a path or a block of matchers is required", name.Text)
	}
	open, end := name.Clone(), name.Clone()
	open.Text = "{"
	end.Text, end.Line = "}", matchers[len(matchers)-1].Line+1
	toks := append([]caddyfile.Token{name, open}, matchers...)
	sub := caddyfile.NewDispenser(append(toks, end))
	sub.Next()
	set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(sub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name.Text, err)
	}
	if len(set) == 0 {
		return nil, d.Errf("%s: a path or a block of matchers is required", name.Text)
	}
	return set, nil
}

func parseMatcher(d *caddyfile.Dispenser) (caddy.ModuleMap, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err) // err names the line already
		}
		if len(set) == 0 {
			return nil, d.Errf("%s: a path or a block of matchers is required", name)
		}
		return set, nil
	}
	return matcherShorthand(d, name, args)
}

// matcherShorthand is `<path>` or `<method> <path>`.
func matcherShorthand(d *caddyfile.Dispenser, name string, args []string) (caddy.ModuleMap, error) {
	if len(args) > 2 {
		return nil, d.ArgErr()
	}
	set := caddy.ModuleMap{}
	p := args[len(args)-1]
	if !strings.HasPrefix(p, "/") {
		return nil, d.Errf("%s %q: path must start with /", name, p)
	}
	set["path"] = caddyconfigJSON([]string{p})
	if len(args) == 2 {
		set["method"] = caddyconfigJSON([]string{strings.ToUpper(args[0])})
	}
	return set, nil
}

func parseUserFrom(d *caddyfile.Dispenser) (guard.IdentitySource, error) {
	directive := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return guard.IdentitySource{}, d.ArgErr()
	}
	src := guard.IdentitySource{Kind: args[0]}
	switch src.Kind {
	case guard.FromForm, guard.FromJSON, guard.FromQuery, guard.FromHeader:
		if len(args) != 2 {
			return src, d.Errf("%s %s: want exactly one field or header name", directive, src.Kind)
		}
		src.Name = args[1]
	case guard.FromBasic:
		if len(args) != 1 {
			return src, d.ArgErr()
		}
	case guard.FromWhoami:
		switch {
		case len(args) == 3:
		case len(args) == 5 && args[3] == "nobody_if":
			src.Nobody = args[4]
		default:
			return src, d.Errf("%s whoami: want <path starting with /> <json field> [nobody_if <json field>]", directive)
		}
		if !strings.HasPrefix(args[1], "/") {
			return src, d.Errf("%s whoami: want <path starting with /> <json field> [nobody_if <json field>]", directive)
		}
		src.Path, src.Field = args[1], args[2]
	case guard.FromPage:
		if len(args) != 3 || !strings.HasPrefix(args[1], "/") {
			return src, d.Errf("%s page: want <path starting with /> <regular expression with a group for the user>", directive)
		}
		src.Path, src.Match = args[1], args[2]
	default:
		return src, d.Errf("%s %q: want form, json, query, header, basic, whoami or page", directive, src.Kind)
	}
	if err := src.Check(); err != nil {
		return src, d.Errf("%s: %v", directive, err)
	}
	return src, nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Gateway)(nil)

func caddyconfigJSON(v any) []byte { return caddyconfig.JSON(v, nil) }

func parseSMTP(d *caddyfile.Dispenser) (*SMTPConfig, error) {
	s := &SMTPConfig{}
	for d.NextBlock(1) {
		opt := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		switch opt {
		case "host":
			s.Host = v
		case "port":
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return nil, d.Errf("smtp port %q: want 1 to 65535", v)
			}
			s.Port = p
		case "security":
			if v != "starttls" && v != "tls" && v != "none" {
				return nil, d.Errf("smtp security %q: want starttls, tls or none", v)
			}
			s.Security = v
		case "username":
			s.Username = v
		case "password":
			s.Password = v
		case "from":
			s.From = v
		default:
			return nil, d.Errf("unrecognized smtp option '%s'", opt)
		}
	}
	if s.Host == "" || s.From == "" {
		return nil, d.Err("smtp: host and from are required")
	}
	return s, nil
}

func parseSMS(d *caddyfile.Dispenser) (*SMSConfig, error) {
	s := &SMSConfig{}
	for d.NextBlock(1) {
		opt := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		switch opt {
		case "webhook":
			s.Webhook = v
		case "secret":
			s.Secret = v
		case "twilio":
			s.TwilioSID = v
		case "auth_token":
			s.AuthToken = v
		case "from":
			s.From = v
		case "base_url":
			s.BaseURL = v
		default:
			return nil, d.Errf("unrecognized sms option '%s'", opt)
		}
	}
	switch {
	case s.Webhook != "" && s.TwilioSID != "":
		return nil, d.Err("sms: choose webhook or twilio, not both")
	case s.Webhook != "" && s.Secret == "":
		return nil, d.Err("sms: webhook needs a secret")
	case s.TwilioSID != "" && (s.AuthToken == "" || s.From == ""):
		return nil, d.Err("sms: twilio needs auth_token and from")
	case s.Webhook == "" && s.TwilioSID == "":
		return nil, d.Err("sms: set webhook or twilio")
	}
	return s, nil
}

func parseWidget(d *caddyfile.Dispenser) (*WidgetConfig, error) {
	w := &WidgetConfig{}
	for d.NextBlock(1) {
		opt := d.Val()
		if opt == "match" {
			set, err := parseMatcher(d)
			if err != nil {
				return nil, err
			}
			w.MatchRaw = append(w.MatchRaw, set)
			continue
		}
		v, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		switch opt {
		case "user_header":
			w.UserHeader = v
		case "user_query":
			w.UserQuery = v
		case "user_json":
			w.UserJSON = v
		case "token_header":
			w.TokenHeader = v
		case "token_query":
			w.TokenQuery = v
		case "verdict_header":
			w.VerdictHeader = v
		default:
			return nil, d.Errf("unrecognized widget option '%s'", opt)
		}
	}
	if len(w.MatchRaw) == 0 {
		return nil, d.Err("widget: a match for the widget requests is required")
	}
	return w, nil
}
