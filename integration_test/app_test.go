package integration_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

// exampleStack runs the built Caddy on Caddyfile.example (its ports moved
// to free ones, its upstream to a demo app on loopback, in the shape demo.sh
// runs it), with Caddy's data directory in a temporary folder: the default
// bbolt store lives there.
type exampleStack struct {
	bin, caddyfile, base string
	env                  []string
	dataDir              string
}

func startExample(t *testing.T, bin string) *exampleStack {
	t.Helper()
	app := httptest.NewServer(demoapp.New(demoapp.DefaultOptions()))
	t.Cleanup(app.Close)
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	site, admin := freePort(t), freePort(t)
	up, _ := url.Parse(app.URL)
	cf := strings.NewReplacer(
		"localhost:8080", fmt.Sprintf("127.0.0.1:%d", site),
		"localhost:2019", fmt.Sprintf("127.0.0.1:%d", admin),
		"127.0.0.1:9080", up.Host,
	).Replace(string(raw))
	s := &exampleStack{
		bin: bin, caddyfile: filepath.Join(dir, "Caddyfile"), base: fmt.Sprintf("http://127.0.0.1:%d", site),
		env:     append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config")),
		dataDir: filepath.Join(dir, "data", "caddy"),
	}
	if err := os.WriteFile(s.caddyfile, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", s.caddyfile)
	cmd.Env = s.env
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy run output:\n%s", out.String())
		}
	})
	if err := dialWithin(fmt.Sprintf("127.0.0.1:%d", site), 20*time.Second); err != nil {
		t.Fatalf("Caddy on Caddyfile.example did not start: %v\n%s", err, out.String())
	}
	return s
}

// TestValidateWhileRunning: `caddy validate` (and `caddy adapt`) of the
// config a running Caddy uses succeed at once. Validation provisions the
// config but never opens the database the running Caddy holds.
func TestValidateWhileRunning(t *testing.T) {
	bin := buildCaddy(t)
	s := startExample(t, bin)

	// The running gateway works, and holds its default store.
	c := (&env{t: t, Base: s.base}).newClient()
	if r := c.signIn("alice", "alice-password"); r.StatusCode != http.StatusSeeOther && r.StatusCode != http.StatusFound {
		t.Fatalf("sign-in through the example config: %d %s", r.StatusCode, r.Body)
	}
	db := filepath.Join(s.dataDir, "mfagate", "mfagate.db")
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("default store not at %s: %v", db, err)
	}

	for _, args := range [][]string{
		{"validate", "--config", s.caddyfile},
		{"adapt", "--config", s.caddyfile, "--validate"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = s.env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("caddy %s while Caddy runs: %v\n%s", args[0], err, out)
		}
		if strings.Contains(string(out), "locked") {
			t.Fatalf("caddy %s waited on the database:\n%s", args[0], out)
		}
		t.Logf("caddy %s: %v", args[0], time.Since(start).Round(time.Millisecond))
	}

	// And the running instance is untouched: its session still counts.
	if r := c.get("/_mfa/api/v1/status"); r.StatusCode != http.StatusOK {
		t.Fatalf("status after validate: %d, want 200 (the session survives): %s", r.StatusCode, r.Body)
	}
}

// TestDemoExample: the demo as demo.sh runs it (Caddyfile.example in front
// of the demo app) shows every feature: the dashboard links to the security
// page, and its support widget goes through the widget check, unverified
// while verification is Off, verified once the admin has generated the
// identity secret and pasted it into the app.
func TestDemoExample(t *testing.T) {
	s := startExample(t, buildCaddy(t))
	e := &env{t: t, Base: s.base}

	alice := e.newClient()
	if r := alice.signIn("alice", "alice-password"); r.StatusCode != http.StatusSeeOther || r.Location() != "/" {
		t.Fatalf("alice's sign-in: %d %q", r.StatusCode, r.Location())
	}
	dash := alice.get("/")
	m := regexp.MustCompile(`<a id="security-link" href="([^"]+)">Account security`).FindStringSubmatch(dash.Body)
	if dash.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("the dashboard through the gateway has no Account security link: %d\n%s", dash.StatusCode, dash.Body)
	}
	if m[1] != "/_mfa/security" {
		t.Errorf("the security link goes to %q, want /_mfa/security", m[1])
	}
	if r := alice.get(m[1]); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Enable 2FA") {
		t.Errorf("the linked security page: %d, want 200 with Enable 2FA", r.StatusCode)
	}

	// Widget: the dashboard's link claims alice; Off, so unverified.
	widget := func(c *client) (claims, verdict string) {
		t.Helper()
		dash := c.get("/")
		m := regexp.MustCompile(`<a id="widget-link" href="([^"]+)">`).FindStringSubmatch(dash.Body)
		if m == nil {
			t.Fatalf("the dashboard has no widget link:\n%s", dash.Body)
		}
		r := c.get(html.UnescapeString(m[1]))
		v := regexp.MustCompile(`id="verdict">([a-z]+)<`).FindStringSubmatch(r.Body)
		if r.StatusCode != http.StatusOK || v == nil {
			t.Fatalf("the widget %s: %d\n%s", m[1], r.StatusCode, r.Body)
		}
		return html.UnescapeString(m[1]), v[1]
	}
	if link, v := widget(alice); v != "unverified" || strings.Contains(link, "token=") {
		t.Errorf("the widget with verification Off: %s says %q, want unverified without a token", link, v)
	}
	// A spoofed verdict from the browser does not reach the app.
	r := alice.req("GET", demoapp.WidgetPath+"?user_id=alice", nil, map[string]string{demoapp.WidgetVerdictHeader: "verified"})
	if !strings.Contains(r.Body, `id="verdict">unverified<`) {
		t.Errorf("a client-sent verdict header reached the widget: %d\n%s", r.StatusCode, r.Body)
	}

	// The admin turns 2FA on, generates the identity secret (Monitor) and
	// pastes it into the app, which then signs the widget's claim.
	admin := e.newClient()
	admin.signIn("admin", "admin-password")
	admin.enrol()
	g := admin.api("admin/identity/secret", map[string]any{})
	if g.StatusCode != http.StatusOK {
		t.Fatalf("generate the identity secret: %d %s", g.StatusCode, g.Body)
	}
	secret, _ := g.JSON(t)["secret"].(string)
	if r := admin.postForm("/settings/widget-secret", url.Values{"secret": {secret}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("paste the secret into the app: %d %s", r.StatusCode, r.Body)
	}
	if link, v := widget(alice); v != "verified" || !strings.Contains(link, "token=") {
		t.Errorf("the widget with the secret pasted, in Monitor: %s says %q, want verified with a token", link, v)
	}
	st := admin.api("admin/identity", nil).JSON(t)
	if st["mode"] != "monitor" {
		t.Errorf("identity mode %v after generating the secret, want monitor", st["mode"])
	}
}

// TestPlaceholders: later handlers and logs see who is signed in, as with
// Caddy's own authentication: {http.auth.user.id}, {http.mfa_gateway.user}
// and {http.mfa_gateway.aal}; a client cannot set them.
func TestPlaceholders(t *testing.T) {
	e := start(t, demoapp.Options{}, defaultGateway)
	e.extra = `	header >X-Seen "{http.auth.user.id}|{http.mfa_gateway.user}|{http.mfa_gateway.aal}"`
	e.load(defaultGateway)

	anon := e.newClient()
	// Unset placeholders stay as written in a header value.
	const unset = "{http.auth.user.id}|{http.mfa_gateway.user}|{http.mfa_gateway.aal}"
	if got := anon.get("/").Header.Get("X-Seen"); got != unset {
		t.Fatalf("without a session: X-Seen %q, want the placeholders unset", got)
	}
	c := e.newClient()
	c.signIn("alice", "alice-password")
	c.enrol()
	if got := c.get("/").Header.Get("X-Seen"); got != "alice|alice|2" {
		t.Fatalf("signed in at AAL2: X-Seen %q, want alice|alice|2", got)
	}
	spoof := e.newClient()
	r := spoof.req("GET", "/", nil, map[string]string{"X-Mfa-User": "alice"})
	if got := r.Header.Get("X-Seen"); got != unset {
		t.Fatalf("a client-sent user header set the placeholders: %q", got)
	}
}
