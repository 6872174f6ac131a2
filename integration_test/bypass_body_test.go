package integration_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestNewSessionFromABodyWithoutWhoami: an app that signs in wherever a
// password arrives, in any body, and sets a new session cookie. With
// identity from the sign-in form only, the gateway cannot ask the app whose
// that session is, so it must not hand it over as a pre-sign-in session:
// the request is refused and the cookie never reaches the browser.
func TestNewSessionFromABodyWithoutWhoami(t *testing.T) {
	e := start(t, optsWith(manyUsers()), `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from form username
`)
	_, _, _ = e.enrolled("alice")
	mp, mpType := multipartFields(t, "auth_user", "alice", "auth_pass", "alice-password")
	for _, tc := range []struct{ name, method, path, ctype, body string }{
		{"multipart to an API path", "POST", "/api/data", mpType, mp},
		{"multipart to the dashboard", "POST", "/", mpType, mp},
		{"urlencoded to an API path", "POST", "/api/data", "application/x-www-form-urlencoded", "auth_user=alice&auth_pass=alice-password"},
		{"JSON to an API path", "POST", "/api/data", "application/json", `{"auth_user":"alice","auth_pass":"alice-password"}`},
		{"multipart in a GET", "GET", "/api/me", mpType, mp},
		{"urlencoded in a GET", "GET", "/", "application/x-www-form-urlencoded", "auth_user=alice&auth_pass=alice-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			r := c.req(tc.method, tc.path, strings.NewReader(tc.body), map[string]string{"Content-Type": tc.ctype})
			notAlice(t, "the signing-in response", r)
			if r.setCookie("demo_session") != "" {
				t.Fatalf("the app's new session cookie reached the browser: %q", r.Header["Set-Cookie"])
			}
			notAlice(t, "then /api/data", c.get("/api/data"))
			if u := c.dashboardUser(); u == "alice" {
				t.Fatal("alice's dashboard with the password alone")
			}
		})
	}
	// A plain visit still gets its pre-sign-in session, and the form sign-in works.
	c := e.newClient()
	if r := c.signIn("alice", "alice-password"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("the configured sign-in: %d %q", r.StatusCode, r.Location())
	}
}

// TestCredentialsInsideASignedInSession: signed in as bob (no 2FA), the
// browser sends alice's password in a body, to a URL that is not the
// configured sign-in: a form or multipart post the app takes anywhere, or
// its own JSON sign-in. An app that does not rotate switches bob's session
// to alice in place; one that rotates sets a new cookie. With a whoami the
// gateway asks the app and challenges alice; without one it cannot tell,
// so it refuses. Either way, nothing of alice's reaches bob's browser.
func TestCredentialsInsideASignedInSession(t *testing.T) {
	mp, mpType := multipartFields(t, "auth_user", "alice", "auth_pass", "alice-password")
	bodies := []struct{ name, method, path, ctype, body string }{
		{"urlencoded post", "POST", "/api/data", "application/x-www-form-urlencoded", "auth_user=alice&auth_pass=alice-password"},
		{"multipart post", "POST", "/api/data", mpType, mp},
		{"the app's JSON sign-in", "POST", "/api/login", "application/json", `{"username":"alice","password":"alice-password"}`},
	}
	configs := []struct{ name, block string }{
		{"with whoami", defaultGateway},
		{"without whoami", `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from form username
`},
	}
	for _, rotate := range []bool{false, true} {
		for _, cfg := range configs {
			opts := optsWith(manyUsers())
			opts.Rotate = rotate
			e := start(t, opts, cfg.block)
			_, _, _ = e.enrolled("alice")
			for _, b := range bodies {
				t.Run(fmt.Sprintf("rotate=%v/%s/%s", rotate, cfg.name, b.name), func(t *testing.T) {
					c := e.newClient()
					c.signIn("bob", "bob-password")
					if u := c.dashboardUser(); u != "bob" {
						t.Fatalf("bob's dashboard: %q", u)
					}
					r := c.req(b.method, b.path, strings.NewReader(b.body), map[string]string{"Content-Type": b.ctype})
					notAlice(t, "the answer to the request with alice's password", r)
					notAlice(t, "then /api/data", c.get("/api/data"))
					if u := c.dashboardUser(); u == "alice" {
						t.Fatalf("bob's browser opens alice's dashboard with her password alone (answer %d)", r.StatusCode)
					}
				})
			}
			// Fields that only look like credentials: with a whoami the app is
			// asked and names bob, so his post goes through; without one, a
			// field named like a password cannot be told from a sign-in.
			t.Run(fmt.Sprintf("rotate=%v/%s/bob's own form", rotate, cfg.name), func(t *testing.T) {
				c := e.newClient()
				c.signIn("bob", "bob-password")
				r := c.req("POST", "/api/data", strings.NewReader("author=bob&csrf_token=x"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				if r.StatusCode != 405 { // the app's own answer: /api/data takes GET only
					t.Fatalf("bob's post with an author field: %d %.200s, want the app's 405", r.StatusCode, r.Body)
				}
				r = c.req("POST", "/api/data", strings.NewReader("new_password=x"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				want := 405
				if cfg.block != defaultGateway {
					want = 403
				}
				if r.StatusCode != want {
					t.Fatalf("bob's post with a password field: %d %.200s, want %d", r.StatusCode, r.Body, want)
				}
				if u := c.dashboardUser(); want == 405 && u != "bob" {
					t.Fatalf("bob after his own posts: dashboard %q", u)
				}
			})
			stopCaddy(t)
		}
	}
}
