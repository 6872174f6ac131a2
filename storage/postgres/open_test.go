package postgres_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/storage/postgres"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://gw:s3cret@db.example:5433/mfa?sslmode=require", "postgres://gw@db.example:5433/mfa"},
		{"host=10.0.0.5 user=gw password=s3cret dbname=mfa", "postgres://gw@10.0.0.5:5432/mfa"},
		{"postgres://gw:s3cret@[::1]:5432/mfa", "postgres://gw@[::1]:5432/mfa"},
	} {
		got, err := postgres.Target(tc.dsn)
		if err != nil || got != tc.want {
			t.Errorf("Target(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
	_, err := postgres.Target("postgres://gw:s3cret@host:notaport/db")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad DSN: err = %v, want an error without the password", err)
	}
}

func TestValidSchema(t *testing.T) {
	for name, ok := range map[string]bool{
		"": true, "mfagate": true, "_x1": true, "a_b_9": true,
		"Mfa": false, "1abc": false, "a-b": false, "a.b": false, `a"b`: false, strings.Repeat("a", 64): false,
	} {
		if err := postgres.ValidSchema(name); (err == nil) != ok {
			t.Errorf("ValidSchema(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// TestOpenUnreachable: a database nobody listens at fails Open at once with
// an error naming the host, never the password.
func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	for _, tc := range []struct{ name, dsn, want string }{
		{"refused", "postgres://gw:s3cret@" + addr + "/mfa?connect_timeout=5", "connect to postgres://gw@" + addr + "/mfa"},
		{"empty", "", "empty dsn"},
		{"bad schema", "postgres://gw:s3cret@" + addr + "/mfa", "schema \"Bad\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := postgres.Options{DSN: tc.dsn}
			if tc.name == "bad schema" {
				opts.Schema = "Bad"
			}
			s, err := postgres.Open(context.Background(), opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("err = %v; want it to name %q and not the password", err, tc.want)
			}
		})
	}
}
