package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// TestOperatorResetEmails: the operator's reset (what `caddy mfa reset`
// sends to the admin endpoint) emails the user as an admin's reset does,
// through the site block that has email configured, and says so.
func TestOperatorResetEmails(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.Admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.load(defaultGateway + fmt.Sprintf(`
		email_template {user}@users.example
		smtp {
			host 127.0.0.1
			port %d
			security none
			from security@example.com
		}
`, sink.Port()))
	_, _, alice := e.enrolled("alice")
	resp, err := http.Post("http://"+e.Admin+"/mfa_gateway/users/reset", "application/json", strings.NewReader(`{"user":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK      bool `json:"ok"`
		Emailed bool `json:"emailed"`
		Ended   int  `json:"sessions_ended"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !got.OK || !got.Emailed || got.Ended != 1 {
		t.Fatalf("operator reset: %d %+v %v", resp.StatusCode, got, err)
	}
	if u := alice.dashboardUser(); u != "" {
		t.Fatalf("alice's session survived the reset: %q", u)
	}
	msgs, err := sink.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatalf("no reset notice: %v", err)
	}
	m := msgs[len(msgs)-1]
	if m.To[0] != "alice@users.example" || !strings.Contains(m.Subject, "reset") || !strings.Contains(m.Text, "was reset by an administrator.") {
		t.Fatalf("notice: to %v, %q\n%s", m.To, m.Subject, m.Text)
	}
}
