package integration_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// TestGatewayCookie: the gateway cookie is a browser-session cookie (no
// Max-Age or Expires: the idle deadline is enforced by the server), HttpOnly,
// SameSite=Lax, not Secure on plain HTTP, and its id changes with the AAL.
func TestGatewayCookie(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("alice")
	c := e.newClient()
	c.get("/login")
	r := c.postForm("/login", map[string][]string{"username": {"alice"}, "password": {"alice-password"}})
	check := func(t *testing.T, line string) {
		t.Helper()
		if line == "" {
			t.Fatal("no gateway cookie set")
		}
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		low := strings.ToLower(line)
		if strings.Contains(low, "max-age") || strings.Contains(low, "expires") {
			t.Errorf("gateway cookie is persistent: %q", line)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
			t.Errorf("gateway cookie attributes: %q", line)
		}
		if len(ck.Value) > 512 {
			t.Errorf("gateway cookie is %d bytes", len(ck.Value))
		}
	}
	pendingLine := r.setCookie("mfa_session")
	t.Run("pending", func(t *testing.T) { check(t, pendingLine) })
	pendingValue := c.cookie("mfa_session")

	r = c.api("challenge", map[string]string{"code": code(t, secret, 1)})
	if r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	t.Run("aal2", func(t *testing.T) { check(t, r.setCookie("mfa_session")) })
	t.Run("id rotated at the AAL change", func(t *testing.T) {
		if c.cookie("mfa_session") == pendingValue {
			t.Fatal("same gateway cookie before and after the challenge")
		}
		old := e.raw("GET", "/_mfa/api/v1/status", "mfa_session="+pendingValue, nil, nil)
		apiErr(t, old, 401, "no_session")
	})
	t.Run("app cookie released", func(t *testing.T) {
		if line := r.setCookie("demo_session"); line == "" {
			t.Fatal("the held app cookie was not released with the AAL2 cookie")
		}
	})
}

// TestIdleExpiry: a session idle for longer than idle_timeout ends: the app
// never sees its cookie again, both cookies are cleared, and the user is
// sent back to sign in. The timeout cannot be shorter than 5m in the
// config, so the session's last activity is moved back in the store while
// Caddy is stopped (sessions are reloaded from bbolt at start).
func TestIdleExpiry(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\n\t\tidle_timeout 5m\n\t\tmax_lifetime 1h")
	c := e.newClient()
	c.signIn("alice", "alice-password")
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard: %q", u)
	}
	gw, app := c.cookie("mfa_session"), c.cookie("demo_session")

	stopCaddy(t)
	if n := editSessions(t, e.DBPath, "alice", func(s *storage.Session) { s.LastSeen = time.Now().Add(-6 * time.Minute) }); n == 0 {
		t.Fatal("no stored session for alice")
	}
	e.load(e.gateway)

	r := c.get("/")
	if r.StatusCode != 303 || r.Location() != "/login" {
		t.Fatalf("idle session: %d %q, want the app's redirect to /login", r.StatusCode, r.Location())
	}
	if !r.clears("mfa_session") || !r.clears("demo_session") {
		t.Fatalf("idle expiry did not clear both cookies: %q", r.Header.Values("Set-Cookie"))
	}
	// Replaying the copied cookies does not revive it.
	replay := e.raw("GET", "/api/data", "mfa_session="+gw+"; demo_session="+app, nil, nil)
	if replay.StatusCode != 401 || strings.Contains(replay.Body, "alice") {
		t.Fatalf("replayed idle cookies: %d %s", replay.StatusCode, replay.Body)
	}
	apiErr(t, e.raw("GET", "/_mfa/api/v1/status", "mfa_session="+gw, nil, nil), 401, "no_session")
}

// TestLifetimeExpiry: past the absolute lifetime the session ends however
// active it is.
func TestLifetimeExpiry(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	c := e.newClient()
	c.signIn("bob", "bob-password")
	if u := c.dashboardUser(); u != "bob" {
		t.Fatalf("dashboard: %q", u)
	}
	stopCaddy(t)
	end := time.Now().Add(1500 * time.Millisecond)
	editSessions(t, e.DBPath, "bob", func(s *storage.Session) { s.ExpiresAt = end })
	e.load(e.gateway)
	if u := c.dashboardUser(); u != "bob" {
		t.Fatalf("dashboard before the lifetime ends: %q", u)
	}
	time.Sleep(time.Until(end) + 200*time.Millisecond)
	r := c.get("/")
	if r.StatusCode != 303 || r.Location() != "/login" || !r.clears("mfa_session") || !r.clears("demo_session") {
		t.Fatalf("after the lifetime: %d %q %q", r.StatusCode, r.Location(), r.Header.Values("Set-Cookie"))
	}
}

// TestAppCookieWithoutGatewaySession: the app's cookie alone, or with
// someone else's gateway session, never reaches the app.
func TestAppCookieWithoutGatewaySession(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	victim := e.newClient()
	victim.signIn("alice", "alice-password")
	if u := victim.dashboardUser(); u != "alice" {
		t.Fatalf("victim dashboard: %q", u)
	}
	stolen := victim.cookie("demo_session")
	if stolen == "" {
		t.Fatal("no app cookie")
	}
	attacker := e.newClient()
	attacker.signIn("bob", "bob-password")
	bobGW := attacker.cookie("mfa_session")
	bobApp := attacker.cookie("demo_session")

	for _, tc := range []struct{ name, cookie string }{
		{"app cookie alone", "demo_session=" + stolen},
		{"with an empty gateway cookie", "mfa_session=; demo_session=" + stolen},
		{"with another user's gateway session", "mfa_session=" + bobGW + "; demo_session=" + stolen},
		{"stolen copy first, bound copy second", "mfa_session=" + bobGW + "; demo_session=" + stolen + "; demo_session=" + bobApp},
		{"in a second Cookie line", "mfa_session=" + bobGW + "\x00demo_session=" + stolen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cookie := tc.cookie
			var hdr []string
			if a, b, ok := strings.Cut(cookie, "\x00"); ok {
				hdr = []string{a, b}
				cookie = ""
			}
			do := func(path string) resp {
				req, _ := http.NewRequest("GET", e.Base+path, nil)
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				for _, h := range hdr {
					req.Header.Add("Cookie", h)
				}
				return e.rawReq(req)
			}
			r := do("/")
			if strings.Contains(r.Body, `<strong id="user">alice`) {
				t.Fatalf("the app saw the stolen cookie: dashboard of alice")
			}
			r = do("/api/data")
			if strings.Contains(r.Body, `"alice"`) {
				t.Fatalf("the app saw the stolen cookie: %s", r.Body)
			}
		})
	}
	t.Run("the app redirects the cookie-only request to sign in", func(t *testing.T) {
		r := e.raw("GET", "/", "demo_session="+stolen, nil, nil)
		if r.StatusCode != 303 || r.Location() != "/login" {
			t.Fatalf("%d %q, want the app's redirect to /login", r.StatusCode, r.Location())
		}
	})
	// The victim is not disturbed.
	if u := victim.dashboardUser(); u != "alice" {
		t.Fatalf("victim after the attempts: %q", u)
	}
}

// TestSignOutEndsGatewaySession: the app's sign-out ends the gateway session;
// the old cookie replayed afterwards names no session.
func TestSignOutEndsGatewaySession(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("alice")
	c := e.pending("alice")
	if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	gw, app := c.cookie("mfa_session"), c.cookie("demo_session")
	for _, m := range []string{"GET", "POST"} {
		t.Run(m, func(t *testing.T) {
			if m == "POST" {
				c = e.newClient()
				c.signIn("bob", "bob-password")
				gw, app = c.cookie("mfa_session"), c.cookie("demo_session")
			}
			r := c.req(m, "/logout", nil, nil)
			if r.StatusCode != 303 {
				t.Fatalf("sign-out: %d", r.StatusCode)
			}
			if !r.clears("mfa_session") {
				t.Fatalf("sign-out did not clear the gateway cookie: %q", r.Header.Values("Set-Cookie"))
			}
			apiErr(t, e.raw("GET", "/_mfa/api/v1/status", "mfa_session="+gw, nil, nil), 401, "no_session")
			replay := e.raw("GET", "/", "mfa_session="+gw+"; demo_session="+app, nil, nil)
			if replay.StatusCode != 303 || replay.Location() != "/login" {
				t.Fatalf("replayed cookies after sign-out: %d %q", replay.StatusCode, replay.Location())
			}
			if !replay.clears("mfa_session") {
				t.Errorf("replayed dead gateway cookie not cleared: %q", replay.Header.Values("Set-Cookie"))
			}
		})
	}
}

// TestReloadKeepsSessions: config reloads while sessions exist neither
// deadlock nor drop sessions; a full restart keeps AAL2 sessions and
// pending sign-ins (with their held cookies) from bbolt.
func TestReloadKeepsSessions(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, c := e.enrolled("alice") // AAL2 after the confirmation
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	base := e.gateway

	// Traffic during the reloads.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	var lastRefused atomic.Int64
	hdr := c.cookieHeader()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A transport of its own: its keep-alive connections to the old
			// server must not end up in the pool the checks below use.
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for !stop.Load() {
				req, _ := http.NewRequest("GET", e.Base+"/api/data", nil)
				req.Header.Set("Cookie", hdr)
				if res, err := hc.Do(req); err == nil {
					res.Body.Close()
					served.Add(1)
					if res.StatusCode != http.StatusOK {
						refused.Add(1)
						lastRefused.Store(int64(res.StatusCode))
					}
				}
			}
		}()
	}
	changes := []string{"\n\t\tpending_timeout 5m", "\n\t\tmax_attempts 7", "\n\t\tidle_timeout 60m", ""}
	for i, ch := range changes {
		done := make(chan error, 1)
		go func() { done <- e.tryLoad(base + ch) }()
		select {
		case err := <-done:
			if err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("reload %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("reload %d did not finish within 30s (deadlock?)", i)
		}
		if u := c.dashboardUser(); u != "alice" {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("after reload %d the AAL2 session is gone: dashboard %q", i, u)
		}
	}
	stop.Store(true)
	wg.Wait()
	if served.Load() == 0 {
		t.Error("no request was served during the reloads")
	}
	if n := refused.Load(); n != 0 {
		t.Errorf("%d of %d signed-in requests during the reloads were refused (last status %d)", n, served.Load(), lastRefused.Load())
	}
	if st := c.status(); st["aal"].(float64) != 2 || st["user"] != "alice" {
		t.Fatalf("status after reloads: %v", st)
	}
	if u := bob.dashboardUser(); u != "bob" {
		t.Fatalf("AAL1 session after reloads: %q", u)
	}

	// A sign-in waits at the challenge across a full restart.
	p := e.pending("alice")
	stopCaddy(t)
	e.load(base)
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("AAL2 session after a restart: dashboard %q", u)
	}
	if st := c.status(); st["aal"].(float64) != 2 {
		t.Fatalf("status after a restart: %v", st)
	}
	if u := bob.dashboardUser(); u != "bob" {
		t.Fatalf("AAL1 session after a restart: %q", u)
	}
	if r := p.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge after a restart: %d %s", r.StatusCode, r.Body)
	}
	if u := p.dashboardUser(); u != "alice" {
		t.Fatalf("held cookies after a restart: dashboard %q", u)
	}
}
