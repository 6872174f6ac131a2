package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

// TestEnforcementAndResetEmails: switching "require 2FA" on emails members
// without 2FA; an admin reset emails the user. Mail goes to a real SMTP
// server on loopback.
func TestEnforcementAndResetEmails(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	block := adminGateway + fmt.Sprintf(`
		email_from whoami /api/me email
		email_template {user}@users.example
		smtp {
			host 127.0.0.1
			port %d
			security none
			from "Demo security <security@example.com>"
		}
`, sink.Port())
	e := start(t, optsWith(manyUsers()), block)
	_, _, admin := e.enrolled("admin")
	e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")

	page := admin.get("/_mfa/admin")
	if page.StatusCode != 200 || strings.Contains(page.Body, "Emails are not configured") || !strings.Contains(page.Body, "get an email") {
		t.Fatalf("admin page: %d (should say members get an email)", page.StatusCode)
	}
	if r := admin.api("admin/policy", map[string]any{"require_2fa": true}); r.StatusCode != 200 {
		t.Fatalf("policy: %d %s", r.StatusCode, r.Body)
	}
	msgs, err := sink.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatalf("no enforcement email: %v", err)
	}
	// bob has no 2FA: the demo app's whoami reported bob@example.com at sign-in.
	got := msgs[0]
	if len(got.To) != 1 || got.To[0] != "bob@example.com" || !strings.Contains(got.Subject, "required") {
		t.Fatalf("enforcement email: to %v, subject %q", got.To, got.Subject)
	}
	if !strings.Contains(got.Text, "/_mfa/security") {
		t.Fatalf("enforcement email does not say where to set up 2FA:\n%s", got.Text)
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range sink.Messages() {
		if m.To[0] == "carol@example.com" || m.To[0] == "admin@example.com" {
			t.Fatalf("enrolled member emailed about enforcement: %v", m.To)
		}
	}
	before := len(sink.Messages())
	if r := admin.api("admin/reset", map[string]string{"user": "carol"}); r.StatusCode != 200 {
		t.Fatalf("reset: %d %s", r.StatusCode, r.Body)
	}
	msgs, err = sink.WaitFor(before+1, 10*time.Second)
	if err != nil {
		t.Fatalf("no reset email: %v", err)
	}
	reset := msgs[len(msgs)-1]
	if reset.To[0] != "carol@example.com" || !strings.Contains(reset.Text, "admin") {
		t.Fatalf("reset email: to %v\n%s", reset.To, reset.Text)
	}
	for _, m := range sink.Messages() {
		for _, secret := range []string{"password", "otpauth", "ha_secret"} {
			if strings.Contains(strings.ToLower(m.Text), secret+"=") {
				t.Fatalf("email carries a secret-looking value: %s", m.Text)
			}
		}
	}
}

// TestNoEmailConfigured: without smtp the admin page says so and nothing breaks.
func TestNoEmailConfigured(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	page := admin.get("/_mfa/admin")
	if page.StatusCode != 200 || !strings.Contains(page.Body, "Emails are not configured") {
		t.Fatalf("admin page without smtp: %d, should say emails are not configured", page.StatusCode)
	}
	if r := admin.api("admin/policy", map[string]any{"require_2fa": true}); r.StatusCode != 200 {
		t.Fatalf("policy without email: %d %s", r.StatusCode, r.Body)
	}
}
