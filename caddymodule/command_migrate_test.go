package caddymodule

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage/bolt"
)

func TestParseEndpoint(t *testing.T) {
	t.Setenv("MFA_PG_DSN", "postgres://gw:s3cret@db.example/mfa")
	for _, tc := range []struct {
		spec, kind, name, dsn, err string
	}{
		{spec: "bolt:/var/lib/mfagate/mfagate.db", kind: "bolt", name: "/var/lib/mfagate/mfagate.db"},
		{spec: "postgres:postgres://gw:s3cret@h:5433/mfa", kind: "postgres", name: "postgres://gw@h:5433/mfa", dsn: "postgres://gw:s3cret@h:5433/mfa"},
		{spec: "postgres://gw:s3cret@h/mfa", kind: "postgres", name: "postgres://gw@h:5432/mfa", dsn: "postgres://gw:s3cret@h/mfa"},
		{spec: "postgres:host=h user=gw password=s3cret dbname=mfa", kind: "postgres", name: "postgres://gw@h:5432/mfa", dsn: "host=h user=gw password=s3cret dbname=mfa"},
		{spec: "postgres:", kind: "postgres", name: "postgres://gw@db.example:5432/mfa", dsn: "postgres://gw:s3cret@db.example/mfa"},
		{spec: "", err: "--from is required"},
		{spec: "bolt:", err: "needs the database file's path"},
		{spec: "mysql://gw:s3cret@h/db", err: `want bolt:PATH or postgres:DSN`},
		{spec: "postgres://gw:s3cret@h:port/db", err: "dsn"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			e, err := parseEndpoint("from", tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err = %v, want one containing %q and no password", err, tc.err)
				}
				return
			}
			if err != nil || e.kind != tc.kind || e.name != tc.name || e.dsn != tc.dsn {
				t.Fatalf("parseEndpoint = %+v, %v; want kind %s name %s dsn %s", e, err, tc.kind, tc.name, tc.dsn)
			}
		})
	}
	t.Setenv("MFA_PG_DSN", "")
	if _, err := parseEndpoint("to", "postgres:"); err == nil || !strings.Contains(err.Error(), "MFA_PG_DSN") {
		t.Fatalf("postgres: with no $MFA_PG_DSN: %v", err)
	}
}

// TestDBMigrateCommand moves a bolt file into PostgreSQL, twice (the second
// run adds nothing), and back into a new file; it refuses a held file and a
// missing source.
func TestDBMigrateCommand(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.db"), filepath.Join(dir, "back.db")
	dbWithUsers(t, src, "alice", "bob", "carol")

	for run, want := range []string{"3\t", "3\t"} {
		out, err := runMFA(t, "db", "migrate", "--from", "bolt:"+src, "--to", "postgres:"+dsn)
		if err != nil || !strings.Contains(out, "copied "+src) || !strings.Contains(out, "and verified") {
			t.Fatalf("run %d: %v\n%s", run+1, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if counts := strings.Fields(lines[len(lines)-1]); counts[0] != strings.TrimSpace(want) {
			t.Fatalf("run %d: counts %q, want 3 users", run+1, counts)
		}
	}
	out, err := runMFA(t, "db", "migrate", "--json", "--from", "postgres:"+dsn, "--to", "bolt:"+back)
	if err != nil || !strings.Contains(out, `"users": 3`) {
		t.Fatalf("postgres -> bolt: %v\n%s", err, out)
	}
	got := users(t, back)
	slices.Sort(got)
	if !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("users back in bolt: %q", got)
	}

	held, err := bolt.Open(src, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err = runMFA(t, "db", "migrate", "--from", "bolt:"+src, "--to", "postgres:"+dsn)
	_ = held.Close()
	if err == nil || !strings.Contains(err.Error(), "in use by a running Caddy") {
		t.Fatalf("migrate from a held file: %v\n%s", err, out)
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := runMFA(t, "db", "migrate", "--from", "bolt:"+missing, "--to", "postgres:"+dsn); err == nil {
		t.Fatal("migrate from a missing file succeeded")
	}
	if _, err := runMFA(t, "db", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+src); err == nil || !strings.Contains(err.Error(), "same store") {
		t.Fatalf("migrate onto itself: %v", err)
	}
}
