package integration_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func methodsOf(st map[string]any) []string {
	var out []string
	if ms, ok := st["methods"].([]any); ok {
		for _, m := range ms {
			s, _ := m.(string)
			out = append(out, s)
		}
	}
	return out
}

// TestRecoveryCodeSignIn (API): a recovery code signs in once and turns
// the authenticator off; the user can work in the app, and is sent to set
// up a new authenticator at every sign-in until they do; the same code fails
// elsewhere; the old authenticator's codes no longer work; a re-enrolment
// brings back the authenticator challenge.
func TestRecoveryCodeSignIn(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, codes, _ := e.enrolled("alice")
	c1 := e.pending("alice")
	c2 := e.pending("alice") // a second browser waiting at the challenge

	r := c1.api("challenge/recovery", map[string]string{"recovery_code": codes[0]})
	if r.StatusCode != 200 || r.JSON(t)["next"] != "/_mfa/security?setup=1" {
		t.Fatalf("recovery code: %d %s", r.StatusCode, r.Body)
	}
	if c1.cookie("demo_session") == "" {
		t.Fatal("the app's held session cookie was not released")
	}

	t.Run("the user can work in the app, reminded to set up", func(t *testing.T) {
		if u := c1.dashboardUser(); u != "alice" {
			t.Fatalf("dashboard after a recovery code: %q, want alice signed in", u)
		}
		page := c1.get("/_mfa/security?setup=1")
		if page.StatusCode != 200 || !strings.Contains(page.Body, "otpauth://") || !strings.Contains(page.Body, `id="no-authenticator"`) {
			t.Fatalf("security page with setup and the reminder: %d %.300s", page.StatusCode, page.Body)
		}
		if !strings.Contains(page.Body, ">Not now</a>") {
			t.Fatal("the setup dialog offers no way to put it off")
		}
	})

	t.Run("status", func(t *testing.T) {
		st := c1.status()
		if st["must_enrol"] != false || st["enrolled"] != false || st["aal"].(float64) != 2 {
			t.Fatalf("status after recovery: %v", st)
		}
		if slices.Contains(methodsOf(st), "totp") {
			t.Fatalf("totp still listed: %v", st)
		}
		if st["recovery_codes_remaining"].(float64) != 9 {
			t.Fatalf("recovery_codes_remaining: %v, want 9", st["recovery_codes_remaining"])
		}
	})

	t.Run("the same code fails at another challenge", func(t *testing.T) {
		apiErr(t, c2.api("challenge/recovery", map[string]string{"recovery_code": codes[0]}), 401, "invalid_recovery_code")
	})

	t.Run("the old authenticator no longer works", func(t *testing.T) {
		r := c2.api("challenge", map[string]string{"code": code(t, secret, 1)})
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Fatalf("old authenticator's code: %d %s, want a 4xx", r.StatusCode, r.Body)
		}
		if u := c2.dashboardUser(); u != "" {
			t.Fatalf("old authenticator reached the dashboard as %q", u)
		}
	})

	// The user has lost their authenticator and not set up a new one: a
	// later password-only sign-in must not reach the app with no second
	// factor at all: a remaining recovery code is asked, and leads to the
	// setup again (the reminder).
	t.Run("a new sign-in before re-enrolment asks for a recovery code", func(t *testing.T) {
		c3 := e.newClient()
		r := c3.signIn("alice", "alice-password")
		if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("sign-in after recovery: %d %q, want the challenge", r.StatusCode, r.Location())
		}
		if u := c3.dashboardUser(); u == "alice" {
			t.Fatalf("password-only sign-in after a recovery-code sign-in reached the dashboard (status %v)", c3.api("status", nil).Body)
		}
		if p := c3.get("/_mfa/challenge"); p.StatusCode == 200 && strings.Contains(p.Body, `name="code"`) {
			t.Errorf("the challenge asks for an authenticator code the user no longer has")
		}
		r = c3.api("challenge/recovery", map[string]string{"recovery_code": codes[2]})
		if r.StatusCode != 200 || r.JSON(t)["next"] != "/_mfa/security?setup=1" {
			t.Fatalf("remaining recovery code: %d %s", r.StatusCode, r.Body)
		}
		if u := c3.dashboardUser(); u != "alice" {
			t.Fatalf("app after the second recovery: %q", u)
		}
	})

	t.Run("re-enrolment lets the user into the app", func(t *testing.T) {
		r := c1.api("totp/enroll", map[string]any{})
		if r.StatusCode != 200 {
			t.Fatalf("enroll: %d %s", r.StatusCode, r.Body)
		}
		secret2 := r.JSON(t)["secret"].(string)
		if strings.ReplaceAll(secret2, " ", "") == strings.ReplaceAll(secret, " ", "") {
			t.Fatal("the new authenticator got the old secret")
		}
		// The old secret's last step was consumed at enrolment: a fresh step.
		r = c1.api("totp/confirm", map[string]string{"code": code(t, secret2, 1)})
		if r.StatusCode != 200 {
			t.Fatalf("confirm: %d %s", r.StatusCode, r.Body)
		}
		r = c1.api("recovery-codes/acknowledge", map[string]any{})
		if r.StatusCode != 200 || r.JSON(t)["ok"] != true {
			t.Fatalf("acknowledge: %d %s", r.StatusCode, r.Body)
		}
		if u := c1.dashboardUser(); u != "alice" {
			t.Fatalf("dashboard after re-enrolment: %q", u)
		}
		if st := c1.status(); st["must_enrol"] != false || st["enrolled"] != true {
			t.Fatalf("status after re-enrolment: %v", st)
		}
		// The new set replaced the old one: an unused old code fails too.
		c4 := e.pending("alice")
		if p := c4.get("/_mfa/challenge"); p.StatusCode != 200 || !strings.Contains(p.Body, `name="code"`) {
			t.Fatalf("after re-enrolment the challenge does not ask for the authenticator: %d", p.StatusCode)
		}
		apiErr(t, c4.api("challenge/recovery", map[string]string{"recovery_code": codes[1]}), 401, "invalid_recovery_code")
	})
}

// TestRecoveryCodeForm: the same through the HTML pages.
func TestRecoveryCodeForm(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	_, codes, _ := e.enrolled("bob")
	c := e.pending("bob")
	c2 := e.pending("bob") // another browser at the challenge
	page := c.get("/_mfa/challenge/recovery")
	if page.StatusCode != 200 || !strings.Contains(page.Body, `name="recovery_code"`) {
		t.Fatalf("recovery page: %d %.300s", page.StatusCode, page.Body)
	}
	csrf := csrfOf(t, page)

	r := c.postForm("/_mfa/challenge/recovery", url.Values{"recovery_code": {"zzzzzz-zzzzzz"}, "csrf": {csrf}})
	if r.StatusCode != 401 || !strings.Contains(r.Body, `role="alert"`) || !strings.Contains(r.Body, `name="recovery_code"`) {
		t.Fatalf("wrong recovery code on the form: %d %.300s", r.StatusCode, r.Body)
	}
	r = c.postForm("/_mfa/challenge/recovery", url.Values{"recovery_code": {"x"}, "csrf": {csrf}})
	if r.StatusCode != 400 {
		t.Fatalf("malformed recovery code on the form: %d", r.StatusCode)
	}
	// Codes are typed loosely: upper case and spaces around are fine.
	r = c.postForm("/_mfa/challenge/recovery", url.Values{"recovery_code": {" " + strings.ToUpper(codes[0]) + " "}, "csrf": {csrf}})
	if r.StatusCode != 303 || r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("right recovery code on the form: %d %q %.300s", r.StatusCode, r.Location(), r.Body)
	}
	if u := c.dashboardUser(); u != "bob" {
		t.Fatalf("app after recovery: %q, want bob signed in", u)
	}
	if st := c.status(); st["must_enrol"] != false || st["enrolled"] != false {
		t.Fatalf("status after recovery on the form: %v", st)
	}
	// The same code at another challenge fails.
	p2 := c2.get("/_mfa/challenge/recovery")
	r = c2.postForm("/_mfa/challenge/recovery", url.Values{"recovery_code": {codes[0]}, "csrf": {csrfOf(t, p2)}})
	if r.StatusCode != 401 {
		t.Fatalf("reused recovery code: %d", r.StatusCode)
	}
}

// TestRegenerateInvalidatesOldCodes: a new set (AAL2) makes the old set fail.
func TestRegenerateInvalidatesOldCodes(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, old, c0 := e.enrolled("carol")

	r := c0.api("recovery-codes/regenerate", map[string]any{"code": code(t, secret, 1)})
	if r.StatusCode != 200 {
		t.Fatalf("regenerate: %d %s", r.StatusCode, r.Body)
	}
	var fresh []string
	for _, v := range r.JSON(t)["recovery_codes"].([]any) {
		fresh = append(fresh, v.(string))
	}
	if len(fresh) != 10 {
		t.Fatalf("got %d new codes", len(fresh))
	}
	for _, o := range old {
		if slices.Contains(fresh, o) {
			t.Fatalf("old code %q is in the new set", o)
		}
	}
	if st := c0.status(); st["recovery_codes_unacknowledged"] != true {
		t.Errorf("new codes are not waiting to be acknowledged: %v", st)
	}

	c1 := e.pending("carol")
	for i, o := range old[:3] {
		if r := c1.api("challenge/recovery", map[string]string{"recovery_code": o}); r.StatusCode != 401 {
			t.Fatalf("old code %d after regenerate: %d %s", i, r.StatusCode, r.Body)
		}
	}
	r = c1.api("challenge/recovery", map[string]string{"recovery_code": fresh[0]})
	if r.StatusCode != 200 {
		t.Fatalf("new code: %d %s", r.StatusCode, r.Body)
	}

	t.Run("form", func(t *testing.T) {
		secret2, old2, c := e.enrolled("dave")
		page := c.get("/_mfa/security?confirm=regenerate")
		r := c.postForm("/_mfa/security/regenerate", url.Values{"csrf": {csrfOf(t, page)}, "code": {code(t, secret2, 1)}})
		if r.StatusCode != 303 {
			t.Fatalf("regenerate form: %d %.300s", r.StatusCode, r.Body)
		}
		shown := c.get("/_mfa/security")
		if strings.Contains(shown.Body, old2[0]) {
			t.Fatal("the security page still shows an old code")
		}
		p := e.pending("dave")
		apiErr(t, p.api("challenge/recovery", map[string]string{"recovery_code": old2[0]}), 401, "invalid_recovery_code")
	})
}

// TestDisableRequiresAAL2: a session that did not pass the second factor
// (an AAL1 session from before the user enrolled elsewhere) cannot turn 2FA
// off or regenerate codes; a fresh AAL2 sign-in can, and disabling deletes
// the factor and the codes.
func TestDisableRequiresAAL2(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	cA := e.newClient()
	if r := cA.signIn("alice", "alice-password"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("AAL1 sign-in: %d %q", r.StatusCode, r.Location())
	}
	secret, codes, _ := e.enrolled("alice") // enrolled on another device

	if st := cA.status(); st["aal"].(float64) != 1 || st["enrolled"] != true {
		t.Fatalf("AAL1 session's status: %v", st)
	}
	t.Run("api disable at AAL1", func(t *testing.T) {
		apiErr(t, cA.api("totp/disable", map[string]any{}), 403, "aal2_required")
	})
	t.Run("api regenerate at AAL1", func(t *testing.T) {
		apiErr(t, cA.api("recovery-codes/regenerate", map[string]any{}), 403, "aal2_required")
	})
	t.Run("form disable at AAL1", func(t *testing.T) {
		page := cA.get("/_mfa/security")
		r := cA.postForm("/_mfa/security/disable", url.Values{"csrf": {csrfOf(t, page)}})
		if r.StatusCode != 403 {
			t.Fatalf("form disable at AAL1: %d", r.StatusCode)
		}
	})
	if st := cA.status(); st["enrolled"] != true || st["recovery_codes_remaining"].(float64) != 10 {
		t.Fatalf("refused disable changed the state: %v", st)
	}
	t.Run("never-enrolled AAL1 user", func(t *testing.T) {
		c := e.newClient()
		c.signIn("bob", "bob-password")
		r := c.api("totp/disable", map[string]any{})
		if r.StatusCode != 403 && r.StatusCode != 409 {
			t.Fatalf("disable for bob at AAL1: %d %s", r.StatusCode, r.Body)
		}
		apiErr(t, r, r.StatusCode, "")
	})

	// A fresh sign-in passes the challenge: AAL2 in this sign-in.
	cC := e.pending("alice")
	if r := cC.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	// Fresh proof is asked for, at AAL2 too: refused without a code and
	// with a wrong one; a recovery code will do (the step's TOTP code was
	// just used).
	apiErr(t, cC.api("totp/disable", map[string]any{}), 400, "code_required")
	apiErr(t, cC.api("totp/disable", map[string]any{"code": "zzzzzz-zzzzzz"}), 401, "invalid_recovery_code")
	apiErr(t, cC.api("totp/disable", map[string]any{"code": 123456}), 400, "bad_request")
	if r := cC.api("totp/disable", map[string]any{"code": codes[0]}); r.StatusCode != 200 {
		t.Fatalf("disable at AAL2 with a recovery code: %d %s", r.StatusCode, r.Body)
	}
	st := cC.status()
	if st["enrolled"] != false || st["recovery_codes_remaining"].(float64) != 0 || len(methodsOf(st)) != 0 {
		t.Fatalf("status after disable: %v", st)
	}
	// No challenge any more, and the deleted codes are of no use.
	cD := e.newClient()
	if r := cD.signIn("alice", "alice-password"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("sign-in after disable: %d %q", r.StatusCode, r.Location())
	}
	r := cD.api("challenge/recovery", map[string]string{"recovery_code": codes[1]})
	if r.StatusCode < 400 || r.StatusCode >= 500 {
		t.Fatalf("old recovery code after disable: %d", r.StatusCode)
	}
}

// TestReEnrolAfterDisable: a new authenticator's current code is accepted
// right away. Replay protection is about codes that were accepted before;
// the new secret's code for the current step never was.
func TestReEnrolAfterDisable(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	_, codes, c := e.enrolled("erin") // consumes the current step with the old secret
	if r := c.api("totp/disable", map[string]any{"code": codes[0]}); r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	r := c.api("totp/enroll", map[string]any{})
	if r.StatusCode != 200 {
		t.Fatalf("enroll: %d %s", r.StatusCode, r.Body)
	}
	secret2 := r.JSON(t)["secret"].(string)
	if r := c.api("totp/confirm", map[string]string{"code": code(t, secret2, 0)}); r.StatusCode != 200 {
		t.Fatalf("the new authenticator's current code was refused: %d %s", r.StatusCode, r.Body)
	}
}
