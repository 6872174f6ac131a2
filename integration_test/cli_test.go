package integration_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildCaddy builds the same binary xcaddy.sh makes.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/caddy").CombinedOutput()
	if err != nil {
		t.Fatalf("build caddy: %v\n%s", err, out)
	}
	return bin
}

func runCLI(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"mfa"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestCLIAgainstRunningCaddy: `caddy mfa` goes through the running
// instance's admin endpoint (the database stays locked by Caddy), and works
// on the file directly once Caddy has stopped.
func TestCLIAgainstRunningCaddy(t *testing.T) {
	bin := buildCaddy(t)
	e := startAdminEnv(t)
	_, _, carol := e.enrolled("carol")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	addr := "--address=" + e.Admin

	out, err := runCLI(t, bin, "users", addr)
	if err != nil || !strings.Contains(out, "carol") || !strings.Contains(out, "bob") {
		t.Fatalf("users: %v\n%s", err, out)
	}
	out, err = runCLI(t, bin, "policy", addr, "--require-2fa", "on", "--timeout", "30")
	if err != nil || !strings.Contains(out, "yes") || !strings.Contains(out, "30") {
		t.Fatalf("policy: %v\n%s", err, out)
	}
	if out, err := runCLI(t, bin, "policy", addr, "--timeout", "3"); err == nil || !strings.Contains(out, "5 to 1440") {
		t.Fatalf("out-of-range timeout accepted: %v\n%s", err, out)
	}
	// The running instance sees the policy at once: a new unenrolled sign-in is sent to setup.
	dave := e.newClient()
	if r := dave.signIn("dave", "dave-password"); r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("policy set by the CLI not in force: sign-in went to %q", r.Location())
	}
	// Revoke bob's session by id.
	out, err = runCLI(t, bin, "sessions", addr, "--user", "bob", "--json")
	if err != nil {
		t.Fatalf("sessions: %v\n%s", err, out)
	}
	id := jsonField(t, out, "id")
	if out, err := runCLI(t, bin, "revoke", addr, id); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if u := bob.dashboardUser(); u != "" {
		t.Fatalf("revoked session still works: %q", u)
	}
	// Unlock: carol's authenticator is not locked, the call still succeeds
	// and is audited; an unknown user is an error.
	if out, err := runCLI(t, bin, "unlock", addr, "carol"); err != nil || !strings.Contains(out, "authenticator unlocked for carol") {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if out, err := runCLI(t, bin, "unlock", addr, "nobody"); err == nil || !strings.Contains(out, "no such user") {
		t.Fatalf("unlock of an unknown user: %v\n%s", err, out)
	}
	// Reset carol: her session ends and her factor is gone.
	if out, err := runCLI(t, bin, "reset", addr, "carol"); err != nil || !strings.Contains(out, "2FA reset for carol") || !strings.Contains(out, "no email was sent") {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	if u := carol.dashboardUser(); u != "" {
		t.Fatalf("carol's session survived the reset: %q", u)
	}
	if out, err := runCLI(t, bin, "reset", addr, "nobody"); err == nil || !strings.Contains(out, "no such user") {
		t.Fatalf("reset of an unknown user: %v\n%s", err, out)
	}
	if out, err := runCLI(t, bin, "audit", addr, "--format", "csv", "--type", "admin_reset"); err != nil || !strings.Contains(out, "admin_reset") || !strings.Contains(out, "cli") {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	// While Caddy runs, --db refuses quickly instead of waiting on the lock.
	if out, err := runCLI(t, bin, "users", "--db", e.DBPath); err == nil || !strings.Contains(out, "locked") {
		t.Fatalf("offline open while running: %v\n%s", err, out)
	}
	stopCaddy(t)
	// The harness passes its key in the Caddyfile, so offline use needs MFA_KEY.
	if out, err := runCLI(t, bin, "users", "--db", e.DBPath); err == nil || !strings.Contains(out, "MFA_KEY") {
		t.Fatalf("offline without a key: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "mfa", "users", "--db", e.DBPath)
	cmd.Env = append(cmd.Environ(), "MFA_KEY="+testKey)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "carol") {
		t.Fatalf("offline users: %v\n%s", err, b)
	}
}

func startAdminEnv(t *testing.T) *env {
	t.Helper()
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.Admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.load(e.gateway)
	return e
}

func jsonField(t *testing.T, out, field string) string {
	t.Helper()
	_, after, ok := strings.Cut(out, `"`+field+`": "`)
	if !ok {
		t.Fatalf("no %s in %s", field, out)
	}
	v, _, _ := strings.Cut(after, `"`)
	return v
}
