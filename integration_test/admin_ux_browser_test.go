package integration_test

// The admin page's rough edges, walked in headless Chromium as an admin
// would at a desktop (1280x800) and a phone (390x844): the 2FA summary with
// an admin who never signed in, a sign-in waiting for its second factor,
// when widget Enforce opens, the named notice in view after a reset and a
// sign-out, the tables on a phone with every button on screen, and the 403
// for an admin without 2FA linking to the security page. Screenshots go to
// integration_test/artifacts/admin-ux-NN-….png.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

func TestAdminBrowserNoticesPhoneAndGate(t *testing.T) {
	e, _ := wtStart(t, wtBlock) // admins admin and dave, widget identity on
	_, _, admin := e.enrolled("admin")
	e.enrolled("carol") // to be reset
	e.enrolled("frank")
	e.pending("frank") // typed the password, not the code: waiting
	// dave is an admin by the Caddyfile and has never signed in.

	b := newTab(t, e.Base)
	wbCookiesToBrowser(b, admin)
	desktop := chromedp.EmulateViewport(1280, 800)
	phone := chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	b.do("desktop viewport", desktop)

	b.part("summary with a member who never signed in", func() {
		if st := adminOpen(b, "/_mfa/admin"); st != 200 {
			t.Fatalf("the admin page answers %d", st)
		}
		policy := tabText(b, chromedp.ID("policy"))
		if strings.Contains(policy, "Every member has set up 2FA") {
			t.Errorf("the policy card says every member has 2FA while dave has none: %q", policy)
		}
		tabWantContains(b, chromedp.ID("policy"), "1 member has not set up 2FA yet.")
		dave := adminMemberRow(b, "dave")
		if !strings.Contains(dave, "2FA not set up") || !strings.Contains(dave, "Admin") || !strings.Contains(dave, "—") {
			t.Errorf("dave's member row reads %q, want an admin without 2FA and no sign-in", dave)
		}
		b.shot("admin-ux-01-summary-desktop.png")
	})

	b.part("pending session", func() {
		rows := adminRowsOf(b, "#sessions", "frank")
		var waiting, done int
		for _, r := range rows {
			switch {
			case strings.Contains(r, "Waiting for second factor") && !strings.Contains(r, "password"):
				waiting++
			case strings.Contains(r, "2FA"):
				done++
			}
		}
		if waiting != 1 || done != 1 {
			t.Errorf("frank's session rows read %q, want one waiting for the second factor and one with 2FA", rows)
		}
		b.do("scroll to the sessions", chromedp.ScrollIntoView(chromedp.ID("sessions")))
		b.shot("admin-ux-02-pending-desktop.png")
	})

	b.part("when Enforce opens", func() {
		secret := wtSecret(t, admin)
		wtVerified(t, e, secret, "u1")
		expired := mintJWT(t, secret, map[string]any{"sub": "u2", "exp": time.Now().Add(-time.Hour).Unix()})
		for range 2 {
			if r := wtSend(e, wtCase{user: "u2", auth: "Bearer " + expired}); r.StatusCode != 200 || wtVerdict(t, r) != "unverified" {
				t.Fatalf("an expired token in Monitor: %d %.200s", r.StatusCode, r.Body)
			}
		}
		failedAt := time.Now()
		raw := admin.api("admin/identity", nil).JSON(t)["enforce_opens_at"]
		s, _ := raw.(string)
		opens, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatalf("GET admin/identity has enforce_opens_at %v: %v", raw, err)
		}
		// The window is whole hours: the failure's hour leaves it 24 hours on.
		if want := failedAt.UTC().Truncate(time.Hour).Add(24 * time.Hour); !opens.Equal(want) {
			t.Errorf("enforce_opens_at is %v, want %v (the failure's hour + 24 h)", opens, want)
		}
		if st := adminOpen(b, "/_mfa/admin"); st != 200 {
			t.Fatalf("the admin page answers %d", st)
		}
		gate := tabText(b, chromedp.ID("enforce-gate"))
		for _, want := range []string{"Enforce can be switched on from", "once a verified request arrives", "2 expired token"} {
			if !strings.Contains(gate, want) {
				t.Errorf("the gate note reads %q, want it to say %q", gate, want)
			}
		}
		if at := tabAttr(b, chromedp.CSS("#enforce-gate time"), "datetime"); at != opens.Format(time.RFC3339) {
			t.Errorf("the page says Enforce opens at %q, the API %v", at, opens)
		}
		if v := b.eval(`document.getElementById("mode-enforce").disabled`); v != true {
			t.Errorf("Enforce can be chosen while a failure holds the gate")
		}
		wbShotSection(b, "admin-ux-03-enforce-opens-desktop.png")
	})

	b.part("reset with the named notice in view", func() {
		b.navigate("/_mfa/admin")
		summary := chromedp.Search(`//section[@id="members"]//tr[th//span[@class="cell-id"][starts-with(normalize-space(.), "carol")]]//summary`)
		tabClick(b, "click Reset 2FA for carol", summary)
		if st := tabSubmit(b, "confirm the reset", byButton("Reset 2FA for carol")); st != 200 {
			t.Errorf("the reset ends on a %d page", st)
		}
		b.wantPath("/_mfa/admin")
		if u := b.url(); u.Fragment != "notice" || u.Query().Get("user") != "carol" {
			t.Errorf("the reset redirected to %s, want done=reset naming carol, at #notice", u)
		}
		tabWantText(b, chromedp.ID("notice"), "2FA reset for carol — no email is configured, so tell them yourself.")
		if role := tabAttr(b, chromedp.ID("notice"), "role"); role != "status" {
			t.Errorf("the notice has role %q, want status", role)
		}
		adminWantInView(b, "#notice")
		if id := b.focused("notice"); id != "notice" {
			t.Errorf("focus is on %v after the redirect, want the notice", id)
		}
		adminShotView(b, "admin-ux-04-reset-notice-desktop.png")

		// The same link with the member's name swapped names nobody.
		forged := strings.Replace(b.location(), "user=carol", "user=frank", 1)
		b.do("open the edited link", chromedp.Navigate(forged))
		if n := tabText(b, chromedp.ID("notice")); strings.Contains(n, "frank") || n != "Two-factor authentication was reset." {
			t.Errorf("an edited notice link reads %q, want the notice without a name", n)
		}
	})

	b.part("phone", func() {
		b.do("phone viewport", phone)
		b.navigate("/_mfa/admin")
		if sw, cw := tabRun(b, "measure the page", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)),
			tabRun(b, "measure the viewport", chromedp.Evaluate[int](`document.documentElement.clientWidth`)); sw > cw {
			t.Errorf("at 390px the admin page is %dpx wide and scrolls sideways", sw)
		}
		// Every Reset and Sign out button, scrolled to, lies wholly on screen.
		boxes := tabRun(b, "measure the buttons", chromedp.Evaluate[[]string](`Array.from(
			document.querySelectorAll("#members summary.btn, #sessions button[type=submit]"), e => {
				e.scrollIntoView({block: "center"});
				const r = e.getBoundingClientRect(), w = document.documentElement.clientWidth, h = window.innerHeight;
				const ok = r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= w + 0.5 && r.bottom <= h + 0.5;
				return (ok ? "ok " : "OFF ") + e.innerText.trim().replace(/\s+/g, " ") + " " + JSON.stringify([r.left, r.top, r.right, r.bottom, w, h].map(Math.round));
			})`))
		var resets, signOuts int
		for _, box := range boxes {
			if !strings.HasPrefix(box, "ok ") {
				t.Errorf("at 390x844 a button is not on screen: %s", box)
			}
			switch {
			case strings.Contains(box, "Reset 2FA"):
				resets++
			case strings.Contains(box, "Sign out"):
				signOuts++
			}
		}
		if resets == 0 || signOuts == 0 {
			t.Errorf("measured %d Reset and %d Sign out buttons, want some of each: %q", resets, signOuts, boxes)
		}
		// Stacked rows label their values.
		if label := b.eval(`getComputedStyle(document.querySelector("#sessions td[data-label]"), "::before").content`); label != `"Device"` {
			t.Errorf("a stacked session row's first value is labelled %v, want \"Device\"", label)
		}
		b.shot("admin-ux-05-tables-phone.png")
		b.do("scroll to the members", chromedp.ScrollIntoView(chromedp.ID("members")))
		adminShotView(b, "admin-ux-05b-members-phone-view.png")

		// Sign out frank's waiting sign-in, on the phone.
		button := chromedp.Search(`//section[@id="sessions"]//tr[th//span[@class="cell-id"][normalize-space(.)="frank"]][.//*[contains(., "Waiting for second factor")]]//button`)
		if st := tabSubmit(b, "click Sign out on frank's waiting sign-in", button); st != 200 {
			t.Errorf("the sign-out ends on a %d page", st)
		}
		tabWantContains(b, chromedp.ID("notice"), "Signed out frank's session (Go HTTP client).")
		adminWantInView(b, "#notice")
		if rows := adminRowsOf(b, "#sessions", "frank"); len(rows) != 1 || strings.Contains(rows[0], "Waiting") {
			t.Errorf("after signing out the waiting sign-in frank's rows read %q", rows)
		}
		adminShotView(b, "admin-ux-06-signout-notice-phone.png")
		b.do("desktop viewport", clearViewport(), desktop)
	})

	b.part("admin without 2FA", func() {
		b.do("forget the admin's cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, network.ClearBrowserCookies, cdp.Empty{})
			return err
		}))
		b.signIn("dave", "dave-password", "")
		b.wantPath("/")
		if st := adminOpen(b, "/_mfa/admin"); st != 403 {
			t.Errorf("the admin page for dave without 2FA answers %d, want 403", st)
		}
		link := byLink("Set up two-factor authentication")
		if href := tabAttr(b, link, "href"); href != "/_mfa/security" {
			t.Errorf("the 403 page's link goes to %q, want /_mfa/security", href)
		}
		b.shot("admin-ux-07-aal1-desktop.png")
		b.do("phone viewport", phone)
		b.shot("admin-ux-08-aal1-phone.png")
		b.do("desktop viewport", clearViewport(), desktop)
		tabSubmit(b, "click Set up two-factor authentication", link)
		b.wantPath("/_mfa/security")
		tabWantText(b, chromedp.CSS(".topbar-user strong"), "dave")
	})
	b.checkHosts()
}

// adminRowsOf is the text of every row of section's table that belongs to user.
func adminRowsOf(b *tab, section, user string) []string {
	b.t.Helper()
	return tabRun(b, "read "+user+"'s rows in "+section, chromedp.Evaluate[[]string](fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).filter(tr => {
		const id = tr.querySelector("th .cell-id");
		return id && id.firstChild && id.firstChild.textContent.trim() === %q;
	}).map(tr => tr.innerText)`, section+" tbody tr", user)))
}

// adminShotView saves what the viewport shows now (not the whole page):
// the proof that something is in view.
func adminShotView(b *tab, name string) {
	b.t.Helper()
	png := tabRun(b, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(b.shots, name), png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
}
