package integration_test

import (
	"strings"
	"testing"
	"time"
)

const adminGateway = defaultGateway + `
		admins admin dave
`

// TestPolicySwitch: "require 2FA for everyone" leaves current sessions
// alone, blocks new unenrolled sign-ins until setup, and is stored.
func TestPolicySwitch(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")

	r := admin.api("admin/policy", map[string]any{"require_2fa": true})
	if r.StatusCode != 200 || r.JSON(t)["require_2fa"] != true || r.JSON(t)["since"] == nil {
		t.Fatalf("switch on: %d %s", r.StatusCode, r.Body)
	}
	if u := bob.dashboardUser(); u != "bob" {
		t.Fatalf("bob's existing session was cut by the switch: %q", u)
	}
	carol := e.newClient()
	if r := carol.signIn("carol", "carol-password"); r.StatusCode != 303 || r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("unenrolled sign-in after the switch: %d %q", r.StatusCode, r.Location())
	}
	if r := carol.get("/api/data"); r.StatusCode == 200 {
		t.Fatalf("unenrolled user reached the app under require_2fa: %s", r.Body)
	}
	if st := carol.status(); st["required"] != true || st["must_enrol"] != true {
		t.Fatalf("carol's status: %v", st)
	}
	// Disabling 2FA is refused while the team requires it.
	apiErr(t, admin.api("totp/disable", map[string]any{}), 403, "policy_requires_2fa")

	// The stored policy outlives a restart (the Caddyfile says nothing of it).
	stopCaddy(t)
	e.load(adminGateway)
	dave := e.newClient()
	if r := dave.signIn("dave", "dave-password"); r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("policy lost across restart: sign-in went to %q", r.Location())
	}
	if r := admin.api("admin/policy", map[string]any{"require_2fa": false}); r.StatusCode != 401 && r.StatusCode != 200 {
		t.Fatalf("switch off after restart: %d %s", r.StatusCode, r.Body)
	}
}

// TestTimeoutSetting: validated, saved, and applied to existing sessions.
func TestTimeoutSetting(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	before := bob.status()["idle_deadline"].(string)

	for _, bad := range []any{4, 1441, 0, -5, "30", 12.5, nil} {
		apiErr(t, admin.api("admin/timeout", map[string]any{"minutes": bad}), 400, "bad_request")
	}
	r := admin.api("admin/timeout", map[string]any{"minutes": 15})
	if r.StatusCode != 200 || r.JSON(t)["idle_minutes"] != float64(15) {
		t.Fatalf("timeout 15: %d %s", r.StatusCode, r.Body)
	}
	after := bob.status()["idle_deadline"].(string)
	b, _ := time.Parse(time.RFC3339, before)
	a, _ := time.Parse(time.RFC3339, after)
	if d := b.Sub(a); d < 3*time.Hour {
		t.Fatalf("bob's idle deadline moved only %v (before %s, after %s): the new timeout did not reach the existing session", d, before, after)
	}
	if r := admin.api("admin/policy", nil); r.JSON(t)["idle_minutes"] != float64(15) {
		t.Fatalf("policy after timeout change: %s", r.Body)
	}
}

// TestAdminAccess: non-admins and admins below AAL2 are refused.
func TestAdminAccess(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	dave := e.newClient() // an admin who has not set up 2FA: AAL1
	dave.signIn("dave", "dave-password")
	anon := e.newClient()
	for _, ep := range []string{"admin/members", "admin/policy", "admin/sessions"} {
		apiErr(t, bob.api(ep, nil), 403, "not_admin")
		apiErr(t, dave.api(ep, nil), 403, "aal2_required")
		apiErr(t, anon.api(ep, nil), 401, "no_session")
	}
	apiErr(t, bob.api("admin/reset", map[string]string{"user": "alice"}), 403, "not_admin")
	apiErr(t, bob.api("admin/policy", map[string]any{"require_2fa": true}), 403, "not_admin")
}

// TestAdminResetAndMembers: the member list shows who lacks 2FA; a reset
// deletes the factor and ends the user's sessions.
func TestAdminResetAndMembers(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	_, _, carol := e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")

	r := admin.api("admin/members", nil)
	if r.StatusCode != 200 {
		t.Fatalf("members: %d %s", r.StatusCode, r.Body)
	}
	members := map[string]map[string]any{}
	for _, m := range r.JSON(t)["members"].([]any) {
		mm := m.(map[string]any)
		members[mm["user"].(string)] = mm
	}
	// dave is an admin by the Caddyfile who never signed in: a member without 2FA.
	if members["carol"]["enrolled"] != true || members["bob"]["enrolled"] != false || members["dave"]["enrolled"] != false || r.JSON(t)["unenrolled"] != float64(2) {
		t.Fatalf("members: %s", r.Body)
	}
	apiErr(t, admin.api("admin/reset", map[string]string{"user": "nobody"}), 404, "unknown_user")
	apiErr(t, admin.api("admin/reset", map[string]any{"user": 7}), 400, "bad_request")
	if r := admin.api("admin/reset", map[string]string{"user": "carol"}); r.StatusCode != 200 {
		t.Fatalf("reset carol: %d %s", r.StatusCode, r.Body)
	}
	if u := carol.dashboardUser(); u != "" {
		t.Fatalf("carol's session survived the reset: %q", u)
	}
	c2 := e.newClient()
	if r := c2.signIn("carol", "carol-password"); r.StatusCode != 303 || strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("carol after reset should sign in without a challenge: %d %q", r.StatusCode, r.Location())
	}
	if st := c2.status(); st["enrolled"] != false {
		t.Fatalf("carol still enrolled after reset: %v", st)
	}
}

// TestRevokeFromAnotherSession: a user ends one of their sessions from
// another; an admin ends anyone's.
func TestRevokeFromAnotherSession(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	phone := e.newClient()
	phone.signIn("bob", "bob-password")
	laptop := e.newClient()
	laptop.signIn("bob", "bob-password")

	r := laptop.api("sessions", nil)
	var other, self string
	for _, s := range r.JSON(t)["sessions"].([]any) {
		m := s.(map[string]any)
		if m["current"] == true {
			self = m["id"].(string)
		} else {
			other = m["id"].(string)
		}
	}
	if other == "" || self == "" {
		t.Fatalf("sessions list: %s", r.Body)
	}
	apiErr(t, laptop.api("sessions/revoke", map[string]string{"session": self}), 400, "bad_request")
	apiErr(t, laptop.api("sessions/revoke", map[string]string{"session": "zz"}), 404, "unknown_session")
	// Someone else's session id is "unknown" to bob.
	adminID := ""
	for _, s := range admin.api("sessions", nil).JSON(t)["sessions"].([]any) {
		adminID = s.(map[string]any)["id"].(string)
	}
	apiErr(t, laptop.api("sessions/revoke", map[string]string{"session": adminID}), 404, "unknown_session")

	if r := laptop.api("sessions/revoke", map[string]string{"session": other}); r.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	if u := phone.dashboardUser(); u != "" {
		t.Fatalf("revoked session still reaches the app as %q", u)
	}
	if u := laptop.dashboardUser(); u != "bob" {
		t.Fatalf("the revoking session was hurt: %q", u)
	}
	// The admin ends bob's last session.
	if r := admin.api("admin/sessions/revoke", map[string]string{"session": self}); r.StatusCode != 200 {
		t.Fatalf("admin revoke: %d %s", r.StatusCode, r.Body)
	}
	if u := laptop.dashboardUser(); u != "" {
		t.Fatalf("admin-revoked session still works: %q", u)
	}
}

// TestAdminByRole: the app's whoami reports a role; admin_roles names the
// roles that may administer.
func TestAdminByRole(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+`
		role_from whoami /api/me role
		admin_roles admin
`)
	_, _, admin := e.enrolled("admin") // the demo app reports role "admin" for admin
	if r := admin.api("admin/members", nil); r.StatusCode != 200 {
		t.Fatalf("role admin refused: %d %s", r.StatusCode, r.Body)
	}
	_, _, carol := e.enrolled("carol") // role "member"
	apiErr(t, carol.api("admin/members", nil), 403, "not_admin")
	if page := admin.get("/_mfa/admin"); !strings.Contains(page.Body, `admin <span class="badge badge-neutral">Admin</span>`) ||
		strings.Contains(page.Body, `carol <span class="badge badge-neutral">Admin</span>`) {
		t.Fatal("the member list does not mark the role-admitted admin (and only them)")
	}
	// The role survives a restart with the session.
	stopCaddy(t)
	e.load(e.gateway)
	if r := admin.api("admin/members", nil); r.StatusCode != 200 {
		t.Fatalf("role lost across restart: %d %s", r.StatusCode, r.Body)
	}
}

// TestGracePeriodLogout: with a short grace_period, sessions from before
// "require 2FA" of users still without it end once it has passed; enrolled
// users' sessions stay.
func TestGracePeriodLogout(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway+"\n\t\tgrace_period 2s")
	_, _, admin := e.enrolled("admin")
	_, _, carol := e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	if r := admin.api("admin/policy", map[string]any{"require_2fa": true}); r.StatusCode != 200 {
		t.Fatalf("policy: %d %s", r.StatusCode, r.Body)
	}
	if u := bob.dashboardUser(); u != "bob" {
		t.Fatalf("bob cut at once instead of after the grace period: %q", u)
	}
	deadline := time.Now().Add(8 * time.Second)
	for bob.dashboardUser() == "bob" && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if u := bob.dashboardUser(); u != "" {
		t.Fatalf("bob's unenrolled session outlived the grace period: %q", u)
	}
	if u := carol.dashboardUser(); u != "carol" {
		t.Fatalf("an enrolled user's session was ended: %q", u)
	}
	// The request check refuses bob at once; the sweep that ends his
	// session and records the event runs in the background: wait for it.
	r := admin.api("admin/audit?type=forced_logout", nil)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.Body, `"subject":"bob"`) && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		r = admin.api("admin/audit?type=forced_logout", nil)
	}
	if !strings.Contains(r.Body, `"subject":"bob"`) {
		t.Fatalf("no forced_logout event for bob: %s", r.Body)
	}
}

// TestReloadAppliesCaddyfilePolicy: a reload that turns require_2fa on in
// the Caddyfile takes effect (nothing was saved at run time).
func TestReloadAppliesCaddyfilePolicy(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	if r := e.newClient().signIn("bob", "bob-password"); r.Location() != "/" {
		t.Fatalf("sign-in before require_2fa: %q", r.Location())
	}
	e.load(adminGateway + "\n\t\trequire_2fa")
	if r := e.newClient().signIn("carol", "carol-password"); r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("require_2fa from a reloaded Caddyfile not in force: %q", r.Location())
	}
}
