package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the DSN %s", a)
	}
	for _, dsn := range []string{a, b} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n)
		_ = conn.Close(ctx)
		if err != nil || n != 0 {
			t.Fatalf("%s: %d tables, %v; want a new, empty database", dsn, n, err)
		}
	}
}

func TestFindBinariesDebianLayout(t *testing.T) {
	// Only the Debian layout is under test: keep PATH from finding others.
	t.Setenv("PATH", t.TempDir())
	dir, err := FindBinaries()
	if _, statErr := os.Stat("/usr/lib/postgresql"); statErr != nil {
		if err == nil {
			t.Fatalf("found %s with no /usr/lib/postgresql and an empty PATH", dir)
		}
		return
	}
	if err == nil && filepath.Dir(filepath.Dir(dir)) != "/usr/lib/postgresql" {
		t.Fatalf("found %s, want a /usr/lib/postgresql/<version>/bin", dir)
	}
}

func TestVersionOf(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want int
	}{
		{"/usr/lib/postgresql/15/bin", 15},
		{"/usr/lib/postgresql/9/bin", 9},
		{"/usr/lib/postgresql/beta/bin", 0},
	} {
		if got := versionOf(tc.dir); got != tc.want {
			t.Errorf("versionOf(%s) = %d, want %d", tc.dir, got, tc.want)
		}
	}
}
