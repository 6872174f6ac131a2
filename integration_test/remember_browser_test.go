package integration_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserRememberThisBrowser: ticking "Remember this browser" at the
// challenge skips it at the next sign-in in the same browser; the security
// page lists the browser, and "Forget" brings the challenge back.
func TestBrowserRememberThisBrowser(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("erin")
	b := newTab(t, e.Base)
	b.signIn("erin", "erin-password", "")
	b.wantPath("/_mfa/challenge")
	tabClick(b, "tick Remember this browser", chromedp.CSS(`label[for="remember"]`))
	b.shotBoth("40-challenge-remember")
	tabTypeSubmit(b, "type the code", chromedp.ID("code"), code(t, secret, 1))
	b.wantPath("/")
	b.signOut()
	b.signIn("erin", "erin-password", "")
	b.wantPath("/") // no challenge on this browser
	tabWantText(b, chromedp.ID("user"), "erin")

	b.navigate("/_mfa/security")
	tabWantVisible(b, chromedp.ID("devices"))
	b.shotBoth("41-security-remembered")
	tabSubmit(b, "click Forget", byButton("Forget Chrome on Linux, 127.0.0.1"))
	tabWantContains(b, chromedp.CSS(".banner-info"), "That browser is forgotten")
	tabSubmit(b, "click Back to the app", byLink("Back to the app"))
	b.signOut()
	b.signIn("erin", "erin-password", "")
	b.wantPath("/_mfa/challenge")
	b.checkHosts()
}
