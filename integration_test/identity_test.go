package integration_test

import (
	"net/url"
	"strings"
	"testing"
)

// The gateway learns who signed in from the app's own word: a whoami URL
// (JSON) or a page (HTML). These tests drive apps whose sign-in differs from
// what the client typed, or fails in a way that looks like success.

// TestFoldedNamesAreTheAppsUser: the app signs "ALICE", "Alice", "Àlice"
// and " alice" in as alice. With whoami, the gateway's user is the app's
// answer, so each spelling is alice's sign-in and meets her second factor.
func TestFoldedNamesAreTheAppsUser(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.FoldNames = true
	e := start(t, opts, `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api/me user
`)
	e.enrolled("alice")
	for _, spelling := range []string{"ALICE", "Alice", "Àlice", " alice", "ålice"} {
		c := e.newClient()
		r := c.postForm("/login", url.Values{"username": {spelling}, "password": {"alice-password"}})
		if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Errorf("sign-in as %q: %d %q, want alice's challenge", spelling, r.StatusCode, r.Location())
		}
		notAlice(t, "then /api/data as "+spelling, c.get("/api/data"))
		if u := c.status()["user"]; u != "alice" {
			t.Errorf("sign-in as %q: the gateway's pending user is %v, want alice", spelling, u)
		}
	}
}

// TestFailedSignInThatLooksLikeSuccess: the app answers a wrong password
// with 200 and a fresh session cookie. That passes a cookie-based success
// rule, but the app's whoami names nobody: no pending challenge for the
// named user (who could otherwise be locked out by anyone knowing their
// name), no sign-in in the audit log, and the app's answer reaches the
// browser as it was.
func TestFailedSignInThatLooksLikeSuccess(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.FailureSetsCookie = true
	e := start(t, opts, adminGateway)
	_, _, admin := e.enrolled("admin")
	e.enrolled("alice")
	for i := range 3 {
		c := e.newClient()
		r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong"}})
		if r.StatusCode != 200 || strings.HasPrefix(r.Location(), "/_mfa/") || !strings.Contains(r.Body, "Invalid username or password") {
			t.Fatalf("wrong password %d: %d %q, want the app's form again", i, r.StatusCode, r.Location())
		}
		if r.setCookie("demo_session") == "" {
			t.Fatalf("the app's fresh anonymous cookie did not reach the browser")
		}
		if st := c.api("status", nil); st.StatusCode == 200 && strings.Contains(st.Body, `"pending"`) {
			t.Fatalf("a wrong password made a pending sign-in: %s", st.Body)
		}
	}
	audit := admin.api("admin/audit?type=sign_in&user=alice", nil)
	if strings.Count(audit.Body, `"type":"sign_in"`) != 1 { // her enrolment sign-in only
		t.Fatalf("sign_in events for alice: %s", audit.Body)
	}
	// The right password still meets the challenge.
	e.pending("alice")
}

// TestIdentityFromTheAppsPage: an app with no JSON endpoint names the
// signed-in user only in its HTML. `user_from page` reads it with a regular
// expression; an anonymous visitor is redirected to the sign-in form, which
// means nobody.
func TestIdentityFromTheAppsPage(t *testing.T) {
	e := start(t, optsWith(manyUsers()), `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from page / "<strong id=\"user\">([^<]+)</strong>"
`)
	secret, _, _ := e.enrolled("alice")
	c := e.newClient()
	if r := c.signIn("alice", "wrong"); strings.HasPrefix(r.Location(), "/_mfa/") || r.StatusCode >= 403 {
		t.Fatalf("wrong password: %d %q", r.StatusCode, r.Location())
	}
	c = e.pending("alice")
	notAlice(t, "pending", c.get("/api/data"))
	if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard: %q", u)
	}
}

// TestWhoamiNobodyMarker: a wiki-style whoami always answers 200 and names
// an anonymous visitor by address with an "anon" marker. With nobody_if, a
// failed sign-in is not taken for the address's sign-in.
func TestWhoamiNobodyMarker(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.FailureSetsCookie = true
	e := start(t, opts, `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name nobody_if query.userinfo.anon
`)
	e.enrolled("alice")
	c := e.newClient()
	r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong"}})
	if r.StatusCode != 200 || strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("wrong password: %d %q, want the app's form", r.StatusCode, r.Location())
	}
	if st := c.api("status", nil); st.StatusCode != 401 {
		t.Fatalf("after a failed sign-in, status: %d %s, want 401 (no gateway session)", st.StatusCode, st.Body)
	}
	e.pending("alice")
}

// TestFoldedNamesFromTheSignInForm: with identity from the sign-in form only
// (no whoami), normalize_users fold makes every spelling the app folds one
// user. A user who enrolled as "Alice" before folding was turned on keeps
// her authenticator after the reload that turns it on.
func TestFoldedNamesFromTheSignInForm(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.FoldNames = true
	const block = `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from form username
`
	e := start(t, opts, block)
	c := e.newClient()
	if r := c.postForm("/login", url.Values{"username": {"Alice"}, "password": {"alice-password"}}); strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("first sign-in: %d %q", r.StatusCode, r.Location())
	}
	secret, _ := c.enrol()

	// Without folding, another spelling is another, unenrolled user: the
	// password alone opens alice's app session. That is the hole.
	c = e.newClient()
	c.postForm("/login", url.Values{"username": {"ALICE"}, "password": {"alice-password"}})
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("the unfolded gateway should let ALICE through (the hole folding closes): %q", u)
	}

	e.load(block + "\t\tnormalize_users fold\n")
	for i, spelling := range []string{"ALICE", "alice", "Àlice", "Alice"} {
		c := e.newClient()
		c.get("/login")
		r := c.postForm("/login", url.Values{"username": {spelling}, "password": {"alice-password"}})
		if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("sign-in as %q with folding: %d %q, want the challenge", spelling, r.StatusCode, r.Location())
		}
		notAlice(t, "pending as "+spelling, c.get("/api/data"))
		if i == 0 {
			if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
				t.Fatalf("Alice's authenticator after the move to alice: %d %s", r.StatusCode, r.Body)
			}
			if u := c.dashboardUser(); u != "alice" {
				t.Fatalf("dashboard after the challenge: %q", u)
			}
		}
	}
}
