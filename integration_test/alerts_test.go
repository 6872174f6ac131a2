package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

// TestNewLoginAlerts: with alerts on, a sign-in from a browser the user has
// not used before emails them; the first browser, and a browser used
// before, do not; with alerts off nothing is sent.
func TestNewLoginAlerts(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e := start(t, optsWith(manyUsers()), defaultGateway+fmt.Sprintf(`
		admins admin
		email_template {user}@users.example
		smtp {
			host 127.0.0.1
			port %d
			security none
			from security@example.com
		}
`, sink.Port()))
	_, _, admin := e.enrolled("admin")
	if r := admin.api("admin/alerts", map[string]bool{"on": true}); r.StatusCode != 200 || r.JSON(t)["login_alerts"] != true {
		t.Fatalf("alerts on: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, admin.api("admin/alerts", map[string]string{"on": "yes"}), 400, "bad_request")

	first := e.newClient() // bob's first browser: no alert
	first.signIn("bob", "bob-password")
	first.get("/logout")
	first.signIn("bob", "bob-password") // the same browser again: no alert
	time.Sleep(300 * time.Millisecond)
	for _, m := range sink.Messages() {
		if m.To[0] == "bob@users.example" {
			t.Fatalf("an alert for bob's first browser: %q", m.Subject)
		}
	}

	second := e.newClient()
	second.req("GET", "/login", nil, map[string]string{"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Firefox/120.0"})
	second.req("POST", "/login", strings.NewReader("username=bob&password=bob-password"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Firefox/120.0"})
	msgs, err := sink.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatalf("no alert for a new browser: %v", err)
	}
	got := msgs[len(msgs)-1]
	if got.To[0] != "bob@users.example" || got.Subject != "New sign-in to your account" ||
		!strings.Contains(got.Text, "Browser:  Firefox on macOS") || strings.Contains(got.Text, "Mozilla") || !strings.Contains(got.Text, "127.0.0.1") || !strings.Contains(got.Text, "/_mfa/security#sessions") {
		t.Fatalf("alert: to %v, %q\n%s", got.To, got.Subject, got.Text)
	}

	// Alerts off: a third browser is not reported.
	if r := admin.api("admin/alerts", map[string]bool{"on": false}); r.StatusCode != 200 {
		t.Fatalf("alerts off: %d", r.StatusCode)
	}
	before := len(sink.Messages())
	e.newClient().signIn("bob", "bob-password")
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != before {
		t.Fatalf("%d emails after a sign-in with alerts off", n-before)
	}
}
