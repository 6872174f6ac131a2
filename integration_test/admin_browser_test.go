package integration_test

// A team admin's way through the admin page ("Team security") in headless
// Chromium: sign in, get refused at AAL1, turn on 2FA, open the page from
// the header link, switch "Require 2FA for everyone" on, set the session
// timeout (and try an out-of-range one), reset a member's 2FA through the
// confirm step, sign out another member's session, check the configuration
// with a test account, and look at the page on a phone. Screenshots go to integration_test/artifacts/admin-NN-….png.
//
// It reuses browser_test.go's tab (allocator, options, helpers).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

func TestAdminBrowserTeamPage(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	// Two members besides the admin: carol with 2FA (to be reset), bob
	// without (his session is signed out by the admin).
	_, _, carol := e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	if u := bob.dashboardUser(); u != "bob" {
		t.Fatalf("bob is not signed in: %q", u)
	}
	b := newTab(t, e.Base)
	began := time.Now()

	// ---- 0. Sign in; refused at AAL1; 2FA on -------------------------------
	b.part("sign in and enrol", func() {
		b.signIn("admin", "admin-password", "")
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "admin")

		// An admin without 2FA is an admin at AAL1: the page is refused.
		if st := adminOpen(b, "/_mfa/admin"); st != 403 {
			t.Errorf("the admin page at AAL1 answers %d, want 403", st)
		}
		tabWantContains(b, chromedp.CSS(".status-code"), "403")
		tabWantContains(b, chromedp.CSS("main"), "authenticator")
		tabWantGone(b, chromedp.ID("policy"))
		b.shot("admin-00-aal1-refused.png")
		b.axe("error page, 403 admin at AAL1")

		// Turn 2FA on with the browser's session (through the API, with its
		// cookies), then give the browser the rotated session cookie.
		c := e.newClient()
		adminCookiesToClient(b, c)
		if u := c.dashboardUser(); u != "admin" {
			t.Fatalf("the browser's cookies do not sign the client in as admin: %q", u)
		}
		c.enrol()
		adminCookiesToBrowser(b, c)

		// The security page now links to the admin page in its header.
		b.navigate("/_mfa/security")
		tabWantText(b, chromedp.CSS(".badge"), "On")
		tabSubmit(b, "click Team security", byLink("Team security"))
		b.wantPath("/_mfa/admin")
	})

	// ---- 1. The page ---------------------------------------------------
	b.part("admin page", func() {
		tabWantText(b, chromedp.CSS("h1"), "Team security")
		tabWantText(b, chromedp.CSS("#policy .card-head .badge"), "Off")
		if v := b.eval(`document.getElementById("require_2fa").checked`); v != false {
			t.Errorf("the Require 2FA box is ticked while the policy is off")
		}
		tabWantContains(b, chromedp.ID("require-help"), "Emails are not configured")
		// bob, and dave: an admin by the Caddyfile who never signed in.
		tabWantContains(b, chromedp.ID("policy"), "2 members have not set up 2FA yet.")
		if v := tabRun(b, "read the timeout", chromedp.Value(chromedp.ID("minutes"))); v != "240" {
			t.Errorf("the timeout field shows %q, want the default 240", v)
		}
		// Members: who has 2FA and who has not.
		if got := adminMemberRow(b, "admin"); !strings.Contains(got, "Admin") || !strings.Contains(got, "On") || !strings.Contains(got, "Authenticator app") {
			t.Errorf("the admin's member row reads %q, want Admin, On, Authenticator app", got)
		}
		if got := adminMemberRow(b, "carol"); !strings.Contains(got, "On") || !strings.Contains(got, "Reset 2FA") {
			t.Errorf("carol's member row reads %q, want On and a Reset 2FA button", got)
		}
		if got := adminMemberRow(b, "bob"); !strings.Contains(got, "2FA not set up") || strings.Contains(got, "Reset 2FA") {
			t.Errorf("bob's member row reads %q, want 2FA not set up and no reset", got)
		}
		// Sessions: everyone's, the admin's own marked and without a button.
		users := adminSessionUsers(b)
		if !adminSameSet(users, []string{"admin", "bob", "carol"}) {
			t.Errorf("the sessions table lists %q, want admin, bob and carol", users)
		}
		own := adminSessionRow(b, "admin")
		if !strings.Contains(own, "This device") || strings.Contains(own, "Sign out") {
			t.Errorf("the admin's own session row reads %q, want This device and no Sign out", own)
		}
		b.shot("admin-01-page.png")
		b.axe("admin page")
	})

	// ---- 2. Require 2FA for everyone -------------------------------------
	b.part("policy", func() {
		tabClick(b, "tick Require two-factor authentication", chromedp.CSS(`label[for="require_2fa"]`))
		if v := b.eval(`document.getElementById("require_2fa").checked`); v != true {
			t.Fatalf("clicking the label did not tick the box")
		}
		if st := tabSubmit(b, "click Save", byButton("Save")); st != 200 {
			t.Errorf("saving the policy ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "policy" {
			t.Errorf("after Save the URL has done=%q, want policy", q)
		}
		tabWantContains(b, chromedp.ID("notice"), "Team policy: 2FA now required for everyone")
		tabWantText(b, chromedp.CSS("#policy .card-head .badge"), "On")
		if v := b.eval(`document.getElementById("require_2fa").checked`); v != true {
			t.Errorf("after saving, the box is not ticked")
		}
		tabWantContains(b, chromedp.ID("policy"), "On since")
		tabWantContains(b, chromedp.ID("policy"), "are signed out on")
		b.shot("admin-02-policy-on.png")
		b.axe("admin page, require 2FA on")

		if r := bob.get("/"); r.StatusCode != 200 {
			t.Errorf("switching the policy on cut bob's existing session: %d", r.StatusCode)
		}
		newcomer := e.newClient()
		if r := newcomer.signIn("grace", "grace-password"); r.Location() != "/_mfa/security?setup=1" {
			t.Errorf("an unenrolled sign-in after the switch goes to %q, want the setup", r.Location())
		}
	})

	// ---- 3. Session timeout ----------------------------------------------
	b.part("timeout", func() {
		adminSetMinutes(b, "30")
		if st := tabSubmit(b, "click Save timeout", byButton("Save timeout")); st != 200 {
			t.Errorf("saving the timeout ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "timeout" {
			t.Errorf("after Save timeout the URL has done=%q, want timeout", q)
		}
		tabWantContains(b, chromedp.ID("notice"), "Session timeout: now 30 minutes")
		if v := tabRun(b, "read the timeout", chromedp.Value(chromedp.ID("minutes"))); v != "30" {
			t.Errorf("after saving 30 the field shows %q", v)
		}
		b.shot("admin-03-timeout-30.png")
		b.axe("admin page, timeout saved")

		// 2 minutes: the field's min="5" stops the form in the browser.
		adminSetMinutes(b, "2")
		tabClick(b, "click Save timeout with 2", byButton("Save timeout"))
		b.sleep(700 * time.Millisecond)
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "timeout" {
			t.Errorf("the browser sent the out-of-range form (done=%q)", q)
		}
		if v := b.eval(`document.getElementById("minutes").validity.rangeUnderflow`); v != true {
			t.Errorf("2 is not reported as under the minimum (validity.rangeUnderflow = %v)", v)
		}
		b.shot("admin-04-timeout-2-blocked.png")
		b.axe("admin page, out-of-range timeout blocked")

		// Without the attribute (an old browser, a tampered page) the server
		// answers: 400, the page again, the error by the policy card.
		b.do("remove the min attribute", chromedp.RemoveAttribute(chromedp.ID("minutes"), "min"))
		if st := tabSubmit(b, "click Save timeout with 2 (no min)", byButton("Save timeout")); st != 400 {
			t.Errorf("the server answers a timeout of 2 with %d, want 400", st)
		}
		b.wantPath("/_mfa/admin/timeout")
		tabWantContains(b, chromedp.ID("policy-error"), "Session timeout must be 5 to 1440 minutes, not 2.")
		tabWantText(b, chromedp.CSS("h1"), "Team security")
		tabWantGone(b, chromedp.CSS(".banner-info"))
		b.shot("admin-05-timeout-2-refused.png")
		b.axe("admin page, out-of-range timeout refused")

		// The same from a plain HTTP form post with the same session.
		c := e.newClient()
		adminCookiesToClient(b, c)
		page := c.get("/_mfa/admin")
		r := c.postForm("/_mfa/admin/timeout", url.Values{"csrf": {csrfOf(t, page)}, "minutes": {"2"}})
		adminWantPage(t, "plain form post of a timeout of 2", r, 400, "Session timeout must be 5 to 1440 minutes, not 2.")
		if _, m := adminPolicy(t, c); m != 30 {
			t.Errorf("after the refused 2 the stored timeout is %v, want 30", m)
		}
		b.navigate("/_mfa/admin")
		if v := tabRun(b, "read the timeout", chromedp.Value(chromedp.ID("minutes"))); v != "30" {
			t.Errorf("after the refused 2 the page shows %q, want 30", v)
		}
	})

	// ---- 4. Reset carol's 2FA ---------------------------------------------
	b.part("reset", func() {
		if u := carol.dashboardUser(); u != "carol" {
			t.Fatalf("carol is not signed in before the reset: %q", u)
		}
		summary := chromedp.Search(`//section[@id="members"]//tr[th//span[@class="cell-id"][starts-with(normalize-space(.), "carol")]]//summary`)
		tabWantGone(b, chromedp.CSS(".confirm[open]"))
		tabClick(b, "click Reset 2FA for carol", summary)
		panel := chromedp.CSS(".confirm[open] .confirm-panel")
		tabWantVisible(b, panel)
		tabWantContains(b, panel, "Reset 2FA for carol?")
		tabWantContains(b, panel, "signs them out everywhere")
		tabWantContains(b, panel, "Emails are not configured")
		b.shot("admin-06-reset-confirm.png")
		b.axe("admin page, reset confirm")

		if st := tabSubmit(b, "click the confirm button", byButton("Reset 2FA for carol")); st != 200 {
			t.Errorf("the reset ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "reset" {
			t.Errorf("after the reset the URL has done=%q, want reset", q)
		}
		tabWantContains(b, chromedp.ID("notice"), "2FA reset for carol — no email is configured, so tell them yourself.")
		adminWantInView(b, "#notice")
		if got := adminMemberRow(b, "carol"); !strings.Contains(got, "2FA not set up") || strings.Contains(got, "Reset 2FA") {
			t.Errorf("after the reset carol's row reads %q, want 2FA not set up and no reset", got)
		}
		// bob, dave (never signed in), grace (signed in after the switch) and now carol.
		tabWantContains(b, chromedp.ID("policy"), "4 members have not set up 2FA yet.")
		if users := adminSessionUsers(b); adminContains(users, "carol") {
			t.Errorf("carol's session is still listed after the reset: %q", users)
		}
		b.shot("admin-07-reset-done.png")
		b.axe("admin page, reset done")

		if u := carol.dashboardUser(); u != "" {
			t.Errorf("carol's session survived the reset: %q", u)
		}
		again := e.newClient()
		if r := again.signIn("carol", "carol-password"); r.Location() != "/_mfa/security?setup=1" {
			t.Errorf("carol's next sign-in (policy on, 2FA reset) goes to %q, want the setup", r.Location())
		}
	})

	// ---- 5. Sign out bob's session ----------------------------------------
	b.part("revoke", func() {
		b.navigate("/_mfa/admin") // carol's new sign-in added a session
		if u := bob.dashboardUser(); u != "bob" {
			t.Fatalf("bob is not signed in before the revoke: %q", u)
		}
		row := adminSessionRow(b, "bob")
		if !strings.Contains(row, "password") || !strings.Contains(row, "Sign out") {
			t.Errorf("bob's session row reads %q, want a password session with Sign out", row)
		}
		button := chromedp.Search(`//section[@id="sessions"]//tr[th//span[@class="cell-id"][normalize-space(.)="bob"]]//button`)
		if st := tabSubmit(b, "click Sign out on bob's session", button); st != 200 {
			t.Errorf("the revoke ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "revoked" {
			t.Errorf("after the revoke the URL has done=%q, want revoked", q)
		}
		tabWantContains(b, chromedp.ID("notice"), "Signed out bob's session (")
		adminWantInView(b, "#notice")
		if users := adminSessionUsers(b); adminContains(users, "bob") {
			t.Errorf("bob's session is still listed: %q", users)
		}
		if n := adminMemberSessions(b, "bob"); n != "0" {
			t.Errorf("bob's member row counts %q sessions after the revoke, want 0", n)
		}
		b.shot("admin-08-session-revoked.png")
		b.axe("admin page, session signed out")

		// bob's very next request has no session.
		if r := bob.get("/"); r.StatusCode == 200 && strings.Contains(r.Body, `<strong id="user">bob`) {
			t.Errorf("bob's revoked session still reaches the app")
		}
		if r := bob.api("status", nil); r.StatusCode != 401 {
			t.Errorf("bob's revoked session: gateway status %d, want 401", r.StatusCode)
		}
		if r := bob.get("/api/data"); r.StatusCode == 200 {
			t.Errorf("bob's revoked session still reads app data")
		}
		// The admin's own session carries on.
		tabWantText(b, chromedp.CSS(".topbar-user strong"), "admin")

		// Every step is in the audit log once its batch is written (about a
		// second), with the admin as the actor.
		b.sleep(1500 * time.Millisecond)
		b.navigate("/_mfa/admin")
		events := tabRun(b, "read the audit log", chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("#audit tbody tr"), tr => Array.from(tr.cells, c => c.innerText.trim()).slice(1, 4).join(" "))`))
		for _, want := range []string{"policy_changed admin", "timeout_changed admin", "admin_reset admin carol", "session_revoked admin bob"} {
			if !slices.ContainsFunc(events, func(ev string) bool { return strings.HasPrefix(strings.Join(strings.Fields(ev), " "), want) }) {
				t.Errorf("the audit log on the page has no %q: %q", want, events)
			}
		}
	})

	// ---- 6. Check this configuration --------------------------------------
	b.part("configuration check", func() {
		b.navigate("/_mfa/admin")
		tabType(b, chromedp.ID("doctor-user"), "erin")
		tabType(b, chromedp.ID("doctor-password"), "erin-password")
		if st := tabSubmit(b, "click Check the configuration", byButton("Check the configuration")); st != 200 {
			t.Errorf("the check ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin/doctor")
		tabWantContains(b, chromedp.ID("doctor-result"), "Verdict: safe.")
		tabWantContains(b, chromedp.CSS("#doctor .card-head .badge"), "Safe")
		if v := tabRun(b, "read the password field", chromedp.Value(chromedp.ID("doctor-password"))); v != "" {
			t.Errorf("after the check the password field holds %q, want it empty", v)
		}
		if v := tabRun(b, "read the user field", chromedp.Value(chromedp.ID("doctor-user"))); v != "erin" {
			t.Errorf("after the check the user field holds %q, want erin", v)
		}
		if html := tabRun(b, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(html, "erin-password") {
			t.Error("the page after the check holds the password")
		}
		b.shot("admin-09-configuration-check.png")
		b.axe("admin page, configuration check result")
	})

	// ---- 7. On a phone --------------------------------------------------
	b.part("phone", func() {
		b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		b.navigate("/_mfa/admin")
		tabWantVisible(b, chromedp.ID("require_2fa"))
		// Compare with clientWidth (390), not innerWidth: on a phone the layout
		// viewport grows to the content, so innerWidth hides the overflow.
		sw := tabRun(b, "measure the page", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		cw := tabRun(b, "measure the viewport", chromedp.Evaluate[int](`document.documentElement.clientWidth`))
		if sw > cw {
			// What sticks out beyond the viewport without being inside a
			// scrolling box that contains it.
			culprits := tabRun(b, "find what sticks out", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("*")).filter(e => {
				if (e.getBoundingClientRect().right <= document.documentElement.clientWidth + 1) return false;
				for (let a = e.parentElement; a; a = a.parentElement) {
					if (getComputedStyle(a).overflowX !== "visible") {
						const cb = e.offsetParent;
						return getComputedStyle(e).position === "absolute" && !(cb && a.contains(cb));
					}
				}
				return true;
			}).slice(0, 6).map(e => e.tagName.toLowerCase() + "." + e.className + " (" + JSON.stringify(e.textContent.trim().slice(0, 30)) + ", right edge " + Math.round(e.getBoundingClientRect().right) + "px)")`))
			t.Errorf("BUG: at 390px wide the admin page is %dpx wide and scrolls sideways (clientWidth %d); sticking out: %q", sw, cw, culprits)
		}
		b.shot("admin-10-phone-390.png")
		b.axe("admin page, phone 390x844")
		b.do("desktop viewport", clearViewport())
	})

	t.Logf("admin journey: %v", time.Since(began).Round(time.Millisecond))
	b.checkHosts()
}

// adminOpen goes to path and returns the HTTP status of the page.
func adminOpen(b *tab, path string) int64 {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("go to %s: %v", path, err)
	}
	if res == nil {
		return 0
	}
	return res.Status
}

// adminSetMinutes empties the timeout field and types v.
func adminSetMinutes(b *tab, v string) {
	b.t.Helper()
	b.do("clear the timeout", chromedp.Clear(chromedp.ID("minutes")))
	tabType(b, chromedp.ID("minutes"), v)
}

// adminCookiesToClient copies the browser's cookies for the gateway into c's jar.
func adminCookiesToClient(b *tab, c *client) {
	b.t.Helper()
	res := tabRun(b, "read the browser's cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	})
	u, _ := url.Parse(b.base + "/")
	var cs []*http.Cookie
	for _, ck := range res.Cookies {
		cs = append(cs, &http.Cookie{Name: ck.Name, Value: ck.Value, Path: ck.Path})
	}
	if len(cs) == 0 {
		b.t.Fatal("the browser has no cookies for the gateway")
	}
	c.jar.SetCookies(u, cs)
}

// adminCookiesToBrowser puts c's cookies for the gateway into the browser.
func adminCookiesToBrowser(b *tab, c *client) {
	b.t.Helper()
	u, _ := url.Parse(b.base + "/")
	var ps []*network.CookieParam
	for _, ck := range c.jar.Cookies(u) {
		ps = append(ps, &network.CookieParam{Name: ck.Name, Value: ck.Value, URL: b.base + "/", Path: "/",
			HTTPOnly: true, SameSite: network.CookieSameSiteLax})
	}
	b.do("set the browser's cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookies, network.SetCookiesParams{Cookies: ps})
		return err
	}))
}

// adminMemberRow is the text of user's row in the members table, "" if none.
func adminMemberRow(b *tab, user string) string {
	b.t.Helper()
	return adminRowText(b, "#members", user)
}

// adminSessionRow is the text of user's (first) row in the sessions table.
func adminSessionRow(b *tab, user string) string {
	b.t.Helper()
	return adminRowText(b, "#sessions", user)
}

func adminRowText(b *tab, section, user string) string {
	b.t.Helper()
	js := fmt.Sprintf(`(() => {
		const r = Array.from(document.querySelectorAll(%q)).find(tr => {
			const id = tr.querySelector("th .cell-id");
			return id && id.firstChild && id.firstChild.textContent.trim() === %q;
		});
		return r ? r.innerText : "";
	})()`, section+" tbody tr", user)
	return tabRun(b, "read "+user+"'s row in "+section, chromedp.Evaluate[string](js))
}

// adminSessionUsers lists the users of the sessions table's rows.
func adminSessionUsers(b *tab) []string {
	b.t.Helper()
	return tabRun(b, "read the sessions table", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#sessions tbody tr th .cell-id"), e => e.innerText.trim())`))
}

// adminMemberSessions is the Sessions column of user's member row.
func adminMemberSessions(b *tab, user string) string {
	b.t.Helper()
	js := fmt.Sprintf(`(() => {
		const r = Array.from(document.querySelectorAll("#members tbody tr")).find(tr => {
			const id = tr.querySelector("th .cell-id");
			return id && id.firstChild && id.firstChild.textContent.trim() === %q;
		});
		const n = r && r.querySelector("td.num");
		return n ? n.innerText.trim() : "";
	})()`, user)
	return tabRun(b, "read "+user+"'s session count", chromedp.Evaluate[string](js))
}

func adminContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// adminWantInView fails unless the element's box lies inside the viewport
// (as the person sees it now, without scrolling).
func adminWantInView(b *tab, css string) {
	b.t.Helper()
	box := tabRun(b, "measure "+css, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		if (!e) return [];
		const r = e.getBoundingClientRect();
		return [r.left, r.top, r.right, r.bottom, document.documentElement.clientWidth, window.innerHeight];
	})()`, css)))
	if len(box) != 6 {
		b.t.Fatalf("%s is not on the page (at %s)", css, b.location())
	}
	l, t, r, bt, w, h := box[0], box[1], box[2], box[3], box[4], box[5]
	if l < 0 || t < 0 || r > w+0.5 || bt > h+0.5 || r-l < 1 || bt-t < 1 {
		b.t.Errorf("%s is not within the %vx%v viewport: box (%v,%v)-(%v,%v) (at %s)", css, w, h, l, t, r, bt, b.location())
	}
}
