package integration_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserEmailAndSMS walks the email and text-message methods as a
// person does: set up email codes as the first method (recovery codes
// follow), add a mobile number, make it primary, sign in with the texted
// code, switch to email with "Use a different method", and remove the
// number, confirming with an emailed code.
func TestBrowserEmailAndSMS(t *testing.T) {
	e, mailSink, texts := methodsStack(t, "")
	b := newTab(t, e.Base)

	b.part("email as the first method", func() {
		b.signIn("bob", "bob-password", "")
		b.navigate("/_mfa/security")
		tabWantVisible(b, chromedp.ID("method-email"))
		b.shotBoth("30-security-methods")
		tabType(b, chromedp.ID("dest-email"), "bob@example.com")
		tabSubmit(b, "click Send code (email)", chromedp.Search(`#method-email button[type=submit]`))
		tabWantVisible(b, chromedp.ID("verify-title"))
		tabWantContains(b, chromedp.ID("verify-intro"), "b•••@example.com")
		b.shotBoth("31-verify-email")
		_, code := mailCode(t, mailSink, 1)
		tabType(b, chromedp.ID("verify-code"), wrongSix(code))
		if st := tabSubmit(b, "click Verify with a wrong code", byButton("Verify")); st != 401 {
			t.Errorf("a wrong code answers %d, want 401", st)
		}
		tabWantContains(b, chromedp.ID("verify-error"), "not valid")
		tabType(b, chromedp.ID("verify-code"), code)
		tabSubmit(b, "click Verify", byButton("Verify"))
		// The first method turns 2FA on: the recovery codes come first.
		tabWantVisible(b, chromedp.ID("codes-title"))
		tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
		tabSubmit(b, "click Done", byButton("Done"))
		tabWantContains(b, chromedp.CSS("#method-email .hint"), "Codes go to b•••@example.com")
	})

	b.part("a mobile number, made primary", func() {
		tabType(b, chromedp.ID("dest-sms"), "+44 7700 900456")
		tabSubmit(b, "click Send code (sms)", chromedp.Search(`#method-sms button[type=submit]`))
		_, code := texts.waitCode(1)
		tabType(b, chromedp.ID("verify-code"), code)
		tabSubmit(b, "click Verify", byButton("Verify"))
		tabWantContains(b, chromedp.CSS(".banner-info"), "The new way to get codes is set up")
		tabSubmit(b, "click Make primary (sms)", chromedp.Search(`#method-sms button[type=submit]`))
		tabWantContains(b, chromedp.CSS("#method-sms"), "Primary")
		b.shotBoth("32-security-two-methods")
	})

	b.part("sign in with a texted code, then by email", func() {
		tabSubmit(b, "click Back to the app", byLink("Back to the app"))
		b.signOut()
		b.signIn("bob", "bob-password", "")
		b.wantPath("/_mfa/challenge")
		tabWantContains(b, chromedp.ID("code-help"), "by text message")
		_, code := texts.waitCode(2)
		b.shotBoth("33-challenge-sms")
		// Use a different method: email.
		tabSubmit(b, "click Email a code", byLink("Email a code to"))
		tabWantContains(b, chromedp.ID("code-help"), "b•••@example.com")
		_, mailed := mailCode(t, mailSink, 2)
		b.shot("34-challenge-email.png")
		b.axe("challenge by email")
		if code == mailed {
			t.Fatal("the email carries the texted code")
		}
		tabTypeSubmit(b, "type the emailed code", chromedp.ID("code"), mailed)
		b.wantPath("/")
		tabWantText(b, chromedp.ID("user"), "bob")
	})

	b.part("remove the number, confirmed by email", func() {
		b.navigate("/_mfa/security")
		tabSubmit(b, "click Remove (sms)", chromedp.Search(`#remove-sms-btn`))
		tabWantText(b, chromedp.ID("confirm-title"), "Remove codes by text message?")
		tabSubmit(b, "click Email a code", byButton("Email a code to b•••@example.com"))
		tabWantContains(b, chromedp.CSS("dialog .banner-info"), "We sent a code to b•••@example.com")
		b.shotBoth("35-remove-confirm")
		_, code := mailCode(t, mailSink, 3)
		tabType(b, chromedp.ID("confirm-code"), code)
		tabSubmit(b, "click Remove", byButton("Remove"))
		tabWantContains(b, chromedp.CSS(".banner-info"), "That way to get codes was removed")
		tabWantContains(b, chromedp.CSS("#method-sms .hint"), "Not set up")
	})
	b.checkHosts()
}
