package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/internal/pgtest"
)

// pgGlobal is the global option that puts the mfa app's store in
// PostgreSQL, the DSN from the environment as an operator would give it.
const pgGlobal = `	mfa {
		store postgres {
			dsn {env.MFA_PG_DSN}
			pool 3
			schema gw
		}
	}`

// pgConns counts the gateway's connections to the database (its pools name
// them; this helper's own connection is left out).
func pgConns(t *testing.T, dsn string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'mfagate' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pgConnsSettle is pgConns once it has held still: a closed pool's
// backends leave shortly after.
func pgConnsSettle(t *testing.T, dsn string, want func(int) bool) int {
	t.Helper()
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n = pgConns(t, dsn); want(n) {
			return n
		}
	}
	return n
}

// TestPostgresStore runs the real Caddy with `mfa { store postgres {...} }`
// in front of the demo app: enrolment, sign-out and a sign-in with the
// challenge work on the database; the records are in its tables (and no
// bolt file is made); reloads share the open store (its pool's connections
// stay within the pool size, no second pool is left behind); a restart
// finds every record again, and a stopped Caddy holds no connection.
func TestPostgresStore(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	t.Setenv("MFA_PG_DSN", dsn)
	e := startGlobal(t, optsWith(manyUsers()), pgGlobal, defaultGateway)

	secret, codes, c := e.enrolled("alice")
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("after enrolment: dashboard %q", u)
	}
	c.get("/logout")
	if u := c.dashboardUser(); u != "" {
		t.Fatalf("after sign-out: dashboard %q", u)
	}
	p := e.pending("alice")
	if r := p.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if u := p.dashboardUser(); u != "alice" {
		t.Fatalf("after the challenge: dashboard %q", u)
	}
	if _, err := os.Stat(e.DBPath); !os.IsNotExist(err) {
		t.Fatalf("a bolt file was made beside the test: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	var confirmed bool
	err = conn.QueryRow(context.Background(), `SELECT (data->>'totp_confirmed')::bool FROM gw.users WHERE id = 'alice'::bytea`).Scan(&confirmed)
	_ = conn.Close(context.Background())
	if err != nil || !confirmed {
		t.Fatalf("alice in gw.users: confirmed %v, %v", confirmed, err)
	}

	// Reloads keep the one open store: at most the pool's 3 connections
	// and the change listener's one.
	const most = 3 + 1
	before := pgConns(t, dsn)
	if before < 1 || before > most {
		t.Fatalf("%d connections before the reloads, want 1 to %d (pool 3 and the listener)", before, most)
	}
	for i, ch := range []string{"\n\t\tpending_timeout 5m", "\n\t\tmax_attempts 7", ""} {
		e.load(defaultGateway + ch)
		if u := p.dashboardUser(); u != "alice" {
			t.Fatalf("after reload %d: dashboard %q", i, u)
		}
	}
	if after := pgConnsSettle(t, dsn, func(n int) bool { return n <= most }); after < 1 || after > most {
		t.Fatalf("%d connections after 3 reloads (%d before): a pool was left open", after, before)
	}

	// A restart reads everything back from the database.
	stopCaddy(t)
	if n := pgConnsSettle(t, dsn, func(n int) bool { return n == 0 }); n != 0 {
		t.Fatalf("%d connections after Caddy stopped, want 0", n)
	}
	e.load(defaultGateway)
	if u := p.dashboardUser(); u != "alice" {
		t.Fatalf("AAL2 session after a restart: dashboard %q", u)
	}
	// Still enrolled: asked for the factor. The TOTP step was spent above,
	// so a recovery code answers, once.
	q := e.pending("alice")
	if r := q.api("challenge/recovery", map[string]string{"recovery_code": codes[0]}); r.StatusCode != 200 {
		t.Fatalf("recovery code after a restart: %d %s", r.StatusCode, r.Body)
	}
	if u := q.dashboardUser(); u != "alice" {
		t.Fatalf("after the recovery code after a restart: dashboard %q", u)
	}
	again := e.pending("alice")
	if r := again.api("challenge/recovery", map[string]string{"recovery_code": codes[0]}); r.StatusCode != 401 {
		t.Fatalf("the same recovery code again: %d %s, want 401", r.StatusCode, r.Body)
	}
}

// TestPostgresStoreUnreachable: a database nobody listens at fails the
// config's start with an error naming the database, not its password.
func TestPostgresStoreUnreachable(t *testing.T) {
	port := freePort(t) // nobody listens there
	t.Setenv("MFA_PG_DSN", "postgres://gw:s3cret@127.0.0.1:"+strconv.Itoa(port)+"/mfa?connect_timeout=5")
	e := &env{t: t, port: freePort(t), DBPath: t.TempDir() + "/mfagate.db", upstream: "127.0.0.1:9", global: pgGlobal}
	e.Base = "http://127.0.0.1:" + strconv.Itoa(e.port)
	t.Cleanup(func() { _ = caddy.Stop() })
	err := e.tryLoad(defaultGateway)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("start on an unreachable database: %v", err)
	}
}

// TestPostgresTwoInstances runs two gateways on one database, as behind a
// load balancer: the in-process Caddy (A) and the built binary (B), both
// in front of the same app. A browser signed in on one is signed in on the
// other at once; a revocation on one is refused on the other, and a policy
// switched on with one holds on the other, as soon as the change feed
// announces it (a second at worst): the test allows 5 s and logs what it
// took.
func TestPostgresTwoInstances(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	t.Setenv("MFA_PG_DSN", dsn)
	a := startGlobal(t, optsWith(manyUsers()), pgGlobal, defaultGateway)

	b := *a
	b.port, b.Admin = freePort(t), "127.0.0.1:"+strconv.Itoa(freePort(t))
	b.Base = "http://127.0.0.1:" + strconv.Itoa(b.port)
	b.DBPath = filepath.Join(t.TempDir(), "unused.db")
	conf := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(conf, []byte(b.caddyfile(defaultGateway)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildCaddy(t), "run", "--config", conf, "--adapter", "caddyfile")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := dialWithin(b.Base[len("http://"):], 20*time.Second); err != nil {
		t.Fatalf("instance B did not start: %v\n%s", err, out.String())
	}
	if err := b.waitUp(); err != nil {
		t.Fatalf("instance B: %v\n%s", err, out.String())
	}
	on := func(c *client, e *env) *client { return &client{t: t, e: e, jar: c.jar, http: c.http} }
	within := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: not within 5 s\ninstance B:\n%s", what, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: %v", what, time.Since(start).Round(10*time.Millisecond))
	}

	// Enrolled and signed in on A; the same browser on B.
	_, _, alice := a.enrolled("alice")
	aliceOnB := on(alice, &b)
	// B has not synced yet: it reads the session from the database at the
	// browser's first request, so the browser stays signed in.
	if u := aliceOnB.dashboardUser(); u != "alice" {
		t.Fatalf("alice's first request on B: dashboard %q\n%s", u, out.String())
	}

	// B's operator revokes the session (the app's own session stays good):
	// A refuses the browser's cookies.
	held := alice.cookieHeader()
	if r := a.raw("GET", "/api/me", held, nil, nil); !strings.Contains(r.Body, `"alice"`) {
		t.Fatalf("before the revocation, A: %d %s", r.StatusCode, r.Body)
	}
	var list struct {
		Sessions []struct {
			ID  string
			AAL int
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(operator(t, "GET", "http://"+b.Admin+"/mfa_gateway/sessions?user=alice", "")), &list); err != nil {
		t.Fatal(err)
	}
	// The session before enrolment may still be listed for a moment, until
	// B reads that it was rotated away: the browser's is the AAL2 one.
	revoke := ""
	for _, s := range list.Sessions {
		if s.AAL == 2 {
			revoke = s.ID
		}
	}
	if revoke == "" {
		t.Fatalf("B lists no AAL2 session of alice's: %+v", list)
	}
	operator(t, "POST", "http://"+b.Admin+"/mfa_gateway/sessions/revoke", `{"session":"`+revoke+`"}`)
	within("A refuses the session revoked on B", func() bool {
		r := a.raw("GET", "/api/me", held, nil, nil)
		return !strings.Contains(r.Body, `"alice"`)
	})
	direct := &env{t: t, Base: a.AppURL}
	if r := direct.raw("GET", "/api/me", held, nil, nil); !strings.Contains(r.Body, `"alice"`) {
		t.Fatalf("the app itself no longer knows alice (%s): the test proves nothing", r.Body)
	}

	// Before the policy: bob, with no factor, signs in on A with his password.
	bob := a.newClient()
	if r := bob.signIn("bob", "bob-password"); r.StatusCode != 303 || strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("bob before the policy: %d %q", r.StatusCode, r.Location())
	}
	// B's operator turns on "require 2FA"; A holds bob to it.
	operator(t, "POST", "http://"+b.Admin+"/mfa_gateway/policy", `{"scope":"default","require_2fa":true}`)
	within("A holds a new sign-in to the policy set on B", func() bool {
		r := a.newClient().signIn("bob", "bob-password")
		return r.StatusCode == 303 && strings.HasPrefix(r.Location(), "/_mfa/security")
	})
}

// operator calls Caddy's admin endpoint and returns the body, failing the
// test unless it answers 200.
func operator(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return string(b)
}
