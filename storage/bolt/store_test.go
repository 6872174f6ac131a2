package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/storetest"
)

func open(t *testing.T, path string) *bolt.Store {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "mfa.db"))
	})
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	ctx := context.Background()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(ctx, func(tx storage.Tx) error {
		if err := tx.PutUser(storage.User{ID: "alice", TOTPSecret: []byte{1, 2}}); err != nil {
			return err
		}
		if err := tx.PutSession(storage.Session{ID: "s1", User: "alice"}); err != nil {
			return err
		}
		return tx.PutSetting("k", []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b = open(t, path)
	err = b.View(ctx, func(tx storage.Tx) error {
		u, err := tx.User("alice")
		if err != nil || string(u.TOTPSecret) != "\x01\x02" {
			t.Errorf("user after reopen: %+v, %v", u, err)
		}
		if s, err := tx.Session("s1"); err != nil || s.User != "alice" {
			t.Errorf("session after reopen: %+v, %v", s, err)
		}
		if v, err := tx.Setting("k"); err != nil || string(v) != "v" {
			t.Errorf("setting after reopen: %q, %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	open(t, path)
	start := time.Now()
	b2, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		_ = b2.Close()
		t.Fatal("second Open on a held file succeeded")
	}
	if !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v; want ErrLocked naming %s", err, path)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

func TestFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	dir := filepath.Join(t.TempDir(), "data", "mfa")
	path := filepath.Join(dir, "mfa.db")
	b := open(t, path)
	if b.Path() != path {
		t.Fatalf("Path() = %q, want %q", b.Path(), path)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %#o, want %#o", p, got, want)
		}
	}
}

func TestPathIsAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	b := open(t, "rel.db")
	if !filepath.IsAbs(b.Path()) || filepath.Base(b.Path()) != "rel.db" {
		t.Fatalf("Path() = %q", b.Path())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a bolt file ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"empty path", ""},
		{"directory", dir},
		{"not a database", notDB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bolt.Open(tc.path, bolt.Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				_ = b.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99"))
	})
	if b, err := bolt.Open(path, bolt.Options{}); err == nil {
		_ = b.Close()
		t.Fatal("opened a file with a newer schema")
	} else if !strings.Contains(err.Error(), "99") {
		t.Fatalf("err = %v; want it to name the version", err)
	}
}

// rawUpdate writes to the file behind the store's back, as damage would.
func rawUpdate(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		for _, kv := range []struct{ bucket, key, val string }{
			{"users", "bad-json", `{"id":"bad-json","totp_secret":`},
			{"users", "wrong-type", `{"id":"wrong-type","totp_last_step":"x"}`},
			{"users", "other-id", `{"id":"mallory"}`},
			{"sessions", "bad-json", `not json`},
			{"sessions", "null", `null`},
		} {
			if err := tx.Bucket([]byte(kv.bucket)).Put([]byte(kv.key), []byte(kv.val)); err != nil {
				return err
			}
		}
		return nil
	})
	b = open(t, path)

	for _, tc := range []struct {
		name, bucket, key string
		fn                func(storage.Tx) error
	}{
		{"user bad json", "users", "bad-json", func(tx storage.Tx) error { _, err := tx.User("bad-json"); return err }},
		{"user wrong type", "users", "wrong-type", func(tx storage.Tx) error { _, err := tx.User("wrong-type"); return err }},
		{"user id mismatch", "users", "other-id", func(tx storage.Tx) error { _, err := tx.User("other-id"); return err }},
		{"session bad json", "sessions", "bad-json", func(tx storage.Tx) error { _, err := tx.Session("bad-json"); return err }},
		{"session null", "sessions", "null", func(tx storage.Tx) error { _, err := tx.Session("null"); return err }},
		{"list users", "users", "", func(tx storage.Tx) error {
			return tx.ForEachUser(func(storage.User) error { return nil })
		}},
		{"list sessions", "sessions", "", func(tx storage.Tx) error {
			return tx.ForEachSession(func(storage.Session) error { return nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.View(context.Background(), tc.fn)
			if err == nil {
				t.Fatal("corrupt record read without error")
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("corrupt record reported as not found: %v", err)
			}
			if !strings.Contains(err.Error(), tc.bucket) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %v; want it to name bucket %q and key %q", err, tc.bucket, tc.key)
			}
		})
	}

	if _, err := storage.SweepSessions(context.Background(), b, time.Now()); err == nil {
		t.Fatal("sweep over a corrupt session succeeded")
	}
}

func TestTxAfterReturn(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "mfa.db"))
	var leaked storage.Tx
	_ = b.Update(context.Background(), func(tx storage.Tx) error { leaked = tx; return nil })
	if _, err := leaked.User("alice"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("use after return: err = %v", err)
	}
	if err := leaked.PutUser(storage.User{ID: "alice"}); err == nil {
		t.Fatal("PutUser after return succeeded")
	}
	if err := leaked.ForEachSession(func(storage.Session) error { return nil }); err == nil {
		t.Fatal("ForEachSession after return succeeded")
	}
}

func TestClosed(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if err := b.View(context.Background(), func(storage.Tx) error { return nil }); err == nil {
		t.Fatal("View on a closed store succeeded")
	}
}

// TestBoltUpgradeV1 opens a file as schema version 1 wrote it (no audit
// bucket): its records stay readable, the audit log works, and the file is
// marked version 2 so that an older build no longer opens it.
func TestUpgradeV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, kv := range []struct{ bucket, key, val string }{
			{"users", "alice", `{"id":"alice","totp_secret":"AQI=","totp_confirmed":true}`},
			{"sessions", "s1", `{"id":"s1","user":"alice","state":2,"aal":2,"created_at":"2025-01-01T00:00:00Z","last_seen":"2025-01-01T00:00:00Z","expires_at":"2025-01-02T00:00:00Z"}`},
			{"settings", "k", "v"},
			{"meta", "schema", "1"},
		} {
			b, err := tx.CreateBucketIfNotExists([]byte(kv.bucket))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(kv.key), []byte(kv.val)); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}

	b := open(t, path)
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := b.Audit().Update(ctx, func(tx storage.AuditTx) error { return tx.AppendAudit(at, []byte(`{"type":"x"}`)) }); err != nil {
		t.Fatalf("AppendAudit on an upgraded file: %v", err)
	}
	err = b.View(ctx, func(tx storage.Tx) error {
		if u, err := tx.User("alice"); err != nil || !u.TOTPConfirmed || string(u.TOTPSecret) != "\x01\x02" {
			t.Errorf("user after upgrade: %+v, %v", u, err)
		}
		if s, err := tx.Session("s1"); err != nil || s.User != "alice" {
			t.Errorf("session after upgrade: %+v, %v", s, err)
		}
		if v, err := tx.Setting("k"); err != nil || string(v) != "v" {
			t.Errorf("setting after upgrade: %q, %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Audit().View(ctx, func(tx storage.AuditTx) error {
		n := 0
		err := tx.ScanAudit("", func(_ string, got time.Time, data []byte) (bool, error) {
			n++
			if !got.Equal(at) || string(data) != `{"type":"x"}` {
				t.Errorf("audit record after upgrade: %v %q", got, data)
			}
			return true, nil
		})
		if err != nil || n != 1 {
			t.Errorf("ScanAudit after upgrade: %d records, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()

	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); string(v) != "2" {
			t.Errorf("schema after upgrade = %q, want 2", v)
		}
		return nil
	})
}

func TestBadSchemaVersion(t *testing.T) {
	for _, v := range []string{"0", "-1", "two", ""} {
		t.Run(v, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mfa.db")
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket([]byte("meta"))
				if err != nil {
					return err
				}
				return b.Put([]byte("schema"), []byte(v))
			})
			if b, err := bolt.Open(path, bolt.Options{}); err == nil {
				_ = b.Close()
				t.Fatalf("opened a file with schema version %q", v)
			}
		})
	}
}

func TestCorruptAuditKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("audit")).Put([]byte("short"), []byte("{}"))
	})
	b = open(t, path)
	err = b.Audit().View(context.Background(), func(tx storage.AuditTx) error {
		return tx.ScanAudit("", func(string, time.Time, []byte) (bool, error) { return true, nil })
	})
	if err == nil || !strings.Contains(err.Error(), "audit") || !strings.Contains(err.Error(), "73686f7274") {
		t.Fatalf("scan over a corrupt key: err = %v; want it to name the bucket and key", err)
	}
}
