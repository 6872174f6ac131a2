package integration_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestWrongCode: a wrong code is a 401 invalid_code on the API and the
// challenge page again (with its error) on the form; a malformed code is a
// 400; the right code on the form then lands on a same-origin next.
func TestWrongCode(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("alice")
	c := e.pending("alice")

	t.Run("api wrong code", func(t *testing.T) {
		r := c.api("challenge", map[string]string{"code": wrongCode(t, secret)})
		apiErr(t, r, 401, "invalid_code")
	})

	for _, tc := range []struct {
		name string
		body any
		code string
	}{
		{"letters", map[string]string{"code": "12ab56"}, "malformed_code"},
		{"five digits", map[string]string{"code": "12345"}, "malformed_code"},
		{"seven digits", map[string]string{"code": "1234567"}, "malformed_code"},
		{"empty", map[string]string{"code": ""}, "malformed_code"},
		{"long", map[string]string{"code": strings.Repeat("1", 5000)}, "malformed_code"},
		{"non-ascii digits", map[string]string{"code": "١٢٣٤٥٦"}, "malformed_code"},
		{"number not string", map[string]int{"code": 123456}, "bad_request"},
		{"missing", map[string]string{"totp": "123456"}, "bad_request"},
	} {
		t.Run("api malformed/"+tc.name, func(t *testing.T) {
			apiErr(t, c.api("challenge", tc.body), 400, tc.code)
		})
	}

	t.Run("form wrong code re-renders the page", func(t *testing.T) {
		page := c.get("/_mfa/challenge")
		if page.StatusCode != 200 || !strings.Contains(page.Body, `name="code"`) {
			t.Fatalf("challenge page: %d %.300s", page.StatusCode, page.Body)
		}
		r := c.postForm("/_mfa/challenge", url.Values{"code": {wrongCode(t, secret)}, "csrf": {csrfOf(t, page)}})
		if r.StatusCode != 401 {
			t.Fatalf("form wrong code: %d, want 401", r.StatusCode)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("form answer is %q, want the HTML page", r.Header.Get("Content-Type"))
		}
		for _, want := range []string{`name="code"`, `autocomplete="one-time-code"`, `role="alert"`, `aria-invalid="true"`, "not valid", `name="csrf"`} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("re-rendered page lacks %q", want)
			}
		}
	})

	t.Run("form malformed code", func(t *testing.T) {
		page := c.get("/_mfa/challenge")
		r := c.postForm("/_mfa/challenge", url.Values{"code": {"abc"}, "csrf": {csrfOf(t, page)}})
		if r.StatusCode != 400 || !strings.Contains(r.Body, `role="alert"`) {
			t.Fatalf("form malformed code: %d %.300s", r.StatusCode, r.Body)
		}
	})

	t.Run("form right code goes to a same-origin next", func(t *testing.T) {
		page := c.get("/_mfa/challenge")
		r := c.postForm("/_mfa/challenge", url.Values{
			"code": {code(t, secret, 1)}, "csrf": {csrfOf(t, page)}, "next": {"//evil.example/x"},
		})
		if r.StatusCode != 303 || r.Location() != "/" {
			t.Fatalf("form right code: %d %q, want 303 to /", r.StatusCode, r.Location())
		}
		if u := c.dashboardUser(); u != "alice" {
			t.Fatalf("dashboard after the form challenge: %q", u)
		}
	})
}

// TestRateLimit: after max_attempts wrong codes the user is locked out (429
// with Retry-After), even with the right code, and a new sign-in does not
// reset the count. Another user on the same address is not locked out.
func TestRateLimit(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\n\t\tmax_attempts 3")
	secret, codes, _ := e.enrolled("bob")
	aliceSecret, _, _ := e.enrolled("alice")

	c1 := e.pending("bob")
	for i := 0; i < 2; i++ {
		apiErr(t, c1.api("challenge", map[string]string{"code": wrongCode(t, secret)}), 401, "invalid_code")
	}
	// Restart the sign-in: a new pending session, same count.
	c2 := e.pending("bob")
	apiErr(t, c2.api("challenge", map[string]string{"code": wrongCode(t, secret)}), 401, "invalid_code")

	retryAfter := func(t *testing.T, r resp) {
		t.Helper()
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra <= 0 || ra > 15*60 {
			t.Fatalf("Retry-After %q, want seconds in (0, 900]", r.Header.Get("Retry-After"))
		}
	}
	t.Run("right code refused while locked out", func(t *testing.T) {
		r := c2.api("challenge", map[string]string{"code": code(t, secret, 1)})
		apiErr(t, r, 429, "rate_limited")
		retryAfter(t, r)
	})
	t.Run("the first sign-in is locked out too", func(t *testing.T) {
		r := c1.api("challenge", map[string]string{"code": code(t, secret, 1)})
		apiErr(t, r, 429, "rate_limited")
		retryAfter(t, r)
	})
	t.Run("a new sign-in does not reset the count", func(t *testing.T) {
		c3 := e.pending("bob")
		r := c3.api("challenge", map[string]string{"code": code(t, secret, 1)})
		apiErr(t, r, 429, "rate_limited")
		retryAfter(t, r)
		page := c3.get("/_mfa/challenge")
		r = c3.postForm("/_mfa/challenge", url.Values{"code": {code(t, secret, 1)}, "csrf": {csrfOf(t, page)}})
		if r.StatusCode != 429 {
			t.Fatalf("form while locked out: %d", r.StatusCode)
		}
		retryAfter(t, r)
		if u := c3.dashboardUser(); u != "" {
			t.Fatalf("locked-out sign-in reached the dashboard as %q", u)
		}
		// Recovery codes have their own count (too long to guess): a lock on
		// authenticator codes does not lock the owner out of them.
		r = c3.api("challenge/recovery", map[string]string{"recovery_code": codes[0]})
		if r.StatusCode != 200 {
			t.Fatalf("recovery code during a lock on authenticator codes: %d %s", r.StatusCode, r.Body)
		}
	})
	t.Run("another user is not locked out", func(t *testing.T) {
		c := e.pending("alice")
		if r := c.api("challenge", map[string]string{"code": code(t, aliceSecret, 1)}); r.StatusCode != 200 {
			t.Fatalf("alice's right code: %d %s", r.StatusCode, r.Body)
		}
	})
}

// TestWrongCodesInARowLockTheAuthenticator: with max_failed_codes 3 (and a
// rate limit loose enough not to interfere), three wrong codes lock alice's
// authenticator: her right code is refused with 403 factor_locked, the admin
// sees her locked and unlocks her, and then the right code lets her in.
func TestWrongCodesInARowLockTheAuthenticator(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway+`
		max_failed_codes 3
		max_attempts 1000
`)
	_, _, admin := e.enrolled("admin")
	secret, _, _ := e.enrolled("alice")
	c := e.pending("alice")
	for range 3 {
		apiErr(t, c.api("challenge", map[string]string{"code": wrongCode(t, secret)}), 401, "invalid_code")
	}
	apiErr(t, c.api("challenge", map[string]string{"code": code(t, secret, 1)}), 403, "factor_locked")
	notAlice(t, "after the lock", c.get("/api/data"))

	members := admin.api("admin/members", nil).JSON(t)["members"].([]any)
	locked := map[string]bool{}
	for _, m := range members {
		mm := m.(map[string]any)
		locked[mm["user"].(string)] = mm["locked"] == true
	}
	if !locked["alice"] || locked["admin"] {
		t.Fatalf("members' locks: %v, want only alice", locked)
	}
	page := admin.get("/_mfa/admin")
	if !strings.Contains(page.Body, "Locked: too many wrong codes") || !strings.Contains(page.Body, "Unlock authenticator") {
		t.Errorf("the admin page does not show alice locked with an unlock button")
	}
	if r := admin.api("admin/unlock", map[string]string{"user": "alice"}); r.StatusCode != 200 {
		t.Fatalf("unlock: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, admin.api("admin/unlock", map[string]string{"user": "nobody"}), 404, "unknown_user")
	if r := c.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("right code after the unlock: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("alice's dashboard after the unlock: %q", u)
	}
}

// TestChallengeHoldsEveryCookie: the app sets its session cookie and a new
// CSRF cookie at sign-in. While the second factor is outstanding the browser
// gets neither; the passed challenge releases both.
func TestChallengeHoldsEveryCookie(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.CSRFCookie = true
	e := start(t, opts, defaultGateway)
	secret, _, _ := e.enrolled("alice")
	c := e.newClient()
	r := c.signIn("alice", "alice-password")
	if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("sign-in: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	for _, name := range []string{"demo_session", "demo_csrf"} {
		if line := r.setCookie(name); line != "" {
			t.Errorf("the challenged sign-in let %s through: %q", name, line)
		}
	}
	r = c.api("challenge", map[string]string{"code": code(t, secret, 1)})
	if r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	for _, name := range []string{"demo_session", "demo_csrf"} {
		if r.setCookie(name) == "" {
			t.Errorf("the passed challenge did not release %s (Set-Cookie: %q)", name, r.Header.Values("Set-Cookie"))
		}
	}
}
