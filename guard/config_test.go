package guard

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
)

// matcherFunc is a Matcher for tests.
type matcherFunc func(*http.Request) (bool, error)

func (f matcherFunc) MatchWithError(r *http.Request) (bool, error) { return f(r) }

// postLogin matches POST /login.
var postLogin = matcherFunc(func(r *http.Request) (bool, error) {
	return r.Method == http.MethodPost && r.URL.Path == "/login", nil
})

// minimalConfig is the least a valid configuration needs.
func minimalConfig() Config {
	return Config{SignIn: postLogin, AppCookies: []string{"sid"}}
}

func TestNormalizeDefaults(t *testing.T) {
	c := minimalConfig()
	if err := c.Normalize(); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Prefix", c.Prefix, "/_mfa/"},
		{"Identity", c.Identity, []IdentitySource{{Kind: FromForm, Name: "username"}}},
		{"Success", c.Success, Success{Kind: SuccessDefault}},
		{"IdleTimeout", c.IdleTimeout, 240 * time.Minute},
		{"MaxLifetime", c.MaxLifetime, 12 * time.Hour},
		{"PendingTTL", c.PendingTTL, 10 * time.Minute},
		{"CookieName", c.CookieName, "mfa_session"},
		{"Issuer", c.Issuer, "mfagate"},
		{"UserHeader", c.UserHeader, "X-Mfa-User"},
		{"AALHeader", c.AALHeader, "X-Mfa-Aal"},
		{"MaxAttempts", c.MaxAttempts, 5},
		{"AttemptWindow", c.AttemptWindow, 15 * time.Minute},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(1 << 20)},
		{"Require2FA", c.Require2FA, false},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// Normalize is idempotent: a normalized config normalizes to itself.
	again := c
	if err := again.Normalize(); err != nil {
		t.Fatalf("second Normalize: %v", err)
	}
	if again.Prefix != c.Prefix || again.IdleTimeout != c.IdleTimeout || !reflect.DeepEqual(again.Identity, c.Identity) {
		t.Errorf("second Normalize changed the config: %+v", again)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string            // "" = valid
		check   func(*Config) any // for valid cases: the value to compare with want
		want    any
	}{
		// Prefix.
		{name: "prefix gets a trailing slash", mod: func(c *Config) { c.Prefix = "/auth" }, check: prefix, want: "/auth/"},
		{name: "prefix with slash", mod: func(c *Config) { c.Prefix = "/auth/" }, check: prefix, want: "/auth/"},
		{name: "prefix is cleaned", mod: func(c *Config) { c.Prefix = "/a/../b//c/./" }, check: prefix, want: "/b/c/"},
		{name: "prefix without leading slash", mod: func(c *Config) { c.Prefix = "auth/" }, wantErr: `prefix "auth/" must start with /`},
		{name: "prefix /", mod: func(c *Config) { c.Prefix = "/" }, wantErr: "prefix must not be /"},
		{name: "role from a form field", mod: func(c *Config) { c.RoleFrom = []IdentitySource{{Kind: FromForm, Name: "role"}} }, wantErr: "role source 1: form is sent by the client"},
		{name: "role from the query", mod: func(c *Config) {
			c.RoleFrom = []IdentitySource{{Kind: FromHeader, Name: "X-Role"}, {Kind: FromQuery, Name: "role"}}
		}, wantErr: "role source 2: query is sent by the client"},
		{name: "role from basic", mod: func(c *Config) { c.RoleFrom = []IdentitySource{{Kind: FromBasic}} }, wantErr: "role source 1: basic is sent by the client"},
		{name: "role from JSON", mod: func(c *Config) { c.RoleFrom = []IdentitySource{{Kind: FromJSON, Name: "role"}} }, wantErr: "role source 1: json is sent by the client"},
		{name: "prefix that cleans to /", mod: func(c *Config) { c.Prefix = "/x/.." }, wantErr: "prefix must not be /"},
		{name: "prefix //", mod: func(c *Config) { c.Prefix = "//" }, wantErr: "prefix must not be /"},

		// Sign-in and cookies.
		{name: "missing sign_in", mod: func(c *Config) { c.SignIn = nil }, wantErr: "sign-in matcher is required"},
		{name: "no cookies", mod: func(c *Config) { c.AppCookies = nil }, wantErr: "session cookie name is required"},
		{name: "empty cookie name", mod: func(c *Config) { c.AppCookies = []string{"sid", ""} }, wantErr: `session cookie ""`},
		{name: "bad glob", mod: func(c *Config) { c.AppCookies = []string{"sess[ion"} }, wantErr: `session cookie "sess[ion"`},
		{name: "cookie with =", mod: func(c *Config) { c.AppCookies = []string{"a=b"} }, wantErr: `session cookie "a=b"`},
		{name: "cookie with ;", mod: func(c *Config) { c.AppCookies = []string{"a;b"} }, wantErr: `session cookie "a;b"`},
		{name: "cookie with space", mod: func(c *Config) { c.AppCookies = []string{"a b"} }, wantErr: `session cookie "a b"`},
		{name: "glob cookies", mod: func(c *Config) { c.AppCookies = []string{"wp_*", "sess?", "[ab]id"} }, check: appCookies, want: []string{"wp_*", "sess?", "[ab]id"}},

		// Idle timeout and lifetime.
		{name: "idle 5m", mod: func(c *Config) { c.IdleTimeout = 5 * time.Minute }, check: idle, want: 5 * time.Minute},
		{name: "idle 1440m with a lifetime to match", mod: func(c *Config) { c.IdleTimeout, c.MaxLifetime = 1440*time.Minute, 24*time.Hour }, check: idle, want: 1440 * time.Minute},
		{name: "idle below range", mod: func(c *Config) { c.IdleTimeout = 5*time.Minute - time.Second }, wantErr: "out of range: 5 to 1440 minutes"},
		{name: "idle above range", mod: func(c *Config) { c.IdleTimeout = 1441 * time.Minute }, wantErr: "out of range: 5 to 1440 minutes"},
		{name: "idle negative", mod: func(c *Config) { c.IdleTimeout = -time.Hour }, wantErr: "out of range"},
		{name: "max_lifetime shorter than idle", mod: func(c *Config) { c.IdleTimeout, c.MaxLifetime = time.Hour, 30*time.Minute }, wantErr: "max_lifetime 30m0s is shorter than idle_timeout 1h0m0s"},
		{name: "max_lifetime equal to idle", mod: func(c *Config) { c.IdleTimeout, c.MaxLifetime = time.Hour, time.Hour }, check: lifetime, want: time.Hour},
		{name: "max_lifetime negative", mod: func(c *Config) { c.MaxLifetime = -time.Hour }, wantErr: "max_lifetime"},
		// The default lifetime (12h) grows to the idle timeout, so the whole
		// 5–1440 minute range works on its own.
		{name: "idle 1440m alone stretches the default lifetime", mod: func(c *Config) { c.IdleTimeout = 1440 * time.Minute }, check: lifetime, want: 24 * time.Hour},

		// Identity sources.
		{name: "user_from form", mod: withIdentity(IdentitySource{Kind: FromForm, Name: "login"}), check: identitySources, want: []IdentitySource{{Kind: FromForm, Name: "login"}}},
		{name: "user_from all valid kinds", mod: withIdentity(
			IdentitySource{Kind: FromJSON, Name: "email"}, IdentitySource{Kind: FromQuery, Name: "u"},
			IdentitySource{Kind: FromHeader, Name: "X-User"}, IdentitySource{Kind: FromBasic},
			IdentitySource{Kind: FromWhoami, Path: "/api/me", Field: "login"}), check: func(c *Config) any { return len(c.Identity) }, want: 5},
		{name: "user_from form without name", mod: withIdentity(IdentitySource{Kind: FromForm}), wantErr: "user source 1: form: a field or header name is required"},
		{name: "user_from json without name", mod: withIdentity(IdentitySource{Kind: FromBasic}, IdentitySource{Kind: FromJSON}), wantErr: "user source 2: json"},
		{name: "user_from header without name", mod: withIdentity(IdentitySource{Kind: FromHeader}), wantErr: "user source 1: header"},
		{name: "user_from query without name", mod: withIdentity(IdentitySource{Kind: FromQuery}), wantErr: "user source 1: query"},
		{name: "user_from whoami without field", mod: withIdentity(IdentitySource{Kind: FromWhoami, Path: "/me"}), wantErr: "user source 1: whoami"},
		{name: "user_from whoami relative path", mod: withIdentity(IdentitySource{Kind: FromWhoami, Path: "me", Field: "id"}), wantErr: "user source 1: whoami"},
		{name: "user_from unknown kind", mod: withIdentity(IdentitySource{Kind: "ldap", Name: "uid"}), wantErr: `user source 1: unknown kind "ldap"`},
		{name: "user_from empty kind", mod: withIdentity(IdentitySource{Name: "uid"}), wantErr: `unknown kind ""`},

		// Success criteria.
		{name: "success empty is default", mod: func(c *Config) { c.Success = Success{} }, check: success, want: Success{Kind: SuccessDefault}},
		{name: "success cookie", mod: func(c *Config) { c.Success = Success{Kind: SuccessCookie} }, check: success, want: Success{Kind: SuccessCookie}},
		{name: "success redirect", mod: func(c *Config) { c.Success = Success{Kind: SuccessRedirect} }, check: success, want: Success{Kind: SuccessRedirect}},
		{name: "success status", mod: func(c *Config) { c.Success = Success{Kind: SuccessStatus, Statuses: []int{200, 302}} }, check: success, want: Success{Kind: SuccessStatus, Statuses: []int{200, 302}}},
		{name: "success status without codes", mod: func(c *Config) { c.Success = Success{Kind: SuccessStatus} }, wantErr: "at least one status code"},
		{name: "success unknown", mod: func(c *Config) { c.Success = Success{Kind: "teapot"} }, wantErr: `success "teapot"`},

		// Explicit values are kept.
		{name: "explicit cookie name", mod: func(c *Config) { c.CookieName = "gw" }, check: func(c *Config) any { return c.CookieName }, want: "gw"},
		{name: "explicit max attempts", mod: func(c *Config) { c.MaxAttempts = 3 }, check: func(c *Config) any { return c.MaxAttempts }, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := minimalConfig()
			tt.mod(&c)
			err := c.Normalize()
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Normalize accepted the config: %+v", c)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if got := tt.check(&c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNormalizeRejectsBadNumbers covers values only the JSON config can
// carry (the Caddyfile parser refuses them): Normalize is the one check both
// paths share, so it must refuse them too, naming the item.
func TestNormalizeRejectsBadNumbers(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		item string
	}{
		// A negative window makes limiter.retryAfter always return 0:
		// unlimited code guessing (fail open).
		{"negative attempt_window", func(c *Config) { c.AttemptWindow = -time.Minute }, "attempt_window"},
		// A negative count locks every user out after one wrong code.
		{"negative max_attempts", func(c *Config) { c.MaxAttempts = -1 }, "max_attempts"},
		// A negative TTL makes every pending sign-in expire at once.
		{"negative pending_timeout", func(c *Config) { c.PendingTTL = -time.Minute }, "pending_timeout"},
		// A negative limit refuses every sign-in body as too large.
		{"negative body limit", func(c *Config) { c.MaxBodyBytes = -1 }, "body"},
		// No response ever has these statuses: the sign-in can never succeed.
		{"success status 0", func(c *Config) { c.Success = Success{Kind: SuccessStatus, Statuses: []int{0}} }, "status"},
		{"success status 999", func(c *Config) { c.Success = Success{Kind: SuccessStatus, Statuses: []int{200, 999}} }, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := minimalConfig()
			tt.mod(&c)
			err := c.Normalize()
			if err == nil {
				t.Fatalf("BUG: Normalize accepted it (AttemptWindow=%v MaxAttempts=%d PendingTTL=%v MaxBodyBytes=%d Success=%+v)",
					c.AttemptWindow, c.MaxAttempts, c.PendingTTL, c.MaxBodyBytes, c.Success)
			}
			if !strings.Contains(err.Error(), tt.item) {
				t.Errorf("error %q does not name %q", err, tt.item)
			}
		})
	}
}

func TestAppCookie(t *testing.T) {
	c := minimalConfig()
	c.AppCookies = []string{"sid", "wp_logged_in_*", "sess?"}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	jar, err := cookies.NewJar(c.CookieName, c.AppCookies)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"sid": true, "wp_logged_in_abc": true, "wp_logged_in_": true, "sess1": true,
		// Letter case does not count: some frameworks read names case-insensitively.
		"SID": true, "WP_Logged_In_abc": true, "SESS1": true,
		"sid2": false, "xsid": false, "wp_logged_in": false, "sess": false, "sess12": false, "": false,
	} {
		if got := jar.IsApp(name); got != want {
			t.Errorf("appCookie(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidateIdleTimeout(t *testing.T) {
	for d, ok := range map[time.Duration]bool{
		mfa.MinIdleTimeout: true, mfa.MaxIdleTimeout: true, time.Hour: true,
		mfa.MinIdleTimeout - 1: false, mfa.MaxIdleTimeout + 1: false, 0: false, -time.Hour: false,
	} {
		if err := mfa.ValidateIdleTimeout(d); (err == nil) != ok {
			t.Errorf("mfa.ValidateIdleTimeout(%v) = %v, want ok=%v", d, err, ok)
		}
	}
}

func prefix(c *Config) any          { return c.Prefix }
func appCookies(c *Config) any      { return c.AppCookies }
func idle(c *Config) any            { return c.IdleTimeout }
func lifetime(c *Config) any        { return c.MaxLifetime }
func identitySources(c *Config) any { return c.Identity }
func success(c *Config) any         { return c.Success }

func withIdentity(s ...IdentitySource) func(*Config) {
	return func(c *Config) { c.Identity = s }
}
