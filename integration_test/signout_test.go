package integration_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/demoapp"
)

// Sign-out: the gateway session ends when the app's answer shows the
// sign-out happened, wherever the request went, and not when the app
// ignored it.

// TestSignOutTheAppIgnoredEndsNothing: the app refuses a sign-out without
// its token (a cross-site link). The gateway session lives on; the real
// sign-out (with the token) ends it and clears the gateway cookie.
func TestSignOutTheAppIgnoredEndsNothing(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.LogoutToken = true
	e := start(t, opts, defaultGateway)
	_, _, c := e.enrolled("alice")
	if r := c.get("/logout"); r.StatusCode != 403 {
		t.Fatalf("sign-out without the token: %d, want the app's 403", r.StatusCode)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("a sign-out the app refused ended the session: dashboard %q", u)
	}
	r := c.get("/logout?token=" + demoapp.LogoutToken(c.cookie("demo_session")))
	if r.StatusCode != 303 || !r.clears("mfa_session") {
		t.Fatalf("real sign-out: %d, Set-Cookie %q", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
	if st := c.api("status", nil); st.StatusCode != 401 {
		t.Fatalf("after the sign-out, status: %d %s", st.StatusCode, st.Body)
	}
}

// TestSignOutAnywhereEndsTheSession: an app that signs out by a form post the
// sign_out matcher does not cover (do=logout in the body) deletes its cookie;
// the gateway session ends with it instead of living on to idle expiry.
func TestSignOutAnywhereEndsTheSession(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.SharedPath, opts.CookieDerived, opts.BaseURL = true, true, "https://dash.example/app/"
	e := start(t, opts, sharedPathShorthand)
	c := e.newClient()
	c.get("/index.php?do=login")
	c.postForm("/index.php", url.Values{"do": {"login"}, "username": {"bob"}, "password": {"bob-password"}})
	if st := c.api("status", nil); st.StatusCode != 200 || !strings.Contains(st.Body, `"user":"bob"`) {
		t.Fatalf("bob's session: %d %s", st.StatusCode, st.Body)
	}
	r := c.postForm("/index.php", url.Values{"do": {"logout"}})
	if !r.clears("mfa_session") {
		t.Errorf("the app's sign-out did not clear the gateway cookie: %q", r.Header.Values("Set-Cookie"))
	}
	if st := c.api("status", nil); st.StatusCode != 401 {
		t.Fatalf("after the app's sign-out, status: %d %s", st.StatusCode, st.Body)
	}
}

// TestSignOutWithoutCookieChange: the app ends its session on the server and
// sends no cookie deletion. Its whoami then names nobody, which ends the
// gateway session; without a whoami, sign_out_on_request trusts the request.
func TestSignOutWithoutCookieChange(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.LogoutKeepsCookie = true
	for name, block := range map[string]string{
		"whoami": defaultGateway,
		"sign_out_on_request": `
		sign_in POST /login
		sign_out /logout
		sign_out_on_request
		session_cookie demo_session
		user_from form username
`,
	} {
		t.Run(name, func(t *testing.T) {
			e := start(t, opts, block)
			c := e.newClient()
			c.signIn("bob", "bob-password")
			if u := c.dashboardUser(); u != "bob" {
				t.Fatalf("bob's dashboard: %q", u)
			}
			c.get("/logout")
			if st := c.api("status", nil); st.StatusCode != 401 {
				t.Fatalf("after the sign-out, status: %d %s", st.StatusCode, st.Body)
			}
		})
	}
}
