package integration_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

// TestFirstFactorNeedsEmailProof: when the team requires 2FA and the app
// reported the user's email address, someone with only the password cannot
// enrol their own authenticator: the first factor is confirmed only after a
// code sent to that address is entered in the same sign-in.
func TestFirstFactorNeedsEmailProof(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	block := func(extra string) string {
		return defaultGateway + fmt.Sprintf(`
		require_2fa
		email_from whoami /api/me email
		smtp {
			host 127.0.0.1
			port %d
			security none
			from security@example.com
		}
%s`, sink.Port(), extra)
	}
	e := start(t, optsWith(manyUsers()), block(""))

	mallory := e.newClient() // has alice's password, not her inbox
	if r := mallory.signIn("alice", "alice-password"); r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("sign-in under require_2fa: %d %q", r.StatusCode, r.Location())
	}
	page := mallory.get("/_mfa/security?setup=1")
	if !strings.Contains(page.Body, "First, confirm it") || strings.Contains(page.Body, "otpauth://") {
		t.Fatalf("the setup shows the key before the address is proved: %.300s", page.Body)
	}
	to, code := mailCode(t, sink, 1)
	if to != "alice@example.com" {
		t.Fatalf("the proof went to %q", to)
	}
	secret := mallory.api("totp/enroll", map[string]any{}).JSON(t)["secret"].(string)
	apiErr(t, mallory.api("totp/confirm", map[string]string{"code": codeFor(t, secret)}), 403, "email_proof_required")
	apiErr(t, mallory.api("enrol-proof", map[string]string{"code": wrongSix(code)}), 401, "invalid_code")
	if st := mallory.status(); st["enrolled"] != false {
		t.Fatalf("mallory enrolled: %v", st)
	}

	// alice, with her inbox, proves it and sets up her authenticator.
	if r := mallory.api("enrol-proof", map[string]string{"code": code}); r.StatusCode != 200 {
		t.Fatalf("the proof: %d %s", r.StatusCode, r.Body)
	}
	if r := mallory.api("totp/confirm", map[string]string{"code": codeFor(t, secret)}); r.StatusCode != 200 {
		t.Fatalf("confirm after the proof: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, mallory.api("enrol-proof/send", map[string]any{}), 409, "no_proof_needed")

	// Turned off, the setup goes straight on.
	e.load(block("\t\tenrol_email_proof off\n"))
	c := e.newClient()
	c.signIn("bob", "bob-password")
	if page := c.get("/_mfa/security?setup=1"); !strings.Contains(page.Body, "otpauth://") {
		t.Fatal("enrol_email_proof off still asks for the proof")
	}
}

// codeFor is the authenticator's current code for a fresh secret.
func codeFor(t *testing.T, secret string) string { return code(t, secret, 0) }
