package integration_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestNotYouSignsOut: "Not you? Sign out" ends a sign-in waiting at the
// challenge, through the API and the page; the app's cookies held for it
// never reach the browser, and a cookie the app signed in place is deleted
// and no longer forwarded. Refused for anything but a waiting sign-in.
func TestNotYouSignsOut(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false // the app signs its pre-sign-in session in place: the browser already holds it
	e := start(t, opts, defaultGateway)
	e.enrolled("alice")

	t.Run("api", func(t *testing.T) {
		c := e.pending("alice")
		appCookie := c.cookie("demo_session")
		if appCookie == "" {
			t.Fatal("the app's session cookie is not in the browser (the app signs in place)")
		}
		r := c.api("sign-out", map[string]any{})
		if r.StatusCode != 200 || r.JSON(t)["next"] != "/" {
			t.Fatalf("sign-out: %d %s", r.StatusCode, r.Body)
		}
		if !r.clears("mfa_session") || !r.clears("demo_session") {
			t.Fatalf("sign-out does not delete the gateway and app cookies: %q", r.Header["Set-Cookie"])
		}
		apiErr(t, c.api("status", nil), 401, "no_session")
		// The app's cookie, kept by a browser that ignores the deletion,
		// is forwarded no more: the app sees nobody.
		r = e.raw("GET", "/", "demo_session="+appCookie, nil, nil)
		if strings.Contains(r.Body, `<strong id="user">alice`) {
			t.Fatal("the app cookie of an abandoned sign-in still signs alice in")
		}
	})

	t.Run("page", func(t *testing.T) {
		c := e.pending("alice")
		page := c.get("/_mfa/challenge")
		for _, want := range []string{"Signing in as <strong>alice</strong>", `action="/_mfa/sign-out"`, "Not you?"} {
			if !strings.Contains(page.Body, want) {
				t.Fatalf("challenge page lacks %q", want)
			}
		}
		r := c.postForm("/_mfa/sign-out", url.Values{"csrf": {csrfOf(t, page)}})
		if r.StatusCode != 303 || r.Location() != "/" {
			t.Fatalf("sign-out form: %d %q", r.StatusCode, r.Location())
		}
		if p := c.get("/_mfa/challenge"); p.StatusCode != 401 || !strings.Contains(p.Body, "Sign in to the app first") {
			t.Fatalf("challenge after Not you: %d %.200s", p.StatusCode, p.Body)
		}
		// A fresh sign-in as someone else goes on as usual.
		if r := c.signIn("bob", "bob-password"); r.StatusCode != 303 || r.Location() != "/" {
			t.Fatalf("bob after alice's abandoned sign-in: %d %q", r.StatusCode, r.Location())
		}
		if u := c.dashboardUser(); u != "bob" {
			t.Fatalf("dashboard shows %q, want bob", u)
		}
	})

	t.Run("the app's sign-out from a waiting sign-in", func(t *testing.T) {
		c := e.pending("alice")
		if r := c.get("/logout"); strings.HasPrefix(r.Location(), "/_mfa/") {
			t.Fatalf("the app's sign-out bounced back to the gateway: %d %q", r.StatusCode, r.Location())
		}
		apiErr(t, c.api("status", nil), 401, "no_session")
		if r := c.get("/login"); r.StatusCode != 200 {
			t.Fatalf("the app's sign-in page after its sign-out: %d %q", r.StatusCode, r.Location())
		}
	})

	t.Run("bad input", func(t *testing.T) {
		active := e.newClient()
		active.signIn("bob", "bob-password")
		apiErr(t, active.api("sign-out", map[string]any{}), 409, "not_held")
		apiErr(t, e.newClient().api("sign-out", map[string]any{}), 401, "no_session")
		c := e.pending("alice")
		apiErr(t, c.req("POST", "/_mfa/api/v1/sign-out", strings.NewReader("{}"), map[string]string{"Content-Type": "text/plain"}), 400, "bad_request")
		apiErr(t, c.req("POST", "/_mfa/api/v1/sign-out", strings.NewReader("{}"),
			map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}), 403, "cross_origin")
		apiErr(t, c.api("sign-out", nil), 405, "method_not_allowed")
		if r := c.postForm("/_mfa/sign-out", url.Values{"csrf": {"forged"}}); r.StatusCode != 403 {
			t.Fatalf("sign-out form with a forged token: %d", r.StatusCode)
		}
		if st := c.api("status", nil); st.StatusCode != 200 || st.JSON(t)["state"] != "pending" {
			t.Fatalf("a refused sign-out ended the sign-in: %d %s", st.StatusCode, st.Body)
		}
	})
}

// TestStepUp: regenerating recovery codes asks for a current code besides
// an AAL2 session; wrong ones count towards the lock-out, which says how
// long it lasts and what else to do.
func TestStepUp(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tmax_attempts 3\n")
	secret, codes, c := e.enrolled("carol")

	apiErr(t, c.api("recovery-codes/regenerate", map[string]any{}), 400, "code_required")
	apiErr(t, c.api("recovery-codes/regenerate", map[string]any{"code": ""}), 400, "code_required")
	apiErr(t, c.api("recovery-codes/regenerate", map[string]any{"code": wrongCode(t, secret)}), 401, "invalid_code")
	apiErr(t, c.api("recovery-codes/regenerate", map[string]any{"code": "zzzzzz-zzzzzz"}), 401, "invalid_recovery_code")
	if st := c.status(); st["recovery_codes_remaining"].(float64) != 10 || st["recovery_codes_unacknowledged"] != false {
		t.Fatalf("refused regenerations changed the codes: %v", st)
	}
	// A recovery code proves it too (and is spent with the old set).
	r := c.api("recovery-codes/regenerate", map[string]any{"code": codes[0]})
	if r.StatusCode != 200 || len(r.JSON(t)["recovery_codes"].([]any)) != 10 {
		t.Fatalf("regenerate with a recovery code: %d %s", r.StatusCode, r.Body)
	}

	// Wrong authenticator codes reach max_attempts: the lock-out says when
	// to try again and points to the recovery codes.
	for range 2 {
		c.api("totp/disable", map[string]any{"code": wrongCode(t, secret)})
	}
	r = c.api("totp/disable", map[string]any{"code": code(t, secret, 1)})
	apiErr(t, r, 429, "rate_limited")
	msg := r.JSON(t)["message"].(string)
	if !strings.Contains(msg, "Try again in 15 minutes") || !strings.Contains(msg, "recovery codes") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("lock-out message %q (Retry-After %q)", msg, r.Header.Get("Retry-After"))
	}
	if st := c.status(); st["enrolled"] != true {
		t.Fatalf("a locked-out disable turned 2FA off: %v", st)
	}
}

// TestChallengeMessages: each way a code is refused says what happened and
// what to do: a code used in another tab, a sign-in left past its time.
func TestChallengeMessages(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tpending_timeout 2s\n")
	secret, _, _ := e.enrolled("dave")

	c1, c2 := e.pending("dave"), e.pending("dave")
	same := code(t, secret, 1)
	if r := c1.api("challenge", map[string]string{"code": same}); r.StatusCode != 200 {
		t.Fatalf("first tab: %d %s", r.StatusCode, r.Body)
	}
	r := c2.api("challenge", map[string]string{"code": same})
	apiErr(t, r, 401, "code_used")
	if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "already used") || !strings.Contains(msg, "new code") {
		t.Fatalf("code used message: %q", msg)
	}

	c3 := e.pending("dave")
	time.Sleep(2500 * time.Millisecond) // past pending_timeout
	apiErr(t, c3.api("challenge", map[string]string{"code": code(t, secret, 0)}), 401, "sign_in_expired")
	page := c3.get("/_mfa/challenge")
	if page.StatusCode != http.StatusUnauthorized || !strings.Contains(page.Body, "This sign-in has expired") || !strings.Contains(page.Body, `href="/">Sign in again</a>`) {
		t.Fatalf("expired challenge page: %d %.400s", page.StatusCode, page.Body)
	}
	// Without any gateway cookie, the page still asks to sign in first.
	if p := e.newClient().get("/_mfa/challenge"); p.StatusCode != 401 || !strings.Contains(p.Body, "Sign in to the app first") {
		t.Fatalf("challenge without a sign-in: %d", p.StatusCode)
	}
}

// TestChangeAuthenticator: a new authenticator app replaces the old one
// only once a code from it is confirmed; until then the old one signs in.
func TestChangeAuthenticator(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	oldSecret, _, c := e.enrolled("erin")

	r := c.api("totp/change", map[string]any{})
	if r.StatusCode != 200 {
		t.Fatalf("change: %d %s", r.StatusCode, r.Body)
	}
	newSecret := r.JSON(t)["secret"].(string)
	if again := c.api("totp/change", map[string]any{}).JSON(t)["secret"]; again != newSecret {
		t.Fatalf("asking again gave another secret: %v", again)
	}
	// Not confirmed yet: the old app still signs in.
	p := e.pending("erin")
	if r := p.api("challenge", map[string]string{"code": code(t, oldSecret, 1)}); r.StatusCode != 200 {
		t.Fatalf("old app before the change is confirmed: %d %s", r.StatusCode, r.Body)
	}

	apiErr(t, c.api("totp/change/confirm", map[string]any{}), 400, "bad_request")
	apiErr(t, c.api("totp/change/confirm", map[string]string{"code": "12"}), 400, "malformed_code")
	apiErr(t, c.api("totp/change/confirm", map[string]string{"code": wrongCode(t, newSecret)}), 401, "invalid_code")
	if r := c.api("totp/change/confirm", map[string]string{"code": code(t, newSecret, 0)}); r.StatusCode != 200 {
		t.Fatalf("confirm the new app: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, c.api("totp/change/confirm", map[string]string{"code": code(t, newSecret, 1)}), 409, "no_pending_setup")

	p2 := e.pending("erin")
	apiErr(t, p2.api("challenge", map[string]string{"code": code(t, oldSecret, 1)}), 401, "invalid_code")
	if r := p2.api("challenge", map[string]string{"code": code(t, newSecret, 1)}); r.StatusCode != 200 {
		t.Fatalf("new app after the change: %d %s", r.StatusCode, r.Body)
	}
	if st := c.status(); st["recovery_codes_remaining"].(float64) != 10 {
		t.Fatalf("the change touched the recovery codes: %v", st)
	}

	// A session that did not pass a second factor cannot.
	e2 := e.newClient()
	e2.signIn("frank", "frank-password")
	apiErr(t, e2.api("totp/change", map[string]any{}), 403, "aal2_required")
}

// TestSignOutWhileSetupRequired: someone the team's policy holds at the
// setup (no factor yet) can still sign out, from the setup dialog or with
// the app's own sign-out, instead of being sent back to the setup.
func TestSignOutWhileSetupRequired(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\trequire_2fa\n")
	c := e.newClient()
	if r := c.signIn("frank", "frank-password"); r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("sign-in under require_2fa: %d %q", r.StatusCode, r.Location())
	}
	page := c.get("/_mfa/security?setup=1")
	if !strings.Contains(page.Body, "Your team requires two-factor authentication. Set it up to continue") || !strings.Contains(page.Body, `action="/_mfa/sign-out"`) {
		t.Fatalf("the required setup dialog lacks its reason or Sign out: %.300s", page.Body)
	}
	if r := c.postForm("/_mfa/sign-out", url.Values{"csrf": {csrfOf(t, page)}}); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("sign out from the required setup: %d %q", r.StatusCode, r.Location())
	}
	apiErr(t, c.api("status", nil), 401, "no_session")

	c2 := e.newClient()
	c2.signIn("frank", "frank-password")
	if r := c2.get("/logout"); strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("the app's sign-out bounced back to the setup: %d %q", r.StatusCode, r.Location())
	}
	apiErr(t, c2.api("status", nil), 401, "no_session")
}
