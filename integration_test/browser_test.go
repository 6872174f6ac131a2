package integration_test

// A person's way through the product in headless Chromium: sign in, turn on
// 2FA from the security page, sign out, pass the challenge with a code, sign
// out, pass it with a recovery code and set up a new authenticator. Every
// step types and clicks as a person would and checks what the page shows.
// Screenshots go to integration_test/artifacts/ (git-ignored).

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/mfagate/mfagate/demoapp"
)

const browserChromium = "/usr/bin/chromium"

// TestBrowserEnrolChallengeRecovery is the whole journey in one browser
// profile; each part needs the state the one before left.
func TestBrowserEnrolChallengeRecovery(t *testing.T) {
	e := start(t, demoapp.DefaultOptions(), defaultGateway)
	b := newTab(t, e.Base)
	began := time.Now()

	// ---- 1. Enrolment -------------------------------------------------
	b.part("enrolment", func() {
		// Without a session the security page is an error page.
		if st := adminOpen(b, "/_mfa/security"); st != 401 {
			t.Errorf("the security page without a session answers %d, want 401", st)
		}
		tabWantContains(b, chromedp.CSS(".status-code"), "401")
		b.shot("00-error-401.png")
		b.axe("error page, 401")

		b.signIn("alice", "alice-password", "01-login.png")
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "alice")

		// The dashboard links to the security page.
		tabSubmit(b, "click Account security", byLink("Account security"))
		b.wantPath("/_mfa/security")
		tabWantText(b, chromedp.CSS(".badge"), "Off")
		tabWantText(b, chromedp.CSS(".topbar-user strong"), "alice")
		b.shot("02-security.png")
		b.axe("security page, 2FA off")

		tabSubmit(b, "click Enable 2FA", byButton("Enable 2FA"))
		tabWantVisible(b, chromedp.ID("setup-title"))
		tabWantText(b, chromedp.ID("setup-title"), "Set up two-factor authentication")
		if ok := b.eval(`(() => { const i = document.querySelector("img.qr"); return !!i && i.complete && i.naturalWidth > 0; })()`); ok != true {
			t.Errorf("the QR code image did not load (complete && naturalWidth > 0 is %v)", ok)
		}
		// Read the key as a person copies it by hand: grouped, with spaces.
		shown := tabText(b, chromedp.ID("totp-secret"))
		secret := strings.Join(strings.Fields(shown), "")
		if !regexp.MustCompile(`^[A-Z2-7]{16,}$`).MatchString(secret) {
			t.Fatalf("the key shown to type by hand is %q, want base32 letters in groups", shown)
		}
		checkKeyGroups(t, shown)
		href := tabAttr(b, chromedp.CSS(`.manual a[href^="otpauth:"]`), "href")
		if u, err := url.Parse(href); err != nil || u.Query().Get("secret") != secret || u.Query().Get("issuer") != "Demo Dashboard" {
			t.Errorf("otpauth link %q does not carry the shown key %q and the issuer", href, secret)
		}
		b.shot("03-setup-dialog.png")
		b.axe("security page, setup dialog open")

		// The authenticator app shows a code; the person types it.
		tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, secret, 0))
		tabSubmit(b, "click Verify and continue", byButton("Verify and continue"))
		b.wantPath("/_mfa/security")
		tabWantVisible(b, chromedp.ID("codes-title"))
		codes := b.recoveryCodes()
		if len(codes) != 10 {
			t.Fatalf("the codes dialog shows %d recovery codes, want 10: %q", len(codes), codes)
		}
		re := regexp.MustCompile(`^[a-km-np-z2-9]{6}-[a-km-np-z2-9]{6}$`)
		for _, c := range codes {
			if !re.MatchString(c) {
				t.Errorf("recovery code %q is not like abcdef-234567", c)
			}
		}
		if u := slices.Compact(slices.Sorted(slices.Values(codes))); len(u) != len(codes) {
			t.Errorf("recovery codes repeat: %q", codes)
		}
		b.shot("04-recovery-codes.png")
		b.axe("security page, recovery-codes dialog")

		// Done without ticking the box: the browser's `required` stops the form.
		tabClick(b, "click Done without ticking the box", byButton("Done"))
		b.sleep(700 * time.Millisecond)
		b.wantPath("/_mfa/security")
		tabWantVisible(b, chromedp.ID("codes-title"))
		if again := b.recoveryCodes(); !slices.Equal(again, codes) {
			t.Errorf("after the blocked Done the dialog shows %q, want the same codes %q", again, codes)
		}
		if v := b.eval(`document.getElementById("saved").validity.valueMissing`); v != true {
			t.Errorf("the unticked box is not reported as missing (validity.valueMissing = %v)", v)
		}
		b.shot("04b-recovery-codes-not-ticked.png")
		b.axe("security page, recovery-codes dialog, box not ticked")

		// Tick it by its label, as a person would, then Done.
		tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
		if v := b.eval(`document.getElementById("saved").checked`); v != true {
			t.Fatalf("clicking the label did not tick the box (checked = %v)", v)
		}
		tabSubmit(b, "click Done", byButton("Done"))
		b.wantPath("/_mfa/security")
		if q := b.query().Get("done"); q != "enabled" {
			t.Errorf("after Done the URL query done=%q, want enabled", q)
		}
		tabWantGone(b, chromedp.ID("codes-title"))
		tabWantText(b, chromedp.CSS(".badge"), "On")
		tabWantContains(b, chromedp.CSS(".status"), "Authenticator app")
		tabWantContains(b, chromedp.CSS(".status"), "10 remaining")
		tabWantContains(b, chromedp.CSS(".banner-info"), "Two-factor authentication is on.")
		b.shot("02b-security-2fa-on.png")
		b.axe("security page, 2FA on")

		b.secret, b.codes = secret, codes
	})

	// ---- 2. Challenge, with a wrong code first (4. the error) --------------
	b.part("challenge", func() {
		tabSubmit(b, "click Back to the app", byLink("Back to the app"))
		b.wantPath("/")
		b.signOut()
		b.signIn("alice", "alice-password", "")
		b.wantPath("/_mfa/challenge")
		tabWantText(b, chromedp.ID("title"), "Two-factor authentication")
		tabWantContains(b, chromedp.ID("code-help"), "Demo Dashboard")
		b.shot("05-challenge.png")
		b.axe("challenge")

		// 4. A wrong code: the page says so, in an alert. The sixth digit
		// sends the code: no click needed.
		wrong := browserWrongCode(t, b.secret)
		st := tabTypeSubmit(b, "type a wrong code", chromedp.ID("code"), wrong)
		if st != 401 {
			t.Errorf("a wrong code answers %d, want 401", st)
		}
		b.wantPath("/_mfa/challenge")
		tabWantVisible(b, chromedp.CSS(`[role="alert"]`))
		tabWantContains(b, chromedp.CSS(`[role="alert"]`), "That code is not valid")
		if v := tabAttr(b, chromedp.ID("code"), "aria-invalid"); v != "true" {
			t.Errorf("after a wrong code the field has aria-invalid=%q, want true", v)
		}
		b.shot("05b-challenge-wrong-code.png")
		b.axe("challenge, wrong code")

		// The next step's code: the confirmation consumed the current one.
		b.usedStep = time.Now().Add(30*time.Second).Unix() / 30
		// Pasted as an app shows it, with a space in the middle.
		c := browserAuthCode(t, b.secret, 1)
		tabTypeSubmit(b, "type the code", chromedp.ID("code"), c[:3]+" "+c[3:])
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "alice")
		b.shot("06-dashboard.png")
		b.axe("the app's dashboard")

		// The app's support widget: this gateway checks no widget path.
		tabSubmit(b, "click Open the support widget", byLink("Open the support widget"))
		b.wantPath(demoapp.WidgetPath)
		tabWantText(b, chromedp.ID("claimed"), "alice")
		tabWantText(b, chromedp.ID("verdict"), "none")
		b.shot("06b-widget.png")
		b.axe("the app's support widget")
		tabSubmit(b, "click Back to the dashboard", byLink("Back to the dashboard"))
		b.wantPath("/")
	})

	// ---- 3. Recovery: signed in, reminded to set up a new authenticator ----
	b.part("recovery", func() {
		b.signOut()
		b.signIn("alice", "alice-password", "")
		b.wantPath("/_mfa/challenge")

		// The challenge on a phone.
		b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		tabWantVisible(b, chromedp.ID("code"))
		if w := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`); w != true {
			t.Errorf("the challenge page scrolls sideways at 390px wide")
		}
		b.shot("09-challenge-phone-390x844.png")
		b.axe("challenge, phone 390x844")
		b.do("desktop viewport", clearViewport())

		tabSubmit(b, "click Use a recovery code", byLink("Use a recovery code"))
		b.wantPath("/_mfa/challenge/recovery")
		tabWantText(b, chromedp.ID("title"), "Use a recovery code")
		tabWantVisible(b, chromedp.ID("recovery_code"))
		b.shot("07-recovery.png")
		b.axe("recovery")

		// A well-formed code that is not one of hers.
		tabType(b, chromedp.ID("recovery_code"), "zzzzzz-zzzzzz")
		if st := tabSubmit(b, "click Verify with a wrong recovery code", byButton("Verify")); st != 401 {
			t.Errorf("a wrong recovery code answers %d, want 401", st)
		}
		b.wantPath("/_mfa/challenge/recovery")
		tabWantContains(b, chromedp.CSS(`[role="alert"]`), "That recovery code is not valid")
		b.shot("07b-recovery-wrong-code.png")
		b.axe("recovery, wrong code")

		tabType(b, chromedp.ID("recovery_code"), b.codes[3])
		tabSubmit(b, "click Verify with a saved recovery code", byButton("Verify"))
		b.wantPath("/_mfa/security")
		// Signed in: the security page opens on setting up a new
		// authenticator, with a way to put it off.
		tabWantVisible(b, chromedp.ID("setup-title"))
		tabWantContains(b, chromedp.ID("no-authenticator"), "you signed in with a recovery code")
		tabWantGone(b, chromedp.CSS(".must-enrol"))
		if f := b.focused("setup-title"); f != "setup-title" {
			t.Errorf("focus is on %v, want the setup dialog's heading", f)
		}
		newShown := tabText(b, chromedp.ID("totp-secret"))
		newSecret := strings.Join(strings.Fields(newShown), "")
		checkKeyGroups(t, newShown)
		if newSecret == b.secret {
			t.Errorf("the new setup shows the old key again")
		}
		b.shot("08-setup-after-recovery.png")
		b.axe("security page, setup after a recovery code")

		// Escape closes the dialog, as its "Not now" does, and focus goes
		// back to the button that opens it.
		b.do("press Escape", chromedp.KeyEvent("\x1b"))
		b.do("wait for the page without the dialog", chromedp.WaitNotPresent(chromedp.ID("setup-title")))
		b.wantPath("/_mfa/security")
		if f := b.focused("enable-btn"); f != "enable-btn" {
			t.Errorf("after Escape, focus is on %v, want the set-up button", f)
		}
		tabWantVisible(b, chromedp.ID("no-authenticator"))
		b.shot("08b-reminder-after-recovery.png")
		b.axe("security page, reminder after a recovery code")

		// The app is open to her meanwhile.
		tabSubmit(b, "click Back to the app", byLink("Back to the app"))
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "alice")

		// She sets up the new phone later, from the security page.
		b.navigate("/_mfa/security")
		tabSubmit(b, "click Set up authenticator app", byButton("Set up authenticator app"))
		tabWantVisible(b, chromedp.ID("setup-title"))

		// Finish it: new key, new code, new recovery codes, back to the app.
		if again := strings.Join(strings.Fields(tabText(b, chromedp.ID("totp-secret"))), ""); again != newSecret {
			t.Errorf("the key changed from %q to %q on the way back; a person who scanned it is now out of date", newSecret, again)
			newSecret = again
		}
		tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, newSecret, 0))
		st := tabSubmit(b, "click Verify and continue (new key)", byButton("Verify and continue"))
		if n := tabCount(b, chromedp.ID("setup-code-error")); n > 0 {
			msg := tabText(b, chromedp.ID("setup-code-error"))
			b.shot("08b-forced-setup-code-refused.png")
			t.Errorf("BUG: the new authenticator's current code was refused (%d %q). The old key's replay "+
				"counter (TOTPLastStep = step %d, from the challenge) still applies to the new key.", st, msg, b.usedStep)
			// Carry on past the stale step so the rest of the journey is checked.
			for time.Now().Unix()/30 < b.usedStep {
				time.Sleep(time.Until(time.Unix((time.Now().Unix()/30+1)*30, 0)) + 100*time.Millisecond)
			}
			tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, newSecret, 1))
			tabSubmit(b, "click Verify and continue (new key, after the stale step)", byButton("Verify and continue"))
		}
		tabWantVisible(b, chromedp.ID("codes-title"))
		fresh := b.recoveryCodes()
		if len(fresh) != 10 || slices.ContainsFunc(fresh, func(c string) bool { return slices.Contains(b.codes, c) }) {
			t.Errorf("the new recovery codes %q are not 10 fresh codes", fresh)
		}
		tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
		tabSubmit(b, "click Done", byButton("Done"))
		b.wantPath("/_mfa/security")
		tabWantContains(b, chromedp.CSS(".banner-info"), "Two-factor authentication is on.")
		tabWantGone(b, chromedp.ID("no-authenticator"))
		tabSubmit(b, "click Back to the app", byLink("Back to the app"))
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "alice")
		b.shot("10-reenrolled-dashboard.png")
		b.axe("the app's dashboard after the new setup")
	})

	t.Logf("whole journey: %v", time.Since(began).Round(time.Millisecond))
	b.checkHosts()
}

// ---- the browser ------------------------------------------------------

// browser is one Chromium tab with its own profile.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string

	mu   sync.Mutex
	urls []string // every request the page sent
	logs []chromedp.ConsoleMessage

	secret   string   // the first authenticator key
	codes    []string // the first recovery codes
	usedStep int64    // the TOTP step of the code that passed the challenge

	axeMissing bool // axe-core is not installed (outside CI): axe checks nothing
}

// browserStepTimeout bounds each action, so a stuck wait fails with its step's name.
const browserStepTimeout = 15 * time.Second

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	if _, err := os.Stat(browserChromium); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must have Chromium at %s for the browser tests: %v", browserChromium, err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium); browser tests skipped: %v", browserChromium, err)
	}
	shots, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir() // removed after the browser is gone (cleanups run last-in first-out)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browserChromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// Belt and braces for "loopback only": no name resolves.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(bcancel)

	started := time.Now()
	if err := chromedp.Do(bctx); err != nil { // starts the browser with no per-step timeout
		t.Fatalf("start Chromium: %v", err)
	}
	t.Logf("Chromium started in %v", time.Since(started).Round(time.Millisecond))

	b := &tab{t: t, ctx: bctx, base: base, shots: shots}
	requests := chromedp.Events(bctx, network.RequestWillBeSent)
	console := chromedp.Console(bctx)
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.urls = append(b.urls, ev.Request.URL)
			b.mu.Unlock()
		}
	}()
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.logs = append(b.logs, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.reportConsole)
	return b
}

// part runs one flow and logs how long it took.
func (b *tab) part(name string, fn func()) {
	b.t.Helper()
	start := time.Now()
	fn()
	b.t.Logf("flow %q: %v", name, time.Since(start).Round(time.Millisecond))
}

func (b *tab) stepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, browserStepTimeout)
}

// do runs actions that return nothing, failing the test with what on error.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
}

func tabRun[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	return v
}

func (b *tab) navigate(path string) {
	b.t.Helper()
	b.do("go to "+path, chromedp.Navigate(b.base+path))
}

// tabType focuses the field by clicking it and types v key by key.
func tabType[S chromedp.Selectable](b *tab, sel S, v string) {
	b.t.Helper()
	b.do(fmt.Sprintf("type into %v", sel), chromedp.Click(sel), chromedp.SendKeys(sel, v))
	if got := tabRun(b, "read the field back", chromedp.Value(sel)); got != v {
		b.t.Fatalf("typed %q into %v, the field holds %q", v, sel, got)
	}
}

// tabTypeSubmit types v into a field whose form sends itself when the code
// is complete, waits for the page it loads and returns its HTTP status.
func tabTypeSubmit[S chromedp.Selectable](b *tab, what string, sel S, v string) int64 {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel), chromedp.SendKeys(sel, v))
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// click clicks and does not wait for a page.
func tabClick[S chromedp.Selectable](b *tab, what string, sel S) {
	b.t.Helper()
	b.do(what, chromedp.Click(sel))
}

// submit clicks something that loads a page (following redirects, as a
// browser does) and returns the final page's HTTP status.
func tabSubmit[S chromedp.Selectable](b *tab, what string, sel S) int64 {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			b.t.Fatalf("%s: no page loaded within %v (at %s)", what, browserStepTimeout, b.location())
		}
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

func (b *tab) sleep(d time.Duration) { b.t.Helper(); b.do("wait", chromedp.Sleep(d)) }

func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown location: " + err.Error()
	}
	return loc
}

func (b *tab) url() *url.URL {
	b.t.Helper()
	loc := b.location()
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatalf("location %q: %v", loc, err)
	}
	return u
}

func (b *tab) query() url.Values { b.t.Helper(); return b.url().Query() }

func (b *tab) wantPath(want string) {
	b.t.Helper()
	u := b.url()
	if u.Host != strings.TrimPrefix(b.base, "http://") || u.Path != want {
		b.t.Fatalf("the browser is at %s, want %s%s", u, b.base, want)
	}
}

func tabWantVisible[S chromedp.Selectable](b *tab, sel S) {
	b.t.Helper()
	b.do(fmt.Sprintf("wait for %v to be visible", sel), chromedp.WaitVisible(sel))
}

func tabCount[S chromedp.Selectable](b *tab, sel S) int {
	b.t.Helper()
	return tabRun(b, fmt.Sprintf("count %v", sel), chromedp.Evaluate[int](tabCountJS(sel)))
}

func tabWantGone[S chromedp.Selectable](b *tab, sel S) {
	b.t.Helper()
	if n := tabCount(b, sel); n != 0 {
		b.t.Fatalf("%v is on the page (%d), want it gone (at %s)", sel, n, b.location())
	}
}

// text is what the person sees in the element (innerText).
func tabText[S chromedp.Selectable](b *tab, sel S) string {
	b.t.Helper()
	tabWantVisible(b, sel)
	return strings.TrimSpace(tabRun(b, fmt.Sprintf("read %v", sel), chromedp.Text(sel)))
}

func tabWantText[S chromedp.Selectable](b *tab, sel S, want string) {
	b.t.Helper()
	if got := tabText(b, sel); got != want {
		b.t.Fatalf("%v shows %q, want %q (at %s)", sel, got, want, b.location())
	}
}

func tabWantContains[S chromedp.Selectable](b *tab, sel S, want string) {
	b.t.Helper()
	if got := tabText(b, sel); !strings.Contains(got, want) {
		b.t.Fatalf("%v shows %q, want it to contain %q (at %s)", sel, got, want, b.location())
	}
}

func tabAttr[S chromedp.Selectable](b *tab, sel S, name string) string {
	b.t.Helper()
	r := tabRun(b, fmt.Sprintf("read %s of %v", name, sel), chromedp.AttributeValue(sel, name))
	return r.Value
}

func (b *tab) eval(js string) any {
	b.t.Helper()
	return tabRun(b, "evaluate "+js, chromedp.Evaluate[any](js))
}

// focused returns the id of the focused element once it is want, or what
// it is after 2 s: pages move focus in event handlers (a dialog's close
// event), a moment after the change a test waits for.
func (b *tab) focused(want string) any {
	b.t.Helper()
	var f any
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if f = b.eval(`document.activeElement && document.activeElement.id`); f == want || time.Now().After(deadline) {
			return f
		}
	}
}

// recoveryCodes reads the codes off the dialog, as a person copies them.
func (b *tab) recoveryCodes() []string {
	b.t.Helper()
	tabWantVisible(b, chromedp.CSS(".recovery-code"))
	return tabRun(b, "read the recovery codes", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll(".recovery-code"), e => e.innerText.trim())`))
}

// signIn fills the demo app's form at /login; shot names a screenshot of
// the filled form, "" for none.
func (b *tab) signIn(user, pass, shot string) {
	b.t.Helper()
	b.navigate("/login")
	b.wantPath("/login")
	tabWantText(b, chromedp.CSS("h1"), "Sign in")
	tabType(b, chromedp.ID("username"), user)
	tabType(b, chromedp.ID("password"), pass)
	if shot != "" {
		b.shot(shot)
		b.axe("the app's sign-in form")
	}
	tabSubmit(b, "click Sign in", byButton("Sign in"))
}

// signOut clicks the dashboard's Sign out button and checks the app is closed.
func (b *tab) signOut() {
	b.t.Helper()
	b.wantPath("/")
	tabSubmit(b, "click Sign out", byButton("Sign out"))
	b.wantPath("/login")
	b.navigate("/")
	b.wantPath("/login")
}

// shot saves a full-page PNG into artifacts/.
func (b *tab) shot(name string) {
	b.t.Helper()
	png := tabRun(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.shots, name), png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
}

// checkHosts fails if the page sent anything off loopback.
func (b *tab) checkHosts() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	hosts := map[string]int{}
	for _, raw := range b.urls {
		u, err := url.Parse(raw)
		if err != nil {
			b.t.Errorf("unparsable request URL %q", raw)
			continue
		}
		switch {
		case u.Scheme == "data":
			hosts["data:"]++
		case (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() == "127.0.0.1":
			hosts[u.Host]++
		default:
			b.t.Errorf("the browser sent a request off loopback: %s", raw)
		}
	}
	b.t.Logf("requests by host: %v", hosts)
}

// reportConsole logs what the pages wrote to the console and fails on an
// uncaught exception or a Content-Security-Policy violation.
func (b *tab) reportConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.logs {
		b.t.Logf("console %s [%s] %s %s", m.Type, m.Source, m.Text, m.URL)
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			b.t.Errorf("page error: %s (%s)", m.Text, m.URL)
		}
	}
}

// clearViewport ends the phone emulation. chromedp.EmulateReset sends a
// zero-sized metrics override, which left this Chromium at 390px wide.
func clearViewport() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{})
		return err
	})
}

// ---- selectors and codes ----------------------------------------------

// checkKeyGroups wants the key shown for typing by hand in blocks of four
// (the last may be shorter), separated by single spaces.
func checkKeyGroups(t *testing.T, shown string) {
	t.Helper()
	groups := strings.Split(shown, " ")
	for i, g := range groups {
		if len(g) != 4 && !(i == len(groups)-1 && len(g) > 0 && len(g) < 4) {
			t.Errorf("BUG: the key to type by hand is shown as %q; want blocks of four like \"ABCD EFGH IJKL\" (block %d is %q)", shown, i+1, g)
			return
		}
	}
}

// button finds a button by the words on it, as a person does.
func byButton(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//button[normalize-space(.)=%q]`, label))
}

// link finds a link by (part of) its words.
func byLink(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//a[contains(normalize-space(.), %q)]`, label))
}

// tabCountJS counts the matches of a selector in the page.
func tabCountJS(sel any) string {
	switch s := sel.(type) {
	case chromedp.Search:
		return fmt.Sprintf(`document.evaluate(%q, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null).snapshotLength`, string(s))
	case chromedp.ID:
		return fmt.Sprintf(`document.querySelectorAll(%q).length`, "#"+strings.TrimPrefix(string(s), "#"))
	case chromedp.CSS:
		return fmt.Sprintf(`document.querySelectorAll(%q).length`, string(s))
	}
	panic(fmt.Sprintf("tabCountJS: selector type %T", sel))
}

// browserAuthCode is what an authenticator app shows for the key at now+steps*30s.
func browserAuthCode(t *testing.T, secret string, steps int) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(steps)*30*time.Second))
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	return c
}

// browserWrongCode is a 6-digit code no nearby step of secret accepts.
func browserWrongCode(t *testing.T, secret string) string {
	t.Helper()
	near := []string{browserAuthCode(t, secret, -2), browserAuthCode(t, secret, -1), browserAuthCode(t, secret, 0), browserAuthCode(t, secret, 1), browserAuthCode(t, secret, 2)}
	for _, c := range []string{"000000", "111111", "123456", "654321"} {
		if !slices.Contains(near, c) {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}
