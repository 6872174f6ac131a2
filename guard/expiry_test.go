package guard

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage/bolt"
)

// expiryClock is a settable clock: idle and lifetime limits are minutes and
// hours, so these tests move time instead of waiting for it.
type expiryClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *expiryClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *expiryClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type appNext struct{ h http.Handler }

func (n appNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.h.ServeHTTP(w, r)
	return nil
}

type pathMatcher struct{ method, path string }

func (m pathMatcher) MatchWithError(r *http.Request) (bool, error) {
	return r.Method == m.method && r.URL.Path == m.path, nil
}

// expiryStack is the gateway (with a fake clock and a real bbolt file) in
// front of the demo app, served on loopback.
func expiryStack(t *testing.T, cfg Config) (*httptest.Server, *expiryClock, *demoapp.App, *Guard) {
	t.Helper()
	clock := &expiryClock{t: time.Now()}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := mfa.Open(mfa.Options{Store: store, Key: make([]byte, 32), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	cfg.SignIn = pathMatcher{http.MethodPost, "/login"}
	cfg.AppCookies = []string{demoapp.DefaultCookieName}
	cfg.Identity = []IdentitySource{{Kind: FromWhoami, Path: "/api/me", Field: "user"}}
	gw, err := New(cfg, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := demoapp.New(demoapp.DefaultOptions())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := gw.ServeHTTP(w, r, appNext{app}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, clock, app, gw
}

func expiryClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signedInUser signs alice in and returns who the dashboard says is signed in
// afterwards, with the response of GET /.
func dashboard(t *testing.T, c *http.Client, base string) (int, string, *http.Response) {
	t.Helper()
	res, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	_, after, _ := strings.Cut(string(b), `<strong id="user">`)
	user, _, _ := strings.Cut(after, "<")
	return res.StatusCode, user, res
}

func TestIdleAndLifetimeExpiry(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		steps   []time.Duration // activity at these offsets keeps the session alive
		advance time.Duration   // then this much idle time passes
		alive   bool
	}{
		{"active within idle timeout", Config{IdleTimeout: 10 * time.Minute}, []time.Duration{9 * time.Minute, 9 * time.Minute}, 9 * time.Minute, true},
		{"idle past the timeout", Config{IdleTimeout: 10 * time.Minute}, nil, 11 * time.Minute, false},
		{"lifetime ends an active session", Config{IdleTimeout: 30 * time.Minute, MaxLifetime: time.Hour},
			[]time.Duration{25 * time.Minute, 25 * time.Minute}, 11 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, clock, app, _ := expiryStack(t, tc.cfg)
			c := expiryClient(t)
			expirySignIn(t, c, srv.URL)
			u, _ := url.Parse(srv.URL)
			var appCookie string
			for _, ck := range c.Jar.Cookies(u) {
				if ck.Name == app.CookieName() {
					appCookie = ck.Value
				}
			}
			for _, d := range tc.steps {
				clock.advance(d)
				if _, user, _ := dashboard(t, c, srv.URL); user != "alice" {
					t.Fatalf("session ended during activity at +%v", d)
				}
			}
			clock.advance(tc.advance)
			status, user, res := dashboard(t, c, srv.URL)
			if tc.alive {
				if user != "alice" {
					t.Fatalf("session ended early: %d %q", status, user)
				}
				return
			}
			if user != "" || status != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
				t.Fatalf("expired session still reaches the app: %d %q %q", status, user, res.Header.Get("Location"))
			}
			// Both cookies are cleared, and the app's session cookie, though
			// still valid for the app, is worthless without the gateway's.
			cleared := map[string]bool{}
			for _, ck := range res.Cookies() {
				if ck.MaxAge < 0 {
					cleared[ck.Name] = true
				}
			}
			if !cleared[DefaultCookieName] || !cleared[app.CookieName()] {
				t.Fatalf("expiry did not clear both cookies: %v", res.Header["Set-Cookie"])
			}
			if who, ok := app.SessionUser(appCookie); !ok || who != "alice" {
				t.Fatalf("test premise: the app session should still be live, got %q %v", who, ok)
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			req.AddCookie(&http.Cookie{Name: app.CookieName(), Value: appCookie})
			res2, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res2.Body.Close()
			if res2.StatusCode != http.StatusSeeOther {
				t.Fatalf("bare app cookie reached the app: %d", res2.StatusCode)
			}
		})
	}
}

// TestGraceLogout: switching "require 2FA" on leaves sessions alone; after
// the grace period, sessions of users still without 2FA that predate the
// switch end, while sessions made after it (held to setup) and enrolled
// users' sessions stay.
func TestGraceLogout(t *testing.T) {
	srv, clock, _, gw := expiryStack(t, Config{IdleTimeout: 1440 * time.Minute, MaxLifetime: 30 * 24 * time.Hour, GracePeriod: 2 * time.Hour})
	c := expiryClient(t)
	expirySignIn(t, c, srv.URL)
	clock.advance(time.Minute)
	if _, _, err := gw.svc.SetRequire2FA(t.Context(), mfa.Operator, "default", true); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Hour, 50 * time.Minute} {
		clock.advance(d)
		gw.svc.Sweep()
		if _, user, _ := dashboard(t, c, srv.URL); user != "alice" {
			t.Fatalf("session ended within the grace period (+%v)", d)
		}
	}
	clock.advance(15 * time.Minute)
	gw.svc.Sweep()
	if _, user, _ := dashboard(t, c, srv.URL); user != "" {
		t.Fatalf("unenrolled session from before enforcement outlived the grace period")
	}
}

// expirySignIn signs alice in through the gateway, as a browser would.
func expirySignIn(t *testing.T, c *http.Client, base string) {
	t.Helper()
	if _, err := c.Get(base + "/login"); err != nil {
		t.Fatal(err)
	}
	res, err := c.PostForm(base+"/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, user, _ := dashboard(t, c, base); user != "alice" {
		t.Fatalf("not signed in: %q", user)
	}
}
