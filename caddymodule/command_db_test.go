package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// runMFA runs `caddy mfa args...` in-process and returns what it printed.
func runMFA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "mfa", SilenceErrors: true}
	mfaCommands(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// dbWithUsers writes a database file holding the given users.
func dbWithUsers(t *testing.T, path string, users ...string) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(tx storage.Tx) error {
		for _, u := range users {
			if err := tx.PutUser(storage.User{ID: u, TOTPConfirmed: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func users(t *testing.T, path string) []string {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	err = st.View(context.Background(), func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error { ids = append(ids, u.ID); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// names lists dir's entries.
func names(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return strings.Join(n, " ")
}

// TestDBRestoreOffline: a checked backup replaces the database through a
// temporary file, the old file kept beside it; a damaged backup or a held
// database changes nothing.
func TestDBRestoreOffline(t *testing.T) {
	dir := t.TempDir()
	backup, db := filepath.Join(dir, "backup.db"), filepath.Join(dir, "mfagate.db")
	dbWithUsers(t, backup, "alice")
	dbWithUsers(t, db, "bob")

	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runMFA(t, "db", "restore", "--from", damaged, "--db", db); err == nil || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("restore of a damaged backup: %v\n%s", err, out)
	}
	held, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runMFA(t, "db", "restore", "--from", backup, "--db", db)
	_ = held.Close()
	if err == nil || !strings.Contains(err.Error(), "stop Caddy first") {
		t.Fatalf("restore over a held database: %v\n%s", err, out)
	}
	if got := names(t, dir); got != "backup.db damaged.db mfagate.db" {
		t.Fatalf("refused restores left files behind: %s", got)
	}
	if u := users(t, db); len(u) != 1 || u[0] != "bob" {
		t.Fatalf("refused restores changed the database: users %v", u)
	}

	out, err = runMFA(t, "db", "restore", "--from", backup, "--db", db)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if u := users(t, db); len(u) != 1 || u[0] != "alice" {
		t.Fatalf("after the restore: users %v, want alice", u)
	}
	kept, _ := filepath.Glob(db + ".bak-*")
	if len(kept) != 1 || !strings.Contains(out, kept[0]) {
		t.Fatalf("the old file: %v; output:\n%s", kept, out)
	}
	if u := users(t, kept[0]); len(u) != 1 || u[0] != "bob" {
		t.Fatalf("the kept file holds %v, want bob", u)
	}
	if got := names(t, dir); strings.Contains(got, ".tmp-") {
		t.Fatalf("a temporary file was left: %s", got)
	}

	fresh := filepath.Join(dir, "new", "mfagate.db")
	if err := os.Mkdir(filepath.Dir(fresh), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := runMFA(t, "db", "restore", "--from", backup, "--db", fresh); err != nil || strings.Contains(out, "kept") {
		t.Fatalf("restore to a new path: %v\n%s", err, out)
	}
	if u := users(t, fresh); len(u) != 1 || u[0] != "alice" {
		t.Fatalf("restored to a new path: users %v", u)
	}
}

// TestDBCheckCommand: a good file's counts; a damaged one fails naming the
// file; a held one says to take a backup.
func TestDBCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	dbWithUsers(t, good, "alice", "bob", "carol")
	out, err := runMFA(t, "db", "check", good, "--json")
	if err != nil || !strings.Contains(out, `"users": 3`) {
		t.Fatalf("check of a good file: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.db")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runMFA(t, "db", "check", bad); !errors.Is(err, storage.ErrDamaged) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("check of a damaged file: %v", err)
	}
	held, err := bolt.Open(good, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := runMFA(t, "db", "check", good); err == nil || !strings.Contains(err.Error(), "db backup") {
		t.Fatalf("check of a held file: %v", err)
	}
}

// TestDBBackupRefusesExistingFile: without --force an existing file is
// left alone, before Caddy is even asked.
func TestDBBackupRefusesExistingFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runMFA(t, "db", "backup", "--out", out, "--address", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatalf("the existing file was changed: %q", b)
	}
}
