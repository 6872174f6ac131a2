package integration_test

import (
	"strings"
	"testing"

	"github.com/mfagate/mfagate/demoapp"
)

// TestEnrolSignOutChallenge is the backbone: enrol, sign out, sign in, be
// challenged, pass with a code, reach the dashboard.
func TestEnrolSignOutChallenge(t *testing.T) {
	e := start(t, demoapp.DefaultOptions(), defaultGateway)
	c := e.newClient()
	if r := c.signIn("alice", "alice-password"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("sign-in of unenrolled user: %d %q", r.StatusCode, r.Location())
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard user = %q, want alice", u)
	}
	secret, codes := c.enrol()
	if len(codes) != 10 {
		t.Fatalf("got %d recovery codes", len(codes))
	}
	c.get("/logout")
	if u := c.dashboardUser(); u != "" {
		t.Fatalf("still signed in as %q after sign-out", u)
	}

	r := c.signIn("alice", "alice-password")
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("sign-in of enrolled user: %d %q, want redirect to the challenge", r.StatusCode, r.Location())
	}
	if c.cookie("demo_session") != "" {
		t.Fatal("the app's session cookie reached the browser before the challenge")
	}
	if r := c.get("/"); r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("dashboard before the challenge: %d %q", r.StatusCode, r.Location())
	}
	if r := c.api("challenge", map[string]string{"code": "000000"}); r.StatusCode != 401 {
		t.Fatalf("wrong code: %d %s", r.StatusCode, r.Body)
	}
	// The step after the confirmation's: a fresh code.
	ok := code(t, secret, 1)
	r = c.api("challenge", map[string]string{"code": ok})
	if r.StatusCode != 200 || r.JSON(t)["next"] != "/" {
		t.Fatalf("right code: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard user after challenge = %q", u)
	}
	st := c.api("status", nil).JSON(t)
	if st["aal"].(float64) != 2 || st["enrolled"] != true {
		t.Fatalf("status after challenge: %v", st)
	}

	// Replay: the same code on a new sign-in is refused.
	c2 := e.newClient()
	c2.signIn("alice", "alice-password")
	if r := c2.api("challenge", map[string]string{"code": ok}); r.StatusCode != 401 {
		t.Fatalf("replayed code: %d %s", r.StatusCode, r.Body)
	}
}
