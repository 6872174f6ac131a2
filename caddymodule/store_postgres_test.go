package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestPostgresStoreProvision(t *testing.T) {
	t.Setenv("MFA_TEST_PG_DSN", "postgres://gw:s3cret@db.example:5433/mfa?sslmode=require")
	for _, tc := range []struct {
		name    string
		store   PostgresStore
		wantKey string // "" when an error is wanted
		wantErr string
	}{
		{"env placeholder", PostgresStore{DSN: "{env.MFA_TEST_PG_DSN}"}, "postgres://gw@db.example:5433/mfa#mfagate", ""},
		{"schema and pool", PostgresStore{DSN: "{env.MFA_TEST_PG_DSN}", Schema: "gw2", MaxConns: 3}, "postgres://gw@db.example:5433/mfa#gw2", ""},
		{"key-value dsn", PostgresStore{DSN: "host=10.1.2.3 user=gw password=s3cret dbname=mfa"}, "postgres://gw@10.1.2.3:5432/mfa#mfagate", ""},
		{"no dsn", PostgresStore{}, "", "dsn is required"},
		{"unset variable", PostgresStore{DSN: "{env.MFA_TEST_PG_DSN_UNSET}"}, "", "dsn"},
		{"bad dsn", PostgresStore{DSN: "postgres://gw:s3cret@host:port/db"}, "", "dsn"},
		{"bad schema", PostgresStore{DSN: "{env.MFA_TEST_PG_DSN}", Schema: "a;drop"}, "", `schema "a;drop"`},
		{"negative pool", PostgresStore{DSN: "{env.MFA_TEST_PG_DSN}", MaxConns: -1}, "", "max_conns -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.store
			err := st.Provision(caddy.Context{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Provision: %v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := st.StoreKey(); got != tc.wantKey {
				t.Fatalf("StoreKey = %q, want %q", got, tc.wantKey)
			}
		})
	}
}

// TestPostgresStoreNeedsKey: with no key file beside the database, a
// handler on the postgres store must bring encryption_key or key_file.
func TestPostgresStoreNeedsKey(t *testing.T) {
	st := &PostgresStore{DSN: "postgres://gw:s3cret@db.example/mfa"}
	if err := st.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if st.DefaultKeyFile() != "" {
		t.Fatalf("DefaultKeyFile = %q, want none", st.DefaultKeyFile())
	}
	_, err := (&Gateway{}).loadKey(st)
	if err == nil || !strings.Contains(err.Error(), "set encryption_key") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("loadKey without a key: %v", err)
	}
	path := t.TempDir() + "/key"
	if key, err := (&Gateway{KeyFile: path}).loadKey(st); err != nil || len(key) != 32 {
		t.Fatalf("loadKey with key_file: %d bytes, %v", len(key), err)
	}
}
