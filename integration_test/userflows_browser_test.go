package integration_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// shotBoth screenshots the page at desktop width and at phone width
// (390x844), as name-desktop.png and name-phone.png, and checks both with
// axe-core.
func (b *tab) shotBoth(name string) {
	b.t.Helper()
	b.shot(name + "-desktop.png")
	b.axe(name + ", desktop")
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	if w := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`); w != true {
		b.t.Errorf("%s scrolls sideways at 390px wide", name)
	}
	b.shot(name + "-phone.png")
	b.axe(name + ", phone")
	b.do("desktop viewport", clearViewport())
}

// tabKeySubmit presses key (Enter in a form) and waits for the page it loads.
func tabKeySubmit(b *tab, what, key string) int64 {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(key))
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// focusInDialog reports whether focus is inside the open dialog.
func (b *tab) focusInDialog() bool {
	return b.eval(`(() => { const d = document.querySelector("dialog[open]"); return !!d && d.contains(document.activeElement); })()`) == true
}

// tabThroughDialog presses Tab n times and checks focus never leaves the
// open dialog: the page behind it is inert.
func (b *tab) tabThroughDialog(n int) {
	b.t.Helper()
	for i := range n {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if !b.focusInDialog() {
			b.t.Fatalf("Tab %d took focus out of the dialog, to %v", i+1, b.eval(`document.activeElement && document.activeElement.outerHTML.slice(0, 120)`))
		}
	}
}

// TestBrowserUserFlows walks the paths off the happy one as a person does,
// by keyboard where it matters, at desktop and phone widths: "Not you?" on
// the challenge, the confirming dialogs for disable and regenerate (refused
// without a current code, accepted with one), the challenge's messages, and
// changing the authenticator app.
func TestBrowserUserFlows(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tmax_attempts 3\n")
	secret, codes, _ := e.enrolled("alice")
	b := newTab(t, e.Base)

	b.part("not you", func() {
		b.signIn("alice", "alice-password", "")
		b.wantPath("/_mfa/challenge")
		tabWantContains(b, chromedp.CSS(".account"), "Signing in as alice")
		b.shotBoth("20-challenge-account")
		tabSubmit(b, "click Not you? Sign out", byButton("Sign out"))
		b.navigate("/")
		b.wantPath("/login")
		// The app's sign-in page is reachable again, not the challenge.
		tabWantText(b, chromedp.CSS("h1"), "Sign in")
	})

	b.part("challenge messages", func() {
		b.signIn("alice", "alice-password", "")
		b.wantPath("/_mfa/challenge")
		// The code was just used in another tab (here: another browser).
		used := code(t, secret, 1)
		other := e.pending("alice")
		if r := other.api("challenge", map[string]string{"code": used}); r.StatusCode != 200 {
			t.Fatalf("the other tab's code: %d %s", r.StatusCode, r.Body)
		}
		if st := tabTypeSubmit(b, "type the code used elsewhere", chromedp.ID("code"), used); st != 401 {
			t.Errorf("a code used in another tab answers %d, want 401", st)
		}
		tabWantContains(b, chromedp.CSS(`[role="alert"]`), "That code was already used")
		b.shot("21-challenge-code-used.png")
		b.axe("21-challenge-code-used")
		// Wrong codes up to max_attempts: the lock-out says for how long
		// and what else to do.
		wrong := browserWrongCode(t, secret)
		st := int64(0)
		for i := 0; i < 3 && st != 429; i++ {
			st = tabTypeSubmit(b, "type a wrong code", chromedp.ID("code"), wrong)
		}
		if st != 429 {
			t.Errorf("wrong codes past max_attempts answer %d, want 429", st)
		}
		tabWantContains(b, chromedp.CSS(`[role="alert"]`), "Try again in 15 minutes")
		tabWantContains(b, chromedp.CSS(`[role="alert"]`), "use one of your recovery codes")
		b.shotBoth("22-challenge-locked")
		// The recovery code still works during the lock-out.
		tabSubmit(b, "click Use a recovery code", byLink("Use a recovery code"))
		tabType(b, chromedp.ID("recovery_code"), codes[0])
		tabSubmit(b, "click Verify", byButton("Verify"))
		b.wantPath("/_mfa/security")
		tabWantVisible(b, chromedp.ID("setup-title"))
		// Set up a new authenticator (the recovery code turned the old one off).
		secret = strings.Join(strings.Fields(tabText(b, chromedp.ID("totp-secret"))), "")
		tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, secret, 0))
		tabSubmit(b, "click Verify and continue", byButton("Verify and continue"))
		codes = b.recoveryCodes()
		tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
		tabSubmit(b, "click Done", byButton("Done"))
		b.wantPath("/_mfa/security")
	})

	b.part("regenerate asks for a current code", func() {
		tabSubmit(b, "click Regenerate recovery codes", byLink("Regenerate recovery codes"))
		tabWantVisible(b, chromedp.ID("confirm-title"))
		if f := b.focused("confirm-title"); f != "confirm-title" {
			t.Errorf("focus is on %v, want the dialog's heading", f)
		}
		b.tabThroughDialog(6)
		b.shotBoth("23-regenerate-confirm")
		// Refused without a code: the field is required, nothing is sent.
		tabClick(b, "click Regenerate codes without a code", byButton("Regenerate codes"))
		if v := b.eval(`document.getElementById("confirm-code").validity.valueMissing`); v != true {
			t.Errorf("an empty code was not held back by the form")
		}
		tabWantVisible(b, chromedp.ID("confirm-title"))
		// A wrong code: the dialog stays, with the error.
		tabType(b, chromedp.ID("confirm-code"), "zzzzzz-zzzzzz")
		if st := tabSubmit(b, "click Regenerate codes with a wrong code", byButton("Regenerate codes")); st != 401 {
			t.Errorf("a wrong code answers %d, want 401", st)
		}
		tabWantContains(b, chromedp.ID("confirm-error"), "not valid")
		b.shot("24-regenerate-wrong-code.png")
		b.axe("24-regenerate-wrong-code")
		// Escape closes it, and focus goes back to the button.
		b.do("press Escape", chromedp.KeyEvent(kb.Escape))
		b.do("wait for the dialog to close", chromedp.WaitNotPresent(chromedp.ID("confirm-title")))
		if f := b.focused("regen-btn"); f != "regen-btn" {
			t.Errorf("after Escape, focus is on %v, want the Regenerate button", f)
		}
		// With a current code, by keyboard: new codes.
		tabSubmit(b, "click Regenerate recovery codes", byLink("Regenerate recovery codes"))
		tabType(b, chromedp.ID("confirm-code"), browserAuthCode(t, secret, 1))
		tabKeySubmit(b, "press Enter", kb.Enter)
		fresh := b.recoveryCodes()
		if len(fresh) != 10 || fresh[0] == codes[0] {
			t.Errorf("regenerate gave %q", fresh)
		}
		codes = fresh
		tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
		tabSubmit(b, "click Done", byButton("Done"))
	})

	b.part("change authenticator app", func() {
		b.navigate("/_mfa/security")
		tabSubmit(b, "click Change authenticator app", byButton("Change authenticator app"))
		tabWantText(b, chromedp.ID("setup-title"), "Change authenticator app")
		newSecret := strings.Join(strings.Fields(tabText(b, chromedp.ID("totp-secret"))), "")
		if newSecret == secret {
			t.Fatal("the change shows the current key")
		}
		// On a phone, the key and the app link come before the QR code.
		b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		if above := b.eval(`document.getElementById("totp-secret").getBoundingClientRect().top < document.querySelector("img.qr").getBoundingClientRect().top`); above != true {
			t.Errorf("on a phone the QR code comes before the key")
		}
		b.shot("25-change-authenticator-phone.png")
		b.axe("25-change-authenticator-phone")
		b.do("desktop viewport", clearViewport())
		if above := b.eval(`document.querySelector("img.qr").getBoundingClientRect().left < document.getElementById("totp-secret").getBoundingClientRect().left`); above != true {
			t.Errorf("on a desktop the QR code is not beside the key, first")
		}
		b.shot("25-change-authenticator-desktop.png")
		b.axe("25-change-authenticator-desktop")
		tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, newSecret, 0))
		tabSubmit(b, "click Verify and continue", byButton("Verify and continue"))
		tabWantContains(b, chromedp.CSS(".banner-info"), "Your new authenticator app is set up")
		secret = newSecret
	})

	b.part("disable asks for a current code", func() {
		tabSubmit(b, "click Disable 2FA", byLink("Disable 2FA"))
		tabWantText(b, chromedp.ID("confirm-title"), "Turn off two-factor authentication?")
		b.shotBoth("26-disable-confirm")
		tabType(b, chromedp.ID("confirm-code"), codes[0]) // a recovery code will do
		tabSubmit(b, "click Turn off 2FA", byButton("Turn off 2FA"))
		tabWantContains(b, chromedp.CSS(".banner-info"), "Two-factor authentication is off")
		tabWantText(b, chromedp.CSS(".badge"), "Off")
		b.shot("27-disabled.png")
		b.axe("27-disabled")
	})

	b.part("an expired sign-in", func() {
		e.load(defaultGateway + "\t\tpending_timeout 1s\n")
		other := e.newClient()
		other.signIn("bob", "bob-password")
		if r := other.api("totp/enroll", map[string]any{}); r.StatusCode == 200 {
			s := r.JSON(t)["secret"].(string)
			other.api("totp/confirm", map[string]string{"code": code(t, s, 0)})
		}
		tabSubmit(b, "click Back to the app", byLink("Back to the app"))
		b.signOut()
		b.signIn("bob", "bob-password", "")
		b.wantPath("/_mfa/challenge")
		b.sleep(1500 * time.Millisecond)
		b.navigate("/_mfa/challenge")
		tabWantContains(b, chromedp.CSS(".lead"), "This sign-in has expired")
		tabWantVisible(b, byLink("Sign in again"))
		b.shotBoth("28-challenge-expired")
	})
	b.checkHosts()
}
