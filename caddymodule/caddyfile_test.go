package caddymodule

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // reverse_proxy etc. for the adapt test

	"github.com/mfagate/mfagate/guard"
)

// block builds an mfa_gateway Caddyfile segment whose body lines start on
// line 2 of "Testfile", so error cases can name the line they expect.
func block(lines ...string) string {
	return "mfa_gateway {\n\t" + strings.Join(lines, "\n\t") + "\n}"
}

// matcherSet is the raw JSON of a path (and optional method) matcher set, as
// both the shorthand and ParseCaddyfileNestedMatcherSet produce it.
func matcherSet(method, path string) caddy.ModuleMap {
	set := caddy.ModuleMap{"path": caddyconfig.JSON([]string{path}, nil)}
	if method != "" {
		set["method"] = caddyconfig.JSON([]string{method}, nil)
	}
	return set
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Gateway
	}{
		{
			name:  "empty block",
			input: "mfa_gateway {\n}",
			want:  Gateway{},
		},
		{
			name:  "bare directive",
			input: "mfa_gateway",
			want:  Gateway{},
		},
		{
			name:  "sign_in path shorthand",
			input: block("sign_in /login"),
			want:  Gateway{SignInRaw: caddyhttpSets(matcherSet("", "/login"))},
		},
		{
			name:  "sign_in method and path",
			input: block("sign_in POST /login"),
			want:  Gateway{SignInRaw: caddyhttpSets(matcherSet("POST", "/login"))},
		},
		{
			name:  "sign_in method is upper-cased",
			input: block("sign_in post /login"),
			want:  Gateway{SignInRaw: caddyhttpSets(matcherSet("POST", "/login"))},
		},
		{
			name:  "sign_in nested matcher block",
			input: block("sign_in {", "\tmethod POST", "\tpath /x", "}"),
			want:  Gateway{SignInRaw: caddyhttpSets(matcherSet("POST", "/x"))},
		},
		{
			name:  "sign_in nested block followed by more options",
			input: block("sign_in {", "\tpath /x", "}", "session_cookie sid"),
			want: Gateway{
				SignInRaw:      caddyhttpSets(matcherSet("", "/x")),
				SessionCookies: []string{"sid"},
			},
		},
		{
			name:  "sign_out nested matcher block",
			input: block("sign_out {", "\tmethod POST", "\tpath /logout", "}"),
			want:  Gateway{SignOutRaw: caddyhttpSets(matcherSet("POST", "/logout"))},
		},
		{
			name:  "multiple sign_in are ORed sets in order",
			input: block("sign_in POST /login", "sign_in /api/session"),
			want:  Gateway{SignInRaw: caddyhttpSets(matcherSet("POST", "/login"), matcherSet("", "/api/session"))},
		},
		{
			name:  "sign_out shorthand",
			input: block("sign_out GET /logout"),
			want:  Gateway{SignOutRaw: caddyhttpSets(matcherSet("GET", "/logout"))},
		},
		{
			name:  "sign_in_field with value",
			input: block("sign_in_field do login"),
			want:  Gateway{SignInField: &guard.Field{Name: "do", Value: "login"}},
		},
		{
			name:  "sign_in_field without value means present",
			input: block("sign_in_field login"),
			want:  Gateway{SignInField: &guard.Field{Name: "login"}},
		},
		{
			name:  "session_cookie several and glob, repeatable",
			input: block("session_cookie sid remember_me", "session_cookie wp_logged_in_*"),
			want:  Gateway{SessionCookies: []string{"sid", "remember_me", "wp_logged_in_*"}},
		},
		{
			name: "user_from every kind, in order",
			input: block(
				"user_from form username",
				"user_from json email",
				"user_from query user",
				"user_from header X-Remote-User",
				"user_from basic",
				"user_from whoami /api/me login",
			),
			want: Gateway{UserFrom: []guard.IdentitySource{
				{Kind: guard.FromForm, Name: "username"},
				{Kind: guard.FromJSON, Name: "email"},
				{Kind: guard.FromQuery, Name: "user"},
				{Kind: guard.FromHeader, Name: "X-Remote-User"},
				{Kind: guard.FromBasic},
				{Kind: guard.FromWhoami, Path: "/api/me", Field: "login"},
			}},
		},
		{
			name: "user_from whoami with nobody_if, and page",
			input: block(
				"user_from whoami /api.php?action=query&meta=userinfo query.userinfo.name nobody_if query.userinfo.anon",
				`user_from page /home "<b id=\"user\">([^<]+)</b>"`,
			),
			want: Gateway{UserFrom: []guard.IdentitySource{
				{Kind: guard.FromWhoami, Path: "/api.php?action=query&meta=userinfo", Field: "query.userinfo.name", Nobody: "query.userinfo.anon"},
				{Kind: guard.FromPage, Path: "/home", Match: `<b id="user">([^<]+)</b>`},
			}},
		},
		{
			name:  "sign_in routes with rules of their own",
			input: block("sign_in POST /api/login {", "\tuser_from json login", "\tsuccess status 200", "}", "sign_in {", "\tpath /index.php", "\tmethod POST", "\tsign_in_field do login", "}", "sign_in POST /login"),
			want: Gateway{
				SignInRaw: caddyhttpSets(matcherSet("POST", "/login")),
				SignInRoutes: []SignInRoute{
					{
						MatchRaw: caddyhttpSets(matcherSet("POST", "/api/login")),
						UserFrom: []guard.IdentitySource{{Kind: guard.FromJSON, Name: "login"}}, Success: "status", SuccessStatus: []int{200},
					},
					{
						MatchRaw:    caddyhttpSets(matcherSet("POST", "/index.php")),
						SignInField: &guard.Field{Name: "do", Value: "login"},
					},
				},
			},
		},
		{name: "success whoami", input: block("user_from whoami /me user", "success whoami"), want: Gateway{Success: "whoami", UserFrom: []guard.IdentitySource{{Kind: guard.FromWhoami, Path: "/me", Field: "user"}}}},
		{name: "sign_out_on_request bare", input: block("sign_out_on_request"), want: Gateway{SignOutOnRequest: true}},
		{name: "normalize_users fold", input: block("normalize_users fold"), want: Gateway{NormalizeUsers: "fold"}},
		{name: "sign_out_on_request false", input: block("sign_out_on_request false"), want: Gateway{}},
		{name: "success default", input: block("success default"), want: Gateway{Success: "default"}},
		{name: "success cookie", input: block("success cookie"), want: Gateway{Success: "cookie"}},
		{name: "success cookie names", input: block("success cookie logged_in remember_*"), want: Gateway{Success: "cookie", SuccessCookies: []string{"logged_in", "remember_*"}}},
		{name: "success redirect", input: block("success redirect"), want: Gateway{Success: "redirect"}},
		{
			name:  "success status codes",
			input: block("success status 200 302"),
			want:  Gateway{Success: "status", SuccessStatus: []int{200, 302}},
		},
		{
			name: "single-valued strings",
			input: block(
				"prefix /_auth/",
				"db_path /var/lib/mfa/db",
				"encryption_key {env.MFA_KEY}",
				"key_file /var/lib/mfa/key",
				"cookie_name gw",
				`issuer "Acme Wiki"`,
				"user_header X-User",
				"aal_header X-Aal",
				"template_dir /etc/mfa/templates",
			),
			want: Gateway{
				Prefix: "/_auth/", DBPath: "/var/lib/mfa/db", EncryptionKey: "{env.MFA_KEY}",
				KeyFile: "/var/lib/mfa/key", CookieName: "gw", Issuer: "Acme Wiki",
				UserHeader: "X-User", AALHeader: "X-Aal", TemplateDir: "/etc/mfa/templates",
			},
		},
		{
			name: "durations",
			input: block(
				"idle_timeout 30m",
				"max_lifetime 12h",
				"pending_timeout 10m",
				"attempt_window 1h30m",
			),
			want: Gateway{
				IdleTimeout:    caddy.Duration(30 * time.Minute),
				MaxLifetime:    caddy.Duration(12 * time.Hour),
				PendingTimeout: caddy.Duration(10 * time.Minute),
				AttemptWindow:  caddy.Duration(90 * time.Minute),
			},
		},
		{
			name:  "idle_timeout lower bound",
			input: block("idle_timeout 5m"),
			want:  Gateway{IdleTimeout: caddy.Duration(5 * time.Minute)},
		},
		{
			name:  "idle_timeout upper bound in days",
			input: block("idle_timeout 1d"),
			want:  Gateway{IdleTimeout: caddy.Duration(1440 * time.Minute)},
		},
		{name: "require_2fa bare", input: block("require_2fa"), want: Gateway{Require2FA: true}},
		{name: "require_2fa true", input: block("require_2fa true"), want: Gateway{Require2FA: true}},
		{name: "require_2fa false", input: block("require_2fa false"), want: Gateway{Require2FA: false}},
		{
			name:  "strip_header and strip_param, repeatable",
			input: block("strip_header Authorization X-Api-Key", "strip_param token", "strip_header Cookie2", "strip_param api_key sid"),
			want: Gateway{
				StripHeaders: []string{"Authorization", "X-Api-Key", "Cookie2"},
				StripParams:  []string{"token", "api_key", "sid"},
			},
		},
		{name: "max_attempts", input: block("max_attempts 10"), want: Gateway{MaxAttempts: 10}},
		{name: "max_attempts bounds", input: block("max_attempts 1000"), want: Gateway{MaxAttempts: 1000}},
		{name: "max_failed_codes", input: block("max_failed_codes 10"), want: Gateway{MaxFailedCodes: 10}},
		{name: "audit_max_events", input: block("audit_max_events 5000"), want: Gateway{AuditMaxEvents: 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Gateway
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			gotJSON, wantJSON := mustJSON(t, &got), mustJSON(t, &tt.want)
			if gotJSON != wantJSON {
				t.Errorf("parsed\n got: %s\nwant: %s", gotJSON, wantJSON)
			}
			if got.Require2FA != tt.want.Require2FA {
				t.Errorf("Require2FA = %v, want %v", got.Require2FA, tt.want.Require2FA)
			}
		})
	}
}

// TestUnmarshalCaddyfileErrors checks that bad input is refused and that the
// error names the offending line, in the "…, at Testfile:<line>" form that
// Dispenser.Err/Errf/ArgErr produce.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		line     int
		lastLine int    // for errors inside a block: any line from line to lastLine
		contains string // a part of the message that says what was wrong
	}{
		{name: "argument on the directive", input: "mfa_gateway extra {\n}", line: 1, contains: "wrong argument count"},
		{name: "unknown subdirective", input: block("session_cookie sid", "sign_on /login"), line: 3, contains: "unrecognized subdirective 'sign_on'"},

		{name: "sign_in without path or block", input: block("sign_in"), line: 2, contains: "a path or a block of matchers is required"},
		{name: "sign_in empty block", input: block("sign_in {", "}"), line: 2, lastLine: 3, contains: "sign_in"},
		{name: "sign_in too many args", input: block("sign_in POST /login /other"), line: 2, contains: "wrong argument count"},
		{name: "sign_in path without slash", input: block("sign_in login"), line: 2, contains: "path must start with /"},
		{name: "sign_in method and path without slash", input: block("sign_in POST login"), line: 2, contains: "path must start with /"},
		{name: "sign_in unknown matcher in block", input: block("sign_in {", "\tnot_a_matcher x", "}"), line: 2, lastLine: 4, contains: "not_a_matcher"},
		{name: "sign_out without path", input: block("sign_out"), line: 2, contains: "sign_out"},

		{name: "sign_in_field missing name", input: block("sign_in_field"), line: 2, contains: "wrong argument count"},
		{name: "sign_in_field extra arg", input: block("sign_in_field do login now"), line: 2, contains: "wrong argument count"},
		{name: "sign_in_field twice", input: block("sign_in_field do login", "sign_in_field x"), line: 3, contains: "sign_in_field already specified"},

		{name: "session_cookie missing", input: block("session_cookie"), line: 2, contains: "wrong argument count"},
		{name: "session_cookie with =", input: block("session_cookie sid=abc"), line: 2, contains: `session_cookie "sid=abc"`},
		{name: "session_cookie with ; (quoted)", input: block(`session_cookie "a;b"`), line: 2, contains: "not a cookie name"},
		{name: "session_cookie with space (quoted)", input: block(`session_cookie "a b"`), line: 2, contains: "not a cookie name"},

		{name: "user_from missing", input: block("user_from"), line: 2, contains: "wrong argument count"},
		{name: "user_from unknown kind", input: block("user_from ldap uid"), line: 2, contains: `user_from "ldap"`},
		{name: "user_from form without field", input: block("user_from form"), line: 2, contains: "user_from form"},
		{name: "user_from header extra", input: block("user_from header X-User X-Other"), line: 2, contains: "user_from header"},
		{name: "user_from basic extra", input: block("user_from basic user"), line: 2, contains: "wrong argument count"},
		{name: "user_from whoami without field", input: block("user_from whoami /api/me"), line: 2, contains: "user_from whoami"},
		{name: "user_from whoami path without slash", input: block("user_from whoami api/me login"), line: 2, contains: "user_from whoami"},

		{name: "user_from whoami nobody_if without field", input: block("user_from whoami /me user nobody_if"), line: 2, contains: "nobody_if"},
		{name: "user_from whoami bad word", input: block("user_from whoami /me user unless anon"), line: 2, contains: "nobody_if"},
		{name: "user_from whoami field with empty part", input: block("user_from whoami /me a..b"), line: 2, contains: "empty name between dots"},
		{name: "user_from page without group", input: block("user_from page / user"), line: 2, contains: "a group for the user"},
		{name: "user_from page bad regexp", input: block("user_from page / (x"), line: 2, contains: "a group for the user"},
		{name: "user_from page without regexp", input: block("user_from page /"), line: 2, contains: "user_from page"},
		{name: "normalize_users unknown", input: block("normalize_users lower"), line: 2, contains: `normalize_users "lower": want fold or none`},
		{name: "sign_out_on_request not a bool", input: block("sign_out_on_request maybe"), line: 2, contains: `sign_out_on_request "maybe": want true or false`},
		{name: "success missing", input: block("success"), line: 2, contains: "wrong argument count"},
		{name: "success unknown", input: block("success teapot"), line: 2, contains: `success "teapot"`},
		{name: "success cookie bad name", input: block("success cookie a=b"), line: 2, contains: "success cookie"},
		{name: "success redirect extra", input: block("success redirect 302"), line: 2, contains: "wrong argument count"},
		{name: "success status without codes", input: block("success status"), line: 2, contains: "at least one status code"},
		{name: "success status not a number", input: block("success status ok"), line: 2, contains: `success status "ok"`},
		{name: "success status too small", input: block("success status 99"), line: 2, contains: `success status "99"`},
		{name: "success status too large", input: block("success status 200 600"), line: 2, contains: `success status "600"`},
		{name: "success twice", input: block("success cookie", "success redirect"), line: 3, contains: "success already specified"},

		{name: "prefix missing", input: block("prefix"), line: 2, contains: "wrong argument count"},
		{name: "prefix extra", input: block("prefix /a /b"), line: 2, contains: "wrong argument count"},
		{name: "prefix twice", input: block("prefix /a/", "session_cookie sid", "prefix /b/"), line: 4, contains: "prefix already specified"},
		{name: "db_path twice", input: block("db_path a", "db_path b"), line: 3, contains: "db_path already specified"},
		{name: "encryption_key twice", input: block("encryption_key {env.A}", "encryption_key {env.B}"), line: 3, contains: "encryption_key already specified"},
		{name: "cookie_name twice", input: block("cookie_name a", "cookie_name b"), line: 3, contains: "cookie_name already specified"},
		{name: "template_dir twice", input: block("template_dir a", "template_dir b"), line: 3, contains: "template_dir already specified"},

		{name: "idle_timeout missing", input: block("idle_timeout"), line: 2, contains: "wrong argument count"},
		{name: "idle_timeout bad", input: block("idle_timeout soon"), line: 2, contains: `idle_timeout "soon"`},
		{name: "idle_timeout zero", input: block("idle_timeout 0"), line: 2, contains: `idle_timeout "0"`},
		{name: "idle_timeout negative", input: block("idle_timeout -5m"), line: 2, contains: `idle_timeout "-5m"`},
		{name: "idle_timeout below range", input: block("idle_timeout 2m"), line: 2, contains: "5 to 1440 minutes"},
		{name: "idle_timeout above range", input: block("idle_timeout 2000m"), line: 2, contains: "5 to 1440 minutes"},
		{name: "idle_timeout twice", input: block("idle_timeout 30m", "idle_timeout 40m"), line: 3, contains: "idle_timeout already specified"},
		{name: "max_lifetime bad", input: block("max_lifetime 12x"), line: 2, contains: `max_lifetime "12x"`},
		{name: "max_lifetime extra", input: block("max_lifetime 12h 1h"), line: 2, contains: "wrong argument count"},
		{name: "pending_timeout bad", input: block("pending_timeout ten"), line: 2, contains: `pending_timeout "ten"`},
		{name: "attempt_window twice", input: block("attempt_window 1m", "attempt_window 2m"), line: 3, contains: "attempt_window already specified"},

		{name: "require_2fa not a bool", input: block("require_2fa maybe"), line: 2, contains: `require_2fa "maybe"`},
		{name: "require_2fa extra", input: block("require_2fa true false"), line: 2, contains: "wrong argument count"},
		{name: "require_2fa twice", input: block("require_2fa", "require_2fa false"), line: 3, contains: "require_2fa already specified"},

		{name: "strip_header missing", input: block("strip_header"), line: 2, contains: "wrong argument count"},
		{name: "strip_param missing", input: block("strip_param"), line: 2, contains: "wrong argument count"},

		{name: "max_attempts zero", input: block("max_attempts 0"), line: 2, contains: `max_attempts "0"`},
		{name: "max_attempts too many", input: block("max_attempts 1001"), line: 2, contains: `max_attempts "1001"`},
		{name: "max_attempts not a number", input: block("max_attempts five"), line: 2, contains: `max_attempts "five"`},
		{name: "max_attempts twice", input: block("max_attempts 3", "max_attempts 4"), line: 3, contains: "max_attempts already specified"},
		{name: "audit_max_events zero", input: block("audit_max_events 0"), line: 2, contains: `audit_max_events "0": want a number from 1 to 100000000`},
		{name: "max_failed_codes zero", input: block("max_failed_codes 0"), line: 2, contains: `max_failed_codes "0": want a number from 1 to 100`},
		{name: "max_failed_codes over the cap", input: block("max_failed_codes 101"), line: 2, contains: `max_failed_codes "101"`},

		{name: "sign_out too many args", input: block("sign_out POST /logout /other"), line: 2, contains: "wrong argument count"},
		{name: "sign_out path without slash", input: block("sign_out logout"), line: 2, contains: `sign_out "logout": path must start with /`},
		{name: "sign_in shorthand with matchers in its block", input: block("sign_in /login {", "\tmethod POST", "}"), line: 3, contains: `its block takes user_from, sign_in_field and success, not "method"`},
		{name: "sign_in route with success twice", input: block("sign_in /login {", "\tsuccess redirect", "\tsuccess cookie", "}"), line: 4, contains: "success already specified in this sign_in"},
		{name: "sign_in route with a bad source", input: block("sign_in /login {", "\tuser_from teapot x", "}"), line: 3, contains: `user_from "teapot"`},

		{name: "key_file missing", input: block("key_file"), line: 2, contains: "wrong argument count"},
		{name: "key_file twice", input: block("key_file a", "key_file b"), line: 3, contains: "key_file already specified"},
		{name: "issuer extra", input: block("issuer Acme Wiki"), line: 2, contains: "wrong argument count"},
		{name: "issuer twice", input: block("issuer a", "issuer b"), line: 3, contains: "issuer already specified"},
		{name: "user_header missing", input: block("user_header"), line: 2, contains: "wrong argument count"},
		{name: "user_header twice", input: block("user_header X-A", "user_header X-B"), line: 3, contains: "user_header already specified"},
		{name: "aal_header extra", input: block("aal_header X-A X-B"), line: 2, contains: "wrong argument count"},
		{name: "aal_header twice", input: block("aal_header X-A", "aal_header X-B"), line: 3, contains: "aal_header already specified"},
		{name: "scope missing", input: block("scope"), line: 2, contains: "wrong argument count"},
		{name: "scope extra", input: block("scope agents users"), line: 2, contains: "wrong argument count"},
		{name: "scope twice", input: block("scope agents", "session_cookie sid", "scope users"), line: 4, contains: "scope already specified"},
		{name: "email_template missing", input: block("email_template"), line: 2, contains: "wrong argument count"},
		{name: "email_template twice", input: block("email_template {user}@a.example", "email_template {user}@b.example"), line: 3, contains: "email_template already specified"},

		{name: "policy_cache zero", input: block("policy_cache 0"), line: 2, contains: `policy_cache "0"`},
		{name: "policy_cache twice", input: block("policy_cache 1m", "policy_cache 2m"), line: 3, contains: "policy_cache already specified"},
		{name: "grace_period bad", input: block("grace_period week"), line: 2, contains: `grace_period "week"`},
		{name: "grace_period twice", input: block("grace_period 1d", "grace_period 2d"), line: 3, contains: "grace_period already specified"},
		{name: "audit_retention negative", input: block("audit_retention -1h"), line: 2, contains: `audit_retention "-1h"`},
		{name: "audit_retention missing", input: block("audit_retention"), line: 2, contains: "wrong argument count"},
		{name: "identity_overlap missing", input: block("identity_overlap"), line: 2, contains: "wrong argument count"},
		{name: "identity_overlap bad", input: block("identity_overlap soon"), line: 2, contains: `identity_overlap "soon"`},
		{name: "identity_leeway extra", input: block("identity_leeway 1s 2s"), line: 2, contains: "wrong argument count"},
		{name: "identity_leeway twice", input: block("identity_leeway 1s", "identity_leeway 2s"), line: 3, contains: "identity_leeway already specified"},

		{name: "admins missing", input: block("admins"), line: 2, contains: "wrong argument count"},
		{name: "admin_roles missing", input: block("admin_roles"), line: 2, contains: "wrong argument count"},
		{name: "role_from missing", input: block("role_from"), line: 2, contains: "wrong argument count"},
		{name: "role_from unknown kind", input: block("role_from ldap memberOf"), line: 2, contains: `role_from "ldap"`},
		{name: "role_from whoami without field", input: block("role_from whoami /api/me"), line: 2, contains: "role_from whoami"},
		{name: "role_from header without name", input: block("role_from header"), line: 2, contains: "role_from header"},
		{name: "role_from form", input: block("role_from form role"), line: 2, contains: "role_from form: the client sends that"},
		{name: "role_from query", input: block("role_from query role"), line: 2, contains: "role_from query: the client sends that"},
		{name: "email_from missing", input: block("email_from"), line: 2, contains: "wrong argument count"},
		{name: "email_from unknown kind", input: block("email_from ldap mail"), line: 2, contains: `email_from "ldap"`},
		{name: "email_from json extra", input: block("email_from json email mail"), line: 2, contains: "email_from json"},
		{name: "email_from whoami path without slash", input: block("email_from whoami me email"), line: 2, contains: "email_from whoami"},
		{name: "email_from basic extra", input: block("email_from basic x"), line: 2, contains: "wrong argument count"},

		{name: "smtp argument", input: block("smtp mail.example.com {", "}"), line: 2, contains: "wrong argument count"},
		{name: "smtp without block", input: block("smtp"), line: 2, contains: "smtp: host and from are required"},
		{name: "smtp without from", input: block("smtp {", "\thost smtp.example.com", "}"), line: 2, lastLine: 4, contains: "smtp: host and from are required"},
		{name: "smtp without host", input: block("smtp {", "\tfrom a@example.com", "}"), line: 2, lastLine: 4, contains: "smtp: host and from are required"},
		{name: "smtp unknown option", input: block("smtp {", "\thost h", "\tsender a@example.com", "}"), line: 4, contains: "unrecognized smtp option 'sender'"},
		{name: "smtp option missing value", input: block("smtp {", "\thost", "}"), line: 3, contains: "wrong argument count"},
		{name: "smtp option extra value", input: block("smtp {", "\thost a b", "}"), line: 3, contains: "wrong argument count"},
		{name: "smtp port not a number", input: block("smtp {", "\tport smtp", "}"), line: 3, contains: `smtp port "smtp"`},
		{name: "smtp port zero", input: block("smtp {", "\tport 0", "}"), line: 3, contains: `smtp port "0"`},
		{name: "smtp port too large", input: block("smtp {", "\tport 65536", "}"), line: 3, contains: `smtp port "65536"`},
		{name: "smtp security unknown", input: block("smtp {", "\tsecurity ssl", "}"), line: 3, contains: `smtp security "ssl"`},
		{name: "smtp twice", input: block("smtp {", "\thost h", "\tfrom a@example.com", "}", "smtp {", "}"), line: 6, contains: "smtp already specified"},

		{name: "widget argument", input: block("widget /widget/* {", "}"), line: 2, contains: "wrong argument count"},
		{name: "widget without block", input: block("widget"), line: 2, contains: "widget: a match for the widget requests is required"},
		{name: "widget without match", input: block("widget {", "\tuser_header X-User", "}"), line: 2, lastLine: 4, contains: "widget: a match for the widget requests is required"},
		{name: "widget match without path", input: block("widget {", "\tmatch", "}"), line: 3, contains: "match: a path or a block of matchers is required"},
		{name: "widget match empty block", input: block("widget {", "\tmatch {", "\t}", "}"), line: 3, lastLine: 4, contains: "match: a path or a block of matchers is required"},
		{name: "widget match path without slash", input: block("widget {", "\tmatch widget/*", "}"), line: 3, contains: `match "widget/*": path must start with /`},
		{name: "widget match unknown matcher", input: block("widget {", "\tmatch {", "\t\tnot_a_matcher x", "\t}", "}"), line: 3, lastLine: 5, contains: "not_a_matcher"},
		{name: "widget unknown option", input: block("widget {", "\tmatch /w/*", "\tcolour red", "}"), line: 4, contains: "unrecognized widget option 'colour'"},
		{name: "widget option missing value", input: block("widget {", "\tmatch /w/*", "\ttoken_query", "}"), line: 4, contains: "wrong argument count"},
		{name: "widget option extra value", input: block("widget {", "\tmatch /w/*", "\tverdict_header X-A X-B", "}"), line: 4, contains: "wrong argument count"},
		{name: "widget twice", input: block("widget {", "\tmatch /a", "}", "widget {", "\tmatch /b", "}"), line: 5, contains: "widget already specified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Gateway
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error; parsed %s", mustJSON(t, &m))
			}
			msg := err.Error()
			last := max(tt.line, tt.lastLine)
			loc := atLine.FindStringSubmatch(msg)
			if loc == nil {
				t.Fatalf("error %q does not end with \"at Testfile:<line>\"", msg)
			}
			if n, _ := strconv.Atoi(loc[1]); n < tt.line || n > last {
				t.Errorf("error %q names line %d, want %d..%d", msg, n, tt.line, last)
			}
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("error %q does not contain %q", msg, tt.contains)
			}
		})
	}
}

// TestAdaptCaddyfile runs a whole Caddyfile through the caddyfile adapter, as
// `caddy adapt` and `caddy run` do, without a route block.
func TestAdaptCaddyfile(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXh4eHg="
	t.Setenv("MFA_KEY", secret)
	input := `{
	admin off
}

:8080 {
	# reverse_proxy is written first: directive order, not file order, decides.
	reverse_proxy 127.0.0.1:9000
	respond /healthz 200
	mfa_gateway {
		sign_in POST /login
		session_cookie sid
		encryption_key {env.MFA_KEY}
		db_path {env.MFA_DB}
	}
}
`
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("Adapt: %v", err)
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w.String())
	}
	js := string(out)

	if strings.Contains(js, secret) {
		t.Errorf("adapted JSON contains the secret key:\n%s", js)
	}
	if !strings.Contains(js, `"encryption_key":"{env.MFA_KEY}"`) {
		t.Errorf("encryption_key is not kept as a placeholder:\n%s", js)
	}
	if !strings.Contains(js, `"db_path":"{env.MFA_DB}"`) {
		t.Errorf("db_path is not kept as a placeholder:\n%s", js)
	}

	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted JSON: %v", err)
	}
	order := handlerOrder(cfg, nil)
	pos := func(name string) int {
		for i, h := range order {
			if h == name {
				return i
			}
		}
		t.Fatalf("handler %q not in adapted config (handlers in order: %v)", name, order)
		return -1
	}
	if gw, rp, resp := pos("mfa_gateway"), pos("reverse_proxy"), pos("static_response"); gw > rp || gw > resp {
		t.Errorf("mfa_gateway is not before reverse_proxy and respond: handlers in order %v", order)
	}

	// The handler's own JSON round-trips into the module.
	var gw Gateway
	if err := json.Unmarshal(findHandler(t, cfg, "mfa_gateway"), &gw); err != nil {
		t.Fatalf("decoding mfa_gateway JSON: %v", err)
	}
	if len(gw.SignInRaw) != 1 || len(gw.SessionCookies) != 1 || gw.EncryptionKey != "{env.MFA_KEY}" {
		t.Errorf("mfa_gateway JSON decoded to %+v", gw)
	}
}

// handlerOrder lists the "handler" names of a config in execution order: a
// handler object is listed before what it nests, array order is kept.
func handlerOrder(v any, acc []string) []string {
	switch v := v.(type) {
	case map[string]any:
		if h, ok := v["handler"].(string); ok {
			acc = append(acc, h)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			acc = handlerOrder(v[k], acc)
		}
	case []any:
		for _, e := range v {
			acc = handlerOrder(e, acc)
		}
	}
	return acc
}

func findHandler(t *testing.T, v any, name string) []byte {
	t.Helper()
	var found any
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == name && found == nil {
				found = v
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	if found == nil {
		t.Fatalf("handler %q not found", name)
	}
	b, err := json.Marshal(found)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// atLine is the location Dispenser.WrapErr appends to every parse error.
var atLine = regexp.MustCompile(`, at Testfile:(\d+)$`)

func caddyhttpSets(sets ...caddy.ModuleMap) []caddy.ModuleMap { return sets }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}
