package integration_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

// TestBrowserEmailProofAndKnownAddresses: held at the setup, a person
// first confirms the emailed code, then sets up the authenticator; then
// chooses to be asked for a code only from new addresses.
func TestBrowserEmailProofAndKnownAddresses(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e := start(t, optsWith(manyUsers()), defaultGateway+fmt.Sprintf(`
		require_2fa
		email_from whoami /api/me email
		smtp {
			host 127.0.0.1
			port %d
			security none
			from security@example.com
		}
`, sink.Port()))
	b := newTab(t, e.Base)
	b.signIn("frank", "frank-password", "")
	b.wantPath("/_mfa/security")
	tabWantVisible(b, chromedp.ID("proof-title"))
	b.shotBoth("50-email-proof")
	_, code := mailCode(t, sink, 1)
	tabType(b, chromedp.ID("proof-code"), wrongSix(code))
	if st := tabSubmit(b, "click Confirm with a wrong code", byButton("Confirm")); st != 401 {
		t.Errorf("a wrong proof code answers %d, want 401", st)
	}
	tabWantContains(b, chromedp.ID("proof-error"), "not valid")
	tabType(b, chromedp.ID("proof-code"), code)
	tabSubmit(b, "click Confirm", byButton("Confirm"))
	tabWantVisible(b, chromedp.ID("setup-title"))
	secret := tabText(b, chromedp.ID("totp-secret"))
	tabType(b, chromedp.ID("setup-code"), browserAuthCode(t, compact(secret), 0))
	tabSubmit(b, "click Verify and continue", byButton("Verify and continue"))
	tabClick(b, "click the saved label", chromedp.CSS(`label[for="saved"]`))
	tabSubmit(b, "click Done", byButton("Done"))
	b.wantPath("/")

	b.navigate("/_mfa/security")
	tabWantVisible(b, chromedp.ID("addresses"))
	tabClick(b, "tick only from new addresses", chromedp.CSS(`label[for="new_ip_only"]`))
	tabSubmit(b, "click Save", chromedp.Search(`#addresses button[type=submit]`))
	tabWantContains(b, chromedp.CSS(".banner-info"), "Your choice is saved")
	tabWantContains(b, chromedp.CSS("#addresses"), "127.0.0.1")
	b.shotBoth("51-known-addresses")
	b.checkHosts()
}

// compact is a key as typed into an app: without the spaces it is shown with.
func compact(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r != ' ' {
			out = append(out, r)
		}
	}
	return string(out)
}
