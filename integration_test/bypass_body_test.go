package integration_test

import (
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
