package integration_test

// The admin page's HTML forms and the security page's sessions card, posted
// as a browser without JavaScript posts them (plain HTTP through the real
// Caddy server): bad input of every kind gets a clear 4xx and a page that
// says what went wrong, never a 500 and never a change.

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// adminWantPage checks an HTML answer: the status, an HTML body, and each
// of the texts on it.
func adminWantPage(t *testing.T, what string, r resp, status int, texts ...string) {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("%s: status %d, want %d: %.600s", what, r.StatusCode, status, r.Body)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q, want an HTML page: %.300s", what, ct, r.Body)
		return
	}
	for _, s := range texts {
		if !strings.Contains(r.Body, s) {
			t.Errorf("%s: the page (%d) does not say %q:\n%.1500s", what, r.StatusCode, s, adminVisibleText(r.Body))
		}
	}
}

var (
	adminTagRe   = regexp.MustCompile(`(?s)<[^>]*>`)
	adminSpaceRe = regexp.MustCompile(`\s+`)
)

// adminVisibleText is a page's text without tags, for failure messages.
func adminVisibleText(html string) string {
	if _, after, ok := strings.Cut(html, "<main"); ok {
		html = after
	}
	return strings.TrimSpace(adminSpaceRe.ReplaceAllString(adminTagRe.ReplaceAllString(html, " "), " "))
}

// adminPolicy reads the scope's policy through the API.
func adminPolicy(t *testing.T, admin *client) (require2FA bool, minutes float64) {
	t.Helper()
	r := admin.api("admin/policy", nil)
	if r.StatusCode != 200 {
		t.Fatalf("read policy: %d %s", r.StatusCode, r.Body)
	}
	m := r.JSON(t)
	return m["require_2fa"] == true, m["idle_minutes"].(float64)
}

// adminSessionIDs returns the client's own session id and its other
// sessions' ids, from the API.
func adminSessionIDs(t *testing.T, c *client) (self string, others []string) {
	t.Helper()
	r := c.api("sessions", nil)
	if r.StatusCode != 200 {
		t.Fatalf("sessions: %d %s", r.StatusCode, r.Body)
	}
	for _, s := range r.JSON(t)["sessions"].([]any) {
		m := s.(map[string]any)
		if m["current"] == true {
			self = m["id"].(string)
		} else {
			others = append(others, m["id"].(string))
		}
	}
	return self, others
}

var adminSessionInputRe = regexp.MustCompile(`name="session" value="([0-9a-f]+)"`)

// adminFormSessions lists the session ids the page offers a Sign out button for.
func adminFormSessions(page resp) []string {
	var ids []string
	for _, m := range adminSessionInputRe.FindAllStringSubmatch(page.Body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// TestAdminFormsBadInput: every admin form, with every kind of bad input
// and every kind of wrong caller.
func TestAdminFormsBadInput(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	dave := e.newClient() // an admin by the Caddyfile, without 2FA: AAL1
	dave.signIn("dave", "dave-password")
	anon := e.newClient()

	page := admin.get("/_mfa/admin")
	adminWantPage(t, "the admin's page", page, 200, "Team security", "Require 2FA for everyone", "Session timeout")
	csrf := csrfOf(t, page)
	_, startMinutes := adminPolicy(t, admin)

	// ---- Session timeout ------------------------------------------------
	t.Run("timeout", func(t *testing.T) {
		for _, tc := range []struct{ minutes, says string }{
			{"abc", "whole number of minutes, from 5 to 1440"},
			{"", "whole number of minutes, from 5 to 1440"},
			{"   ", "whole number of minutes, from 5 to 1440"},
			{"30.5", "whole number of minutes, from 5 to 1440"},
			{"3e1", "whole number of minutes, from 5 to 1440"},
			{"99999999999999999999999", "whole number of minutes, from 5 to 1440"},
			{"4", "must be 5 to 1440 minutes, not 4"},
			{"0", "must be 5 to 1440 minutes, not 0"},
			{"-30", "must be 5 to 1440 minutes, not -30"},
			{"1441", "must be 5 to 1440 minutes, not 1441"},
		} {
			r := admin.postForm("/_mfa/admin/timeout", url.Values{"csrf": {csrf}, "minutes": {tc.minutes}})
			what := "timeout " + adminQuote(tc.minutes)
			// The admin page again, with the error by the timeout form.
			adminWantPage(t, what, r, 400, `id="policy-error"`, tc.says, "Team security", `name="minutes"`)
			if strings.Contains(r.Body, `class="banner banner-info"`) {
				t.Errorf("%s: the refused change shows a success notice", what)
			}
		}
		// An answer to a form the browser would have blocked must still be
		// the page, not JSON, and the stored timeout must not have moved.
		if _, m := adminPolicy(t, admin); m != startMinutes {
			t.Fatalf("refused timeouts changed the stored timeout: %v, want %v", m, startMinutes)
		}
		// The edges are accepted.
		for _, ok := range []string{"5", "1440", " 30 "} {
			r := admin.postForm("/_mfa/admin/timeout", url.Values{"csrf": {csrf}, "minutes": {ok}})
			if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/admin?done=timeout") {
				t.Errorf("timeout %q: %d %q, want 303 to the page with done=timeout", ok, r.StatusCode, r.Location())
			}
		}
		if _, m := adminPolicy(t, admin); m != 30 {
			t.Errorf("after saving \" 30 \" the timeout is %v", m)
		}
	})

	// ---- Reset a member's 2FA -------------------------------------------
	t.Run("reset", func(t *testing.T) {
		r := admin.postForm("/_mfa/admin/reset", url.Values{"csrf": {csrf}, "user": {"nobody"}})
		adminWantPage(t, "reset of an unknown user", r, 404, `id="page-error"`, "No such user.", "Team security")
		r = admin.postForm("/_mfa/admin/reset", url.Values{"csrf": {csrf}})
		adminWantPage(t, "reset with no user", r, 400, `id="page-error"`, "Name the user to reset or unlock.", "Team security")
		r = admin.postForm("/_mfa/admin/reset", url.Values{"csrf": {csrf}, "user": {""}})
		adminWantPage(t, "reset with an empty user", r, 400, "Name the user to reset or unlock.")
		r = admin.postForm("/_mfa/admin/reset", url.Values{"csrf": {csrf}, "user": {`<script>alert(1)</script>`}})
		adminWantPage(t, "reset of a user named like markup", r, 404, "No such user.")
		if strings.Contains(r.Body, "<script>alert(1)") {
			t.Errorf("the posted user name is echoed unescaped")
		}
		// carol kept her 2FA through all of that.
		for _, m := range admin.api("admin/members", nil).JSON(t)["members"].([]any) {
			if mm := m.(map[string]any); mm["user"] == "carol" && mm["enrolled"] != true {
				t.Errorf("carol lost her 2FA to a refused reset: %v", mm)
			}
		}
	})

	// ---- Revoke a session from the admin page ----------------------------
	t.Run("revoke", func(t *testing.T) {
		bobSelf, _ := adminSessionIDs(t, bob)
		for _, id := range []string{
			"zz", "not-a-session", strings.Repeat("0", len(bobSelf)), strings.Repeat("g", len(bobSelf)),
			strings.ToUpper(bobSelf) + "00", bobSelf[:len(bobSelf)-2], "",
		} {
			r := admin.postForm("/_mfa/admin/sessions/revoke", url.Values{"csrf": {csrf}, "session": {id}})
			adminWantPage(t, "revoke of session "+adminQuote(id), r, 404, `id="page-error"`, "No such session.", "Team security")
		}
		if u := bob.dashboardUser(); u != "bob" {
			t.Fatalf("a refused revoke ended bob's session: %q", u)
		}
	})

	// ---- CSRF: missing, wrong, another session's --------------------------
	t.Run("csrf", func(t *testing.T) {
		bobCSRF := csrfOf(t, bob.get("/_mfa/security"))
		bobSelf, _ := adminSessionIDs(t, bob)
		forms := map[string]url.Values{
			"/_mfa/admin/policy":          {"require_2fa": {"on"}},
			"/_mfa/admin/timeout":         {"minutes": {"60"}},
			"/_mfa/admin/reset":           {"user": {"carol"}},
			"/_mfa/admin/sessions/revoke": {"session": {bobSelf}},
		}
		for path, form := range forms {
			for name, token := range map[string]*string{"missing": nil, "empty": new(string), "wrong": adminPtr(strings.Repeat("A", len(csrf))), "bob's": &bobCSRF, "truncated": adminPtr(csrf[:len(csrf)-1])} {
				v := url.Values{}
				for k, vs := range form {
					v[k] = vs
				}
				if token != nil {
					v.Set("csrf", *token)
				}
				r := admin.postForm(path, v)
				adminWantPage(t, name+" csrf on "+path, r, 403, "The form expired or came from another site")
			}
		}
		adminAssertUnchanged(t, admin, bob, startMinutes)
	})

	// ---- Who may see and use the page -------------------------------------
	t.Run("callers", func(t *testing.T) {
		adminWantPage(t, "bob (not an admin) opens the admin page", bob.get("/_mfa/admin"), 403, "Only team admins can do this.")
		if r := bob.get("/_mfa/admin"); strings.Contains(r.Body, "Require 2FA for everyone") || strings.Contains(r.Body, `name="csrf"`) {
			t.Errorf("the refusal page for bob shows admin content or forms")
		}
		adminWantPage(t, "dave (admin, AAL1) opens the admin page", dave.get("/_mfa/admin"), 403, "authenticator")
		if r := dave.get("/_mfa/admin"); strings.Contains(r.Body, "Require 2FA for everyone") || strings.Contains(r.Body, "Only team admins") {
			t.Errorf("dave's refusal is not the AAL2 one: %.400s", adminVisibleText(r.Body))
		}
		r := anon.get("/_mfa/admin")
		adminWantPage(t, "anonymous opens the admin page", r, 401, "Sign in to the app first.", "Go to sign-in")

		// The same callers posting the forms, each with their own valid token.
		bobCSRF := csrfOf(t, bob.get("/_mfa/security"))
		daveCSRF := csrfOf(t, dave.get("/_mfa/security"))
		adminSelf, _ := adminSessionIDs(t, admin)
		for path, form := range map[string]url.Values{
			"/_mfa/admin/policy":          {"require_2fa": {"on"}},
			"/_mfa/admin/timeout":         {"minutes": {"60"}},
			"/_mfa/admin/reset":           {"user": {"carol"}},
			"/_mfa/admin/sessions/revoke": {"session": {adminSelf}},
		} {
			post := func(c *client, token string) resp {
				v := url.Values{"csrf": {token}}
				for k, vs := range form {
					v[k] = vs
				}
				return c.postForm(path, v)
			}
			adminWantPage(t, "bob posts "+path, post(bob, bobCSRF), 403, "Only team admins can do this.")
			adminWantPage(t, "dave (AAL1) posts "+path, post(dave, daveCSRF), 403, "authenticator")
			adminWantPage(t, "anonymous posts "+path, post(anon, ""), 401, "Sign in to the app first.")
		}
		adminAssertUnchanged(t, admin, bob, startMinutes)
		if u := admin.dashboardUser(); u != "admin" {
			t.Errorf("the admin's session was ended by someone else's refused revoke: %q", u)
		}

		// An admin who signed in with the password but has not passed the
		// challenge yet is sent to the challenge, not shown the page.
		pending := e.pending("admin")
		if r := pending.get("/_mfa/admin"); r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Errorf("pending admin opens the admin page: %d %q, want 303 to the challenge", r.StatusCode, r.Location())
		}
	})

	// ---- Cross-origin posts -------------------------------------------------
	t.Run("cross-origin", func(t *testing.T) {
		bobSelf, _ := adminSessionIDs(t, bob)
		for path, form := range map[string]url.Values{
			"/_mfa/admin/policy":          {"require_2fa": {"on"}},
			"/_mfa/admin/timeout":         {"minutes": {"60"}},
			"/_mfa/admin/reset":           {"user": {"carol"}},
			"/_mfa/admin/sessions/revoke": {"session": {bobSelf}},
		} {
			v := url.Values{"csrf": {csrf}}
			for k, vs := range form {
				v[k] = vs
			}
			for name, hdr := range map[string]map[string]string{
				"Origin evil":              {"Origin": "http://evil.example"},
				"Origin null":              {"Origin": "null"},
				"Origin other port":        {"Origin": "http://127.0.0.1:1"},
				"Origin https same host":   {"Origin": strings.Replace(e.Base, "http://", "https://", 1)},
				"Sec-Fetch-Site cross":     {"Sec-Fetch-Site": "cross-site"},
				"Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
			} {
				hdr["Content-Type"] = "application/x-www-form-urlencoded"
				r := admin.req("POST", path, strings.NewReader(v.Encode()), hdr)
				adminWantPage(t, name+" on "+path, r, 403, "Requests must come from this site.")
			}
		}
		adminAssertUnchanged(t, admin, bob, startMinutes)
		// The same form from this origin goes through.
		r := admin.req("POST", "/_mfa/admin/timeout", strings.NewReader(url.Values{"csrf": {csrf}, "minutes": {"45"}}.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.Base, "Sec-Fetch-Site": "same-origin"})
		if r.StatusCode != 303 {
			t.Errorf("same-origin timeout post: %d %.300s", r.StatusCode, r.Body)
		}
	})

	// ---- Wrong method, oversized form ------------------------------------
	t.Run("method and size", func(t *testing.T) {
		for _, p := range []string{"policy", "timeout", "reset", "sessions/revoke"} {
			r := admin.get("/_mfa/admin/" + p)
			if r.StatusCode != 405 || r.Header.Get("Allow") != "POST" {
				t.Errorf("GET /_mfa/admin/%s: %d Allow %q, want 405 Allow POST", p, r.StatusCode, r.Header.Get("Allow"))
			}
		}
		r := admin.req("POST", "/_mfa/admin", strings.NewReader("csrf="+csrf), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.StatusCode != 405 || r.Header.Get("Allow") != "GET" {
			t.Errorf("POST /_mfa/admin: %d Allow %q, want 405 Allow GET", r.StatusCode, r.Header.Get("Allow"))
		}
		big := url.Values{"csrf": {csrf}, "minutes": {"60"}, "pad": {strings.Repeat("x", 40<<10)}}
		adminWantPage(t, "a 40 KiB timeout form", admin.postForm("/_mfa/admin/timeout", big), 400, "The form could not be read.")
	})
}

// assertNothingChanged: refused posts left the policy off, the timeout as it
// was, carol enrolled and bob signed in.
func adminAssertUnchanged(t *testing.T, admin, bob *client, minutes float64) {
	t.Helper()
	on, m := adminPolicy(t, admin)
	if on {
		t.Errorf("a refused post switched require 2FA on")
	}
	if m != minutes && m != 30 { // 30: saved by the timeout subtest
		t.Errorf("a refused post changed the timeout to %v", m)
	}
	for _, mm := range admin.api("admin/members", nil).JSON(t)["members"].([]any) {
		if x := mm.(map[string]any); x["user"] == "carol" && x["enrolled"] != true {
			t.Errorf("a refused post reset carol's 2FA")
		}
	}
	if u := bob.dashboardUser(); u != "bob" {
		t.Errorf("a refused post ended bob's session: %q", u)
	}
}

func adminPtr(s string) *string { return &s }

func adminQuote(s string) string { return `"` + s + `"` }

// TestAdminFormsSecuritySessionsCard: the sessions card of a person's own
// security page, posted as forms: sign out one other device, refuse the
// current one, "sign out everywhere else".
func TestAdminFormsSecuritySessionsCard(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	laptop := e.newClient()
	laptop.signIn("erin", "erin-password")
	phone := e.newClient()
	phone.signIn("erin", "erin-password")
	tablet := e.newClient()
	tablet.signIn("erin", "erin-password")
	frank := e.newClient()
	frank.signIn("frank", "frank-password")

	page := laptop.get("/_mfa/security")
	adminWantPage(t, "erin's security page", page, 200, "Active sessions", "This device", "Sign out everywhere else")
	csrf := csrfOf(t, page)
	self, others := adminSessionIDs(t, laptop)
	offered := adminFormSessions(page)
	if len(others) != 2 || len(offered) != 2 || !adminSameSet(offered, others) {
		t.Fatalf("the card offers Sign out for %v; the other sessions are %v (self %s)", offered, others, self)
	}
	if strings.Contains(page.Body, `value="`+self+`"`) {
		t.Errorf("the card offers a Sign out button for the current session")
	}
	phoneID, _ := adminSessionIDs(t, phone)
	tabletID, _ := adminSessionIDs(t, tablet)
	frankID, _ := adminSessionIDs(t, frank)

	// Bad input first: nothing ends.
	adminWantPage(t, "revoking the current session", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}, "session": {self}}),
		400, `id="page-error"`, "That is this session", "Active sessions")
	adminWantPage(t, "revoking a garbage session", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}, "session": {"zz"}}),
		404, "No such session.", "Active sessions")
	adminWantPage(t, "revoking no session", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}}),
		404, "No such session.")
	adminWantPage(t, "revoking frank's session", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}, "session": {frankID}}),
		404, "No such session.")
	adminWantPage(t, "revoking without csrf", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"session": {phoneID}}),
		403, "The form expired or came from another site")
	adminWantPage(t, "revoke-others without csrf", laptop.postForm("/_mfa/security/sessions/revoke-others", url.Values{}),
		403, "The form expired or came from another site")
	adminWantPage(t, "revoke-others with frank's csrf", laptop.postForm("/_mfa/security/sessions/revoke-others", url.Values{"csrf": {csrfOf(t, frank.get("/_mfa/security"))}}),
		403, "The form expired or came from another site")
	r := laptop.req("POST", "/_mfa/security/sessions/revoke-others", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
	adminWantPage(t, "cross-origin revoke-others", r, 403, "Requests must come from this site.")
	adminWantPage(t, "anonymous revoke-others", e.newClient().postForm("/_mfa/security/sessions/revoke-others", url.Values{"csrf": {csrf}}),
		401, "Sign in to the app first.")
	for name, c := range map[string]*client{"laptop": laptop, "phone": phone, "tablet": tablet} {
		if u := c.dashboardUser(); u != "erin" {
			t.Fatalf("after refused posts erin's %s is signed out (%q)", name, u)
		}
	}
	if u := frank.dashboardUser(); u != "frank" {
		t.Fatalf("frank was signed out by erin's refused post: %q", u)
	}

	// Sign out the phone from the laptop.
	r = laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}, "session": {phoneID}})
	if r.StatusCode != 303 || r.Location() != "/_mfa/security?done=revoked" {
		t.Fatalf("revoke the phone: %d %q", r.StatusCode, r.Location())
	}
	page = laptop.get(r.Location())
	adminWantPage(t, "after signing out the phone", page, 200, "The session was signed out.")
	if ids := adminFormSessions(page); len(ids) != 1 || ids[0] != tabletID {
		t.Errorf("after signing out the phone the card offers %v, want only the tablet %s", ids, tabletID)
	}
	if u := phone.dashboardUser(); u != "" {
		t.Errorf("the signed-out phone still reaches the app as %q", u)
	}
	if r := phone.get("/api/data"); r.StatusCode == 200 {
		t.Errorf("the signed-out phone still reads app data: %.200s", r.Body)
	}
	if r := phone.api("status", nil); r.StatusCode != 401 {
		t.Errorf("the signed-out phone's gateway status: %d, want 401 (no session)", r.StatusCode)
	}
	if u := tablet.dashboardUser(); u != "erin" {
		t.Errorf("the tablet was signed out too: %q", u)
	}
	// Revoking it again: it is gone.
	adminWantPage(t, "revoking the phone again", laptop.postForm("/_mfa/security/sessions/revoke", url.Values{"csrf": {csrf}, "session": {phoneID}}),
		404, "No such session.")

	// A new phone sign-in, then "Sign out everywhere else".
	phone2 := e.newClient()
	phone2.signIn("erin", "erin-password")
	r = laptop.postForm("/_mfa/security/sessions/revoke-others", url.Values{"csrf": {csrf}})
	if r.StatusCode != 303 || r.Location() != "/_mfa/security?done=revoked" {
		t.Fatalf("revoke others: %d %q", r.StatusCode, r.Location())
	}
	for name, c := range map[string]*client{"tablet": tablet, "new phone": phone2} {
		if u := c.dashboardUser(); u != "" {
			t.Errorf("after Sign out everywhere else, erin's %s still reaches the app as %q", name, u)
		}
	}
	if u := laptop.dashboardUser(); u != "erin" {
		t.Fatalf("Sign out everywhere else ended the current session too: %q", u)
	}
	if u := frank.dashboardUser(); u != "frank" {
		t.Errorf("erin's Sign out everywhere else ended frank's session: %q", u)
	}
	page = laptop.get("/_mfa/security?done=revoked")
	if ids := adminFormSessions(page); len(ids) != 0 {
		t.Errorf("after Sign out everywhere else the card still offers %v", ids)
	}
	if strings.Contains(page.Body, "Sign out everywhere else") {
		t.Errorf("with one session left the card still offers Sign out everywhere else")
	}
	if s, o := adminSessionIDs(t, laptop); s != self || len(o) != 0 {
		t.Errorf("after revoke-others: self %s (was %s), others %v", s, self, o)
	}
	// With nobody else left, "revoke others" is harmless.
	if r := laptop.postForm("/_mfa/security/sessions/revoke-others", url.Values{"csrf": {csrf}}); r.StatusCode != 303 {
		t.Errorf("revoke others with nothing to revoke: %d", r.StatusCode)
	}
	if u := laptop.dashboardUser(); u != "erin" {
		t.Errorf("a second revoke-others ended the current session: %q", u)
	}
}

func adminSameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
