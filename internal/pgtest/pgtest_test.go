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

func TestFindBinaries(t *testing.T) {
	exe := func(t *testing.T, dir string, names ...string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string) // root/path is PATH, root/lib/<v>/bin the Debian layout
		want  string                          // relative to root; "" = not found
	}{
		{"nothing", func(*testing.T, string) {}, ""},
		{"newest debian version", func(t *testing.T, root string) {
			exe(t, filepath.Join(root, "lib/9/bin"), "initdb", "postgres")
			exe(t, filepath.Join(root, "lib/15/bin"), "initdb", "postgres")
			exe(t, filepath.Join(root, "lib/13/bin"), "initdb", "postgres")
		}, "lib/15/bin"},
		{"PATH first", func(t *testing.T, root string) {
			exe(t, filepath.Join(root, "path"), "initdb", "postgres")
			exe(t, filepath.Join(root, "lib/15/bin"), "initdb", "postgres")
		}, "path"},
		{"initdb without postgres", func(t *testing.T, root string) {
			exe(t, filepath.Join(root, "path"), "initdb")
			exe(t, filepath.Join(root, "lib/14/bin"), "postgres")
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			t.Setenv("PATH", filepath.Join(root, "path"))
			got, err := findBinaries(filepath.Join(root, "lib/*/bin"))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("found %s, want none", got)
				}
				return
			}
			if err != nil || got != filepath.Join(root, tc.want) {
				t.Fatalf("findBinaries = %s, %v; want %s", got, err, filepath.Join(root, tc.want))
			}
		})
	}
}

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping the test.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestMissingSkipsOrFailsOnCI(t *testing.T) {
	for _, tc := range []struct {
		ci           string
		skip, failed bool
	}{{"", true, false}, {"false", true, false}, {"true", false, true}} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		missing(r, "no binaries")
		if r.skipped != tc.skip || r.failed != tc.failed {
			t.Errorf("CI=%q: skipped %v failed %v; want %v %v", tc.ci, r.skipped, r.failed, tc.skip, tc.failed)
		}
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
