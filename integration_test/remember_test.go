package integration_test

import (
	"strings"
	"testing"
)

const deviceCookie = "mfa_session_device"

// rememberIn passes c's pending challenge with an authenticator code and
// "remember this browser", and returns the browser's token.
func rememberIn(t *testing.T, c *client, secret string) string {
	t.Helper()
	r := c.api("challenge", map[string]any{"code": code(t, secret, 1), "remember": true})
	if r.StatusCode != 200 {
		t.Fatalf("challenge with remember: %d %s", r.StatusCode, r.Body)
	}
	tok := c.cookie(deviceCookie)
	if tok == "" {
		t.Fatal("no remembered-browser cookie")
	}
	return tok
}

// TestRememberBrowser: "remember this browser" skips the second factor in
// the same browser and nowhere else; its token changes at every use (a
// copied cookie works once at most); it can be forgotten; a change of
// method forgets every remembered browser; and the team can forbid it.
func TestRememberBrowser(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tadmins admin\n")
	secret, _, _ := e.enrolled("alice")

	c := e.pending("alice")
	if p := c.get("/_mfa/challenge"); !strings.Contains(p.Body, "Remember this browser for 30 days") {
		t.Fatal("the challenge does not offer to remember the browser")
	}
	first := rememberIn(t, c, secret)
	c.get("/logout")
	if r := c.signIn("alice", "alice-password"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("sign-in on the remembered browser: %d %q, want the app without a challenge", r.StatusCode, r.Location())
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard: %q", u)
	}
	if st := c.status(); st["aal"].(float64) != 2 {
		t.Fatalf("a remembered browser's session: %v", st)
	}
	second := c.cookie(deviceCookie)
	if second == "" || second == first {
		t.Fatalf("the token did not rotate: %q then %q", first, second)
	}

	// Another browser, and a copy of the old token, are challenged.
	if r := e.newClient().signIn("alice", "alice-password"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("another browser: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	copied := e.newClient()
	copied.get("/login")
	req := copied.req("POST", "/login", strings.NewReader("username=alice&password=alice-password"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Cookie": deviceCookie + "=" + first})
	if !strings.HasPrefix(req.Location(), "/_mfa/challenge") || !req.clears(deviceCookie) {
		t.Fatalf("an old token: %d %q %q, want the challenge and the cookie dropped", req.StatusCode, req.Location(), req.Header["Set-Cookie"])
	}

	// The device never reaches the app.
	if r := c.get("/api/data"); strings.Contains(r.Body, deviceCookie) {
		t.Fatal("the remembered-browser cookie reached the app")
	}

	// Forget it: the next sign-in there is challenged.
	ds := c.api("devices", nil).JSON(t)["devices"].([]any)
	if len(ds) != 1 {
		t.Fatalf("devices: %v", ds)
	}
	apiErr(t, c.api("devices/forget", map[string]string{"device": "nope"}), 404, "unknown_device")
	if r := c.api("devices/forget", map[string]string{"device": ds[0].(map[string]any)["id"].(string)}); r.StatusCode != 200 {
		t.Fatalf("forget: %d %s", r.StatusCode, r.Body)
	}
	c.get("/logout")
	if r := c.signIn("alice", "alice-password"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("a forgotten browser: %d %q, want the challenge", r.StatusCode, r.Location())
	}
}

// TestRememberedBrowsersEnd: a change of method forgets every remembered
// browser, and the team's switch stops them working while it is off.
func TestRememberedBrowsersEnd(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tadmins admin\n")
	_, _, admin := e.enrolled("admin")
	bobSecret, _, _ := e.enrolled("bob")
	carolSecret, _, _ := e.enrolled("carol")

	// bob changes his authenticator app: his remembered browser is forgotten.
	b := e.pending("bob")
	rememberIn(t, b, bobSecret)
	next := b.api("totp/change", map[string]any{}).JSON(t)["secret"].(string)
	if r := b.api("totp/change/confirm", map[string]string{"code": code(t, next, 0)}); r.StatusCode != 200 {
		t.Fatalf("change: %d %s", r.StatusCode, r.Body)
	}
	b.get("/logout")
	if r := b.signIn("bob", "bob-password"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("after a method change the browser is still remembered: %d %q", r.StatusCode, r.Location())
	}

	// The team switches remembering off: carol's browser is asked again.
	c := e.pending("carol")
	rememberIn(t, c, carolSecret)
	if r := admin.api("admin/remember", map[string]bool{"allowed": false}); r.StatusCode != 200 || r.JSON(t)["remember_allowed"] != false {
		t.Fatalf("switch off: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, admin.api("admin/remember", map[string]string{"allowed": "no"}), 400, "bad_request")
	c.get("/logout")
	r := c.signIn("carol", "carol-password")
	if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("with remembering off: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	if p := c.get("/_mfa/challenge"); strings.Contains(p.Body, "Remember this browser") {
		t.Fatal("the challenge offers to remember a browser while the team forbids it")
	}

	if c.cookie(deviceCookie) != "" {
		t.Fatal("with remembering off, the browser kept its token")
	}

	// Allowed again; an admin reset forgets a member's remembered browsers.
	if r := admin.api("admin/remember", map[string]bool{"allowed": true}); r.StatusCode != 200 {
		t.Fatalf("switch on: %d", r.StatusCode)
	}
	daveSecret, _, _ := e.enrolled("dave")
	d := e.pending("dave")
	rememberIn(t, d, daveSecret)
	if ds := d.api("devices", nil).Body; !strings.Contains(ds, `"id"`) {
		t.Fatalf("dave's browser is not listed: %s", ds)
	}
	if r := admin.api("admin/reset", map[string]string{"user": "dave"}); r.StatusCode != 200 {
		t.Fatalf("reset: %d %s", r.StatusCode, r.Body)
	}
	d.signIn("dave", "dave-password") // no factor now: signed in at once
	if ds := d.api("devices", nil); ds.StatusCode != 200 || strings.Contains(ds.Body, `"id"`) {
		t.Fatalf("a reset left dave's remembered browser: %d %s", ds.StatusCode, ds.Body)
	}
}

// TestRememberDaysOff: remember_days 0 offers nothing, and a request to
// remember is ignored.
func TestRememberDaysOff(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tremember_days 0\n")
	secret, _, _ := e.enrolled("dave")
	c := e.pending("dave")
	if p := c.get("/_mfa/challenge"); strings.Contains(p.Body, "Remember this browser") {
		t.Fatal("remember_days 0 still offers the checkbox")
	}
	if r := c.api("challenge", map[string]any{"code": code(t, secret, 1), "remember": true}); r.StatusCode != 200 || c.cookie(deviceCookie) != "" {
		t.Fatalf("remember with remember_days 0: %d, cookie %q", r.StatusCode, c.cookie(deviceCookie))
	}
}
