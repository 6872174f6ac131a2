package integration_test

// The identity verification section of the admin page in headless
// Chromium (issue 5): an admin opens /_mfa/admin#identity, generates the
// identity secret, copies it from the page, and the test mints tokens with
// the secret read off the page and sends widget requests over HTTP, so
// that the health banner turns Healthy with the last verified time; then a
// failure arrives while the page is open, the admin tries Enforce and the
// gate's message is shown; modes are switched; the section on a phone.
// Screenshots go to integration_test/artifacts/identity-NN-….png.
//
// It reuses browser_test.go's tab (allocator, options, helpers).

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

func TestWidgetBrowserIdentitySection(t *testing.T) {
	e, _ := wtStart(t, wtBlock)
	_, _, admin := e.enrolled("admin") // TOTP on through the API: an AAL2 admin session
	b := newTab(t, e.Base)
	wbCookiesToBrowser(b, admin)
	began := time.Now()
	var secret string

	// ---- 1. The section before any secret ------------------------------
	b.part("before a secret", func() {
		if st := wbOpen(b, "/_mfa/admin#identity"); st != 200 {
			t.Fatalf("the admin page answers %d", st)
		}
		b.wantPath("/_mfa/admin")
		tabWantText(b, chromedp.ID("identity-title"), "Identity verification")
		if n := tabCount(b, chromedp.CSS(`nav a[href="#identity"], a[href="#identity"]`)); n == 0 {
			t.Errorf("no link to #identity on the page")
		}
		tabWantText(b, chromedp.CSS("#identity .card-head .badge"), "Off")
		tabWantContains(b, chromedp.CSS("#identity .health"), "No traffic")
		if key := tabText(b, chromedp.ID("widget-key")); !regexp.MustCompile(`^ab_live_[A-Za-z0-9_-]{16,}$`).MatchString(key) {
			t.Errorf("the widget key shows %q, want ab_live_…", key)
		}
		tabWantGone(b, chromedp.ID("identity-secret"))
		tabWantContains(b, chromedp.ID("identity"), "Not generated yet.")
		if v := b.eval(`document.getElementById("mode-off").checked`); v != true {
			t.Errorf("the Off option is not selected before a secret")
		}
		if v := b.eval(`document.getElementById("mode-enforce").disabled`); v != true {
			t.Errorf("Enforce can be chosen before a secret exists")
		}
		tabWantContains(b, chromedp.ID("mode-enforce-reason"), "generate one first")
		langs := tabRun(b, "read the minting examples", chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("#identity details.example summary"), s => s.innerText.trim())`))
		if !slices.Equal(langs, []string{"Node.js", "Python", "Go", "PHP"}) {
			t.Errorf("minting examples for %q, want Node.js, Python, Go, PHP", langs)
		}
		tabWantContains(b, chromedp.ID("example-0"), "HS256")
		b.shot("identity-01-off.png")
		b.axe("identity section, off")
	})

	// ---- 2. Generate, read and copy the secret ---------------------------
	b.part("generate", func() {
		if st := tabSubmit(b, "click Generate identity secret", byButton("Generate identity secret")); st != 200 {
			t.Fatalf("generating the secret ends on a %d page", st)
		}
		tabWantContains(b, chromedp.CSS(".banner-info"), "New identity secret generated. Verification is now in Monitor mode.")
		tabWantContains(b, chromedp.CSS(".banner-warning"), "Copy it now")
		tabWantText(b, chromedp.ID("new-secret-label"), "Your new identity secret")
		secret = tabText(b, chromedp.ID("identity-secret"))
		if !regexp.MustCompile(`^ha_secret_[A-Za-z0-9_-]{43,}$`).MatchString(secret) {
			t.Fatalf("the page shows the secret as %q, want ha_secret_ + >= 256 bits base64url", secret)
		}
		tabWantText(b, chromedp.CSS("#identity .card-head .badge"), "Monitor")
		if v := b.eval(`document.getElementById("mode-monitor").checked`); v != true {
			t.Errorf("the Monitor option is not selected after generating the secret")
		}
		if n := tabCount(b, byButton("Rotate secret")); n != 1 {
			t.Errorf("no Rotate secret button after the first secret")
		}
		tabWantContains(b, chromedp.ID("identity"), "Created")
		// The overlap is identity_overlap 2s here: the page must not promise
		// the previous secret 24 hours (issue 5: "the page says when the old
		// one stops working").
		if help := tabText(b, chromedp.ID("secret-help")); strings.Contains(help, "24 h") {
			t.Errorf("BUG: the Rotate secret hint says %q, but identity_overlap is 2s: the old secret stops after 2 seconds, not 24 h", help)
		}
		// Enforce is still gated: no verified traffic yet.
		if v := b.eval(`document.getElementById("mode-enforce").disabled`); v != true {
			t.Errorf("Enforce can be chosen with no verified traffic")
		}
		tabWantContains(b, chromedp.ID("mode-enforce-reason"), "no verified request")

		// Copy: the button (shown by mfa.js on a secure context: loopback)
		// puts the secret on the clipboard.
		wbGrantClipboard(b)
		copyBtn := chromedp.CSS(`button[data-copy-target="identity-secret"]`)
		tabWantVisible(b, copyBtn)
		tabClick(b, "click Copy", copyBtn)
		b.sleep(150 * time.Millisecond)
		if got := tabText(b, copyBtn); got != "Copied" {
			t.Errorf("after Copy the button reads %q, want Copied", got)
		}
		ctx, cancel := b.stepCtx()
		clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		cancel()
		switch {
		case err != nil:
			t.Logf("clipboard not readable here (%v); checked the Copied state only", err)
		case clip != secret:
			t.Errorf("the clipboard holds %q, want the secret shown", clip)
		}
		b.shot("identity-02-secret-shown.png")
		b.axe("identity section, secret shown")
	})

	// ---- 3. Verified traffic; the page reloaded shows Healthy ------------
	b.part("healthy", func() {
		// The customer's backend mints with the secret read off the page.
		for _, u := range []string{"u1", "u2", "u1"} {
			wtVerified(t, e, secret, u)
		}
		sent := time.Now()
		if st := wbOpen(b, "/_mfa/admin#identity"); st != 200 {
			t.Fatalf("the admin page answers %d", st)
		}
		tabWantGone(b, chromedp.ID("identity-secret")) // shown once
		if strings.Contains(tabText(b, chromedp.CSS("main")), secret) {
			t.Errorf("the page shows the secret again after a reload")
		}
		tabWantText(b, chromedp.CSS("#identity .health-healthy .health-title"), "Healthy")
		tabWantContains(b, chromedp.CSS("#identity .health-healthy"), "Last verified request:")
		at := tabAttr(b, chromedp.CSS("#identity .health-healthy time"), "datetime")
		when, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Errorf("the last verified time %q is not RFC 3339: %v", at, err)
		} else if d := sent.Sub(when); d < -2*time.Second || d > time.Minute {
			t.Errorf("last verified request at %v, want about %v", when, sent)
		}
		if row := wbRow(b, "Verified requests, last 24 h"); row != "3" {
			t.Errorf("the verified count shows %q, want 3", row)
		}
		if v := b.eval(`document.getElementById("mode-enforce").disabled`); v != false {
			t.Errorf("Enforce is still disabled after verified traffic with no failure")
		}
		tabWantGone(b, chromedp.ID("mode-enforce-reason"))
		b.shot("identity-03-healthy.png")
		b.axe("identity section, healthy")
	})

	// ---- 4. A failure arrives while the page is open; Enforce is refused ---
	b.part("gate", func() {
		expired := mintJWT(t, secret, map[string]any{"sub": "u3", "exp": time.Now().Add(-time.Hour).Unix()})
		if r := wtSend(e, wtCase{user: "u3", auth: "Bearer " + expired}); r.StatusCode != 200 || wtVerdict(t, r) != "unverified" {
			t.Fatalf("an expired token in Monitor: %d %.200s", r.StatusCode, r.Body)
		}
		tabClick(b, "choose Enforce", chromedp.CSS(`label[for="mode-enforce"]`))
		if v := b.eval(`document.getElementById("mode-enforce").checked`); v != true {
			t.Fatalf("clicking the Enforce label did not select it")
		}
		if st := tabSubmit(b, "click Save mode", byButton("Save mode")); st != 409 {
			t.Errorf("Enforce with a failure on record ends on a %d page, want 409", st)
		}
		tabWantVisible(b, chromedp.ID("gate-error"))
		msg := tabText(b, chromedp.ID("gate-error"))
		for _, want := range []string{"Enforce is not allowed yet", "1 failure", "expired token"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the gate message %q does not say %q", msg, want)
			}
		}
		tabWantText(b, chromedp.CSS("#identity .card-head .badge"), "Monitor")
		tabWantText(b, chromedp.CSS("#identity .health-warning .health-title"), "Warning")
		tabWantContains(b, chromedp.CSS("#identity .health-warning"), "1 failure in the last 24 h. Most common: expired token.")
		if row := wbRow(b, "Failed: expired token"); row != "1" {
			t.Errorf("the expired-token count shows %q, want 1", row)
		}
		if v := b.eval(`document.getElementById("mode-enforce").disabled`); v != true {
			t.Errorf("Enforce stays selectable after the gate refused it")
		}
		if st := wtGetStatus(t, admin); st.Mode != "monitor" {
			t.Errorf("the mode is %q after the refused switch, want monitor", st.Mode)
		}
		b.shot("identity-04-gate-refused.png")
		b.axe("identity section, enforce refused")
	})

	// ---- 5. Off and back to Monitor from the page ------------------------
	b.part("modes", func() {
		b.navigate("/_mfa/admin#identity")
		tabClick(b, "choose Off", chromedp.CSS(`label[for="mode-off"]`))
		tabSubmit(b, "click Save mode (off)", byButton("Save mode"))
		b.wantPath("/_mfa/admin")
		if q := b.query().Get("done"); q != "identity" {
			t.Errorf("after saving the mode the URL has done=%q, want identity", q)
		}
		tabWantContains(b, chromedp.ID("notice"), "Identity verification: now Off.")
		tabWantText(b, chromedp.CSS("#identity .card-head .badge"), "Off")
		if st := wtGetStatus(t, admin); st.Mode != "off" {
			t.Errorf("the API says mode %q after the page switched to Off", st.Mode)
		}
		b.shot("identity-05-off.png")
		b.axe("identity section, switched off")
		tabClick(b, "choose Monitor", chromedp.CSS(`label[for="mode-monitor"]`))
		tabSubmit(b, "click Save mode (monitor)", byButton("Save mode"))
		tabWantText(b, chromedp.CSS("#identity .card-head .badge"), "Monitor")
	})

	// ---- 6. On a phone ---------------------------------------------------
	b.part("phone", func() {
		b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		b.navigate("/_mfa/admin#identity")
		tabWantVisible(b, chromedp.ID("identity-title"))
		tabWantVisible(b, chromedp.CSS("#identity .health"))
		if w := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`); w != true {
			sw := b.eval(`document.documentElement.scrollWidth`)
			t.Errorf("the admin page scrolls sideways at 390px wide (scrollWidth %v)", sw)
		}
		// The widget key and the examples stay inside the card.
		if w := b.eval(`(() => { const c = document.getElementById("identity").getBoundingClientRect();
			return Array.from(document.querySelectorAll("#identity .secret, #identity pre")).every(e => e.getBoundingClientRect().right <= c.right + 1); })()`); w != true {
			t.Errorf("a key or code example sticks out of the identity card at 390px wide")
		}
		b.shot("identity-06-phone-390x844.png")
		b.axe("identity section, phone 390x844")
		wbShotSection(b, "identity-07-phone-section-390x844.png")
		b.do("desktop viewport", clearViewport())
	})

	t.Logf("identity section journey: %v", time.Since(began).Round(time.Millisecond))
	b.checkHosts()
}

// wbShotSection saves a PNG of the identity section alone.
func wbShotSection(b *tab, name string) {
	b.t.Helper()
	png := tabRun(b, "screenshot "+name, chromedp.Screenshot(chromedp.ID("identity")))
	if err := os.WriteFile(filepath.Join(b.shots, name), png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
}

// wbOpen navigates and returns the page's HTTP status.
func wbOpen(b *tab, path string) int64 {
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

// wbCookiesToBrowser gives the browser the API client's session cookies.
func wbCookiesToBrowser(b *tab, c *client) {
	b.t.Helper()
	u, _ := url.Parse(b.base + "/")
	var ps []*network.CookieParam
	for _, ck := range c.jar.Cookies(u) {
		ps = append(ps, &network.CookieParam{Name: ck.Name, Value: ck.Value, URL: b.base + "/", Path: "/",
			HTTPOnly: true, SameSite: network.CookieSameSiteLax})
	}
	if len(ps) == 0 {
		b.t.Fatal("the client has no cookies to give the browser")
	}
	b.do("set the browser's cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookies, network.SetCookiesParams{Cookies: ps})
		return err
	}))
}

// wbGrantClipboard lets the page write and read the clipboard; a browser
// that refuses is logged, not failed (the Copied state is still checked).
func wbGrantClipboard(b *tab) {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := cdp.Call(ctx, t, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
				Setting:    browser.PermissionSettingGranted, Origin: b.base,
			}); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		b.t.Logf("clipboard permission not granted: %v", err)
	}
}

// wbRow is the value of the identity section's status row labelled dt.
func wbRow(b *tab, dt string) string {
	b.t.Helper()
	return tabRun(b, "read the row "+dt, chromedp.Evaluate[string](`(() => {
		const r = Array.from(document.querySelectorAll("#identity .status-row")).find(r => r.querySelector("dt").innerText.trim() === `+wbQuote(dt)+`);
		return r ? r.querySelector("dd").innerText.trim() : "";
	})()`))
}

func wbQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
