package integration_test

import (
	"io"
	"net/url"
	"strings"
	"testing"
)

// notAlice fails if a response shows alice's dashboard or data.
func notAlice(t *testing.T, what string, r resp) {
	t.Helper()
	if r.StatusCode >= 500 {
		t.Fatalf("%s: %d %.200s", what, r.StatusCode, r.Body)
	}
	if strings.Contains(r.Body, `<strong id="user">alice<`) || strings.Contains(r.Body, `"user":"alice"`) {
		t.Fatalf("%s: the app served alice's session: %d %.300s", what, r.StatusCode, r.Body)
	}
}

// TestNonRotatingApp: an app that keeps the pre-sign-in session id. The
// cookie from GET /login becomes the signed-in session at the password step,
// but it must be worthless until the challenge is passed, and afterwards
// worthless without this browser's gateway session.
func TestNonRotatingApp(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, defaultGateway)
	secret, _, _ := e.enrolled("alice")

	c := e.newClient()
	if r := c.get("/login"); r.StatusCode != 200 || r.setCookie("demo_session") == "" {
		t.Fatalf("login page: %d, app cookie %q", r.StatusCode, r.setCookie("demo_session"))
	}
	x := c.cookie("demo_session")
	if x == "" || c.cookie("mfa_session") == "" {
		t.Fatalf("anonymous cookies: app %q gateway %q", x, c.cookie("mfa_session"))
	}
	r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("password step: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	if u, ok := e.App.SessionUser(x); !ok || u != "alice" {
		t.Fatalf("test premise: the app should now treat the old cookie as alice's (got %q %v)", u, ok)
	}
	if c.cookie("demo_session") != x {
		t.Fatalf("the app cookie changed in the jar: %q", c.cookie("demo_session"))
	}

	attacker := e.newClient()
	attacker.get("/login") // an anonymous gateway session of its own
	anon := attacker.cookie("mfa_session")
	if anon == "" {
		t.Fatal("attacker got no anonymous gateway session")
	}
	attempts := func(t *testing.T) {
		for _, ck := range []string{
			"demo_session=" + x,
			"mfa_session=" + anon + "; demo_session=" + x,
		} {
			notAlice(t, ck[:12]+" /", e.raw("GET", "/", ck, nil, nil))
			notAlice(t, ck[:12]+" /api/data", e.raw("GET", "/api/data", ck, nil, nil))
		}
	}
	t.Run("before the challenge", func(t *testing.T) {
		attempts(t)
		if r := c.get("/"); r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("the signing-in browser before the challenge: %d %q", r.StatusCode, r.Location())
		}
		notAlice(t, "pending /api/data", c.get("/api/data"))
	})
	if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard after the challenge: %q", u)
	}
	if c.cookie("demo_session") != x {
		t.Fatalf("app cookie changed: the test premise (no rotation) is gone")
	}
	t.Run("after the challenge", attempts)
}

// sharedPathBlock is the Caddyfile for an app that posts every action to
// /index.php and derives its cookie name from its URL, with nested matcher
// blocks as the README documents them.
const sharedPathBlock = `
		sign_in {
			method POST
			path /index.php
		}
		sign_in_field do login
		sign_out {
			path /index.php
			query do=logout
		}
		session_cookie SESS*
		user_from form username
`

// sharedPathShorthand is the same without nested blocks (and so without a
// sign-out matcher: /index.php alone would match every page).
const sharedPathShorthand = `
		sign_in POST /index.php
		sign_in_field do login
		session_cookie SESS*
		user_from form username
`

// TestSharedPathApp: sign-in posted to a shared path with do=login and a
// URL-derived cookie name; do=search posts are not sign-ins.
func TestSharedPathApp(t *testing.T) {
	sharedPathFlow(t, sharedPathShorthand, false)
}

// TestSharedPathAppMatcherBlocks: the same with `sign_in { method POST; path
// /index.php }` and a `sign_out { path; query do=logout }` block.
func TestSharedPathAppMatcherBlocks(t *testing.T) {
	sharedPathFlow(t, sharedPathBlock, true)
}

func sharedPathFlow(t *testing.T, block string, signOut bool) {
	opts := optsWith(manyUsers())
	opts.SharedPath, opts.CookieDerived, opts.BaseURL = true, true, "https://dash.example/app/"
	e := start(t, opts, sharedPathShorthand)
	if block != sharedPathShorthand {
		if err := e.tryLoad(block); err != nil {
			t.Fatalf("the documented nested-matcher block does not load: %v", err)
		}
	}
	name := e.App.CookieName()
	if !strings.HasPrefix(name, "SESS") || name == "SESS" {
		t.Fatalf("derived cookie name %q", name)
	}
	login := func(c *client, user string) resp {
		c.get("/index.php?do=login")
		return c.postForm("/index.php", url.Values{"do": {"login"}, "username": {user}, "password": {user + "-password"}})
	}

	c0 := e.newClient()
	if r := login(c0, "alice"); r.StatusCode != 303 || r.Location() != "/index.php?do=show" {
		t.Fatalf("unenrolled sign-in: %d %q", r.StatusCode, r.Location())
	}
	if u := c0.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard: %q", u)
	}
	secret, _ := c0.enrol()

	t.Run("wrong password passes through", func(t *testing.T) {
		c := e.newClient()
		r := c.postForm("/index.php", url.Values{"do": {"login"}, "username": {"alice"}, "password": {"nope"}})
		if r.StatusCode != 401 || !strings.Contains(r.Body, "Invalid username or password") {
			t.Fatalf("wrong password: %d %.200s", r.StatusCode, r.Body)
		}
	})

	c := e.newClient()
	r := login(c, "alice")
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("enrolled sign-in: %d %q", r.StatusCode, r.Location())
	}
	if c.cookie(name) != "" {
		t.Fatal("the derived app cookie reached the browser before the challenge")
	}
	t.Run("search while pending is not a sign-in", func(t *testing.T) {
		r := c.postForm("/index.php", url.Values{"do": {"search"}, "q": {"x"}, "username": {"alice"}, "password": {"alice-password"}})
		if r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("X-Mfa-Location"), "/_mfa/challenge") {
			t.Fatalf("do=search while pending: %d %q %.200s", r.StatusCode, r.Header.Get("X-Mfa-Location"), r.Body)
		}
		notAlice(t, "search while pending", r)
	})
	r = c.api("challenge", map[string]string{"code": code(t, secret, 1)})
	if r.StatusCode != 200 || r.JSON(t)["next"] != "/index.php?do=show" {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if r := c.get("/index.php?do=show"); r.StatusCode != 200 || !strings.Contains(r.Body, `<strong id="user">alice<`) {
		t.Fatalf("dashboard after the challenge: %d", r.StatusCode)
	}
	app := c.cookie(name)
	if app == "" {
		t.Fatal("no derived app cookie after the challenge")
	}
	gw := c.cookie("mfa_session")

	t.Run("search after sign-in", func(t *testing.T) {
		r := c.postForm("/index.php", url.Values{"do": {"search"}, "q": {"revenue"}, "username": {"bob"}})
		if r.StatusCode != 200 || !strings.Contains(r.Body, `id="results"`) || !strings.Contains(r.Body, `<strong id="user">alice<`) {
			t.Fatalf("search: %d %.300s", r.StatusCode, r.Body)
		}
		if st := c.status(); st["aal"].(float64) != 2 || st["user"] != "alice" {
			t.Fatalf("status after search: %v", st)
		}
	})
	t.Run("derived cookie alone is stripped", func(t *testing.T) {
		notAlice(t, "stolen derived cookie", e.raw("GET", "/index.php?do=show", name+"="+app, nil, nil))
		notAlice(t, "stolen derived cookie", e.raw("GET", "/", name+"="+app, nil, nil))
	})
	t.Run("a password in a signed-in post", func(t *testing.T) {
		// With no whoami to ask, the gateway cannot tell a post that signs
		// the session in as someone else from one that does not: refused.
		bob := e.newClient()
		if r := login(bob, "bob"); r.StatusCode != 303 || r.Location() != "/index.php?do=show" {
			t.Fatalf("bob's sign-in: %d %q", r.StatusCode, r.Location())
		}
		r := bob.postForm("/index.php", url.Values{"do": {"search"}, "q": {"x"}, "username": {"alice"}, "password": {"alice-password"}})
		notAlice(t, "a search with alice's password", r)
		if r.StatusCode != 403 {
			t.Fatalf("a search with a password field: %d, want 403", r.StatusCode)
		}
		notAlice(t, "bob's next page", bob.get("/index.php?do=show"))
	})
	if !signOut {
		return
	}
	t.Run("sign-out", func(t *testing.T) {
		r := c.get("/index.php?do=logout")
		if r.StatusCode != 303 || !r.clears("mfa_session") {
			t.Fatalf("sign-out: %d %q", r.StatusCode, r.Header.Values("Set-Cookie"))
		}
		apiErr(t, e.raw("GET", "/_mfa/api/v1/status", "mfa_session="+gw, nil, nil), 401, "no_session")
	})
}

const jsonBlock = `
		sign_in POST /api/login
		sign_out /logout
		session_cookie demo_session
		user_from json username
`

// TestJSONSignIn: an XHR sign-in gets the app's body without its cookie and
// X-Mfa-Location; the next page load lands on the challenge.
func TestJSONSignIn(t *testing.T) {
	e := start(t, optsWith(manyUsers()), jsonBlock)
	xhr := func(c *client, user, pass string) resp {
		body := `{"username":"` + user + `","password":"` + pass + `"}`
		return c.req("POST", "/api/login", strings.NewReader(body), map[string]string{
			"Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest",
		})
	}
	c0 := e.newClient()
	if r := xhr(c0, "alice", "alice-password"); r.StatusCode != 200 || r.setCookie("demo_session") == "" {
		t.Fatalf("unenrolled JSON sign-in: %d %s %q", r.StatusCode, r.Body, r.Header.Values("Set-Cookie"))
	}
	secret, _ := c0.enrol()

	t.Run("wrong password passes through", func(t *testing.T) {
		r := xhr(e.newClient(), "alice", "nope")
		if r.StatusCode != 401 || r.JSON(t)["ok"] != false {
			t.Fatalf("wrong password: %d %s", r.StatusCode, r.Body)
		}
	})

	// The app's answer is withheld too (a sign-in response may carry the
	// session's tokens): the script gets 401 mfa_required.
	c := e.newClient()
	r := xhr(c, "alice", "alice-password")
	apiErr(t, r, 401, "mfa_required")
	if strings.Contains(r.Body, `"ok"`) {
		t.Fatalf("the app's sign-in answer was released before the challenge: %s", r.Body)
	}
	if r.setCookie("demo_session") != "" || c.cookie("demo_session") != "" {
		t.Fatalf("the app cookie was released before the challenge: %q", r.Header.Values("Set-Cookie"))
	}
	if loc := r.Header.Get("X-Mfa-Location"); !strings.HasPrefix(loc, "/_mfa/challenge") {
		t.Fatalf("X-Mfa-Location %q", loc)
	}
	if c.cookie("mfa_session") == "" {
		t.Fatal("no pending gateway cookie")
	}
	if r := c.get("/"); r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("next page load: %d %q", r.StatusCode, r.Location())
	}
	r = c.req("GET", "/api/data", nil, map[string]string{"X-Requested-With": "XMLHttpRequest"})
	apiErr(t, r, 401, "mfa_required")
	if !strings.HasPrefix(r.Header.Get("X-Mfa-Location"), "/_mfa/challenge") {
		t.Fatalf("XHR while pending: X-Mfa-Location %q", r.Header.Get("X-Mfa-Location"))
	}
	if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard after the challenge: %q", u)
	}
}

// TestLegacyCredentialSignIn: the app signs a user in from any URL carrying
// Basic credentials or auth_user/auth_pass; for an enrolled user that
// response is held like a sign-in: no cookie, no body, the challenge.
func TestLegacyCredentialSignIn(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("alice")

	t.Run("xhr with Basic", func(t *testing.T) {
		c := e.newClient()
		req := map[string]string{"Authorization": basic("alice", "alice-password"), "X-Requested-With": "XMLHttpRequest"}
		r := c.req("GET", "/api/data", nil, req)
		apiErr(t, r, 401, "mfa_required")
		if !strings.HasPrefix(r.Header.Get("X-Mfa-Location"), "/_mfa/challenge") {
			t.Fatalf("X-Mfa-Location %q", r.Header.Get("X-Mfa-Location"))
		}
		if r.setCookie("demo_session") != "" || strings.Contains(r.Body, "visitors") {
			t.Fatalf("the app's answer was released: %q %s", r.Header.Values("Set-Cookie"), r.Body)
		}
		if c.cookie("mfa_session") == "" {
			t.Fatal("no pending gateway session")
		}
	})
	t.Run("query parameters", func(t *testing.T) {
		c := e.newClient()
		r := c.get("/api/data?auth_user=alice&auth_pass=alice-password")
		if r.StatusCode < 300 || r.StatusCode >= 500 || r.setCookie("demo_session") != "" {
			t.Fatalf("legacy query sign-in: %d %q %s", r.StatusCode, r.Header.Values("Set-Cookie"), r.Body)
		}
		notAlice(t, "legacy query sign-in", r)
		// The password must not be echoed into the challenge URL (history,
		// logs) nor kept in the stored session's next.
		if strings.Contains(r.Location(), "alice-password") || strings.Contains(r.Header.Get("X-Mfa-Location"), "alice-password") {
			t.Errorf("the credentials are echoed into the redirect: %q", r.Location())
		}
	})
	t.Run("page with Basic, then the challenge", func(t *testing.T) {
		c := e.newClient()
		r := c.req("GET", "/", nil, map[string]string{"Authorization": basic("alice", "alice-password"), "Accept": "text/html"})
		if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("page with Basic: %d %q", r.StatusCode, r.Location())
		}
		if r.setCookie("demo_session") != "" || strings.Contains(r.Body, `id="user"`) {
			t.Fatal("the dashboard or its cookie was released before the challenge")
		}
		if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
			t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
		}
		if u := c.dashboardUser(); u != "alice" {
			t.Fatalf("held cookie after the challenge: dashboard %q", u)
		}
	})
	t.Run("unenrolled user", func(t *testing.T) {
		c := e.newClient()
		r := c.req("GET", "/api/data", nil, map[string]string{"Authorization": basic("bob", "bob-password")})
		if r.StatusCode != 200 || !strings.Contains(r.Body, `"user":"bob"`) {
			t.Fatalf("bob with Basic: %d %s", r.StatusCode, r.Body)
		}
		if u := c.dashboardUser(); u != "bob" {
			t.Fatalf("bob's session after Basic: %q", u)
		}
	})
}

// TestStripCredentials: with strip_header/strip_param the app never sees
// credentials outside the sign-in, so it signs nobody in from any URL.
func TestStripCredentials(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+`
		strip_header Authorization
		strip_param auth_user auth_pass`)
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
	}{
		{"Basic header", "GET", "/api/data", "", map[string]string{"Authorization": basic("bob", "bob-password")}},
		{"query", "GET", "/api/data?auth_user=bob&auth_pass=bob-password", "", nil},
		{"query among others", "GET", "/api/data?x=1&auth_user=bob&y=2&auth_pass=bob-password", "", nil},
		{"form body", "POST", "/", "auth_user=bob&auth_pass=bob-password", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := c.req(tc.method, tc.path, body, tc.hdr)
			if r.setCookie("demo_session") != "" || r.setCookie("mfa_session") != "" {
				t.Fatalf("the app signed bob in: %d %q", r.StatusCode, r.Header.Values("Set-Cookie"))
			}
			if strings.Contains(r.Body, `"user":"bob"`) {
				t.Fatalf("the app answered as bob: %s", r.Body)
			}
		})
	}
	t.Run("the sign-in itself still works", func(t *testing.T) {
		c := e.newClient()
		c.signIn("bob", "bob-password")
		if u := c.dashboardUser(); u != "bob" {
			t.Fatalf("dashboard: %q", u)
		}
		r := c.req("GET", "/api/data", nil, map[string]string{"Authorization": basic("alice", "alice-password")})
		if !strings.Contains(r.Body, `"user":"bob"`) {
			t.Fatalf("signed-in request with stripped Basic: %d %s", r.StatusCode, r.Body)
		}
	})
}
