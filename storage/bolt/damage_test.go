package bolt_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// goodFile makes a database with some users and returns its bytes.
func goodFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(context.Background(), func(tx storage.Tx) error {
		for i := range 200 {
			if err := tx.PutUser(storage.User{ID: fmt.Sprintf("user%03d", i), TOTPConfirmed: true, TOTPSecret: make([]byte, 64)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// foreignFile is a bbolt file of another program: a bucket, no mfagate schema.
func foreignFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "foreign.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("their_data")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// openBytes writes raw to a database path and opens it, turning a panic
// into a test failure.
func openBytes(t *testing.T, raw []byte) (err error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mfa.db")
	if raw != nil {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open panicked: %v", r)
		}
	}()
	b, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		// Every record must read back, or fail as damaged, without a panic.
		err = b.View(context.Background(), func(tx storage.Tx) error {
			return tx.ForEachUser(func(storage.User) error { return nil })
		})
		_ = b.Close()
	}
	return err
}

// TestOpenRefusesDamagedFiles: an empty, truncated, random or foreign file
// is refused with ErrDamaged and an error naming the file and what to do,
// never a panic and never a new database in its place. Only a missing file
// makes a new one.
func TestOpenRefusesDamagedFiles(t *testing.T) {
	good := goodFile(t)
	random := make([]byte, 16<<10)
	_, _ = rand.Read(random)
	foreign := foreignFile(t)

	for name, raw := range map[string][]byte{
		"zero-length": {},
		"truncated":   good[:len(good)/3],
		"one page":    good[:4096],
		"random":      random,
		"foreign":     foreign,
	} {
		t.Run(name, func(t *testing.T) {
			err := openBytes(t, raw)
			if !errors.Is(err, storage.ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), "mfa.db") || !strings.Contains(err.Error(), "backup") {
				t.Errorf("the error does not name the file and what to do: %v", err)
			}
		})
	}
	t.Run("missing file makes a new database", func(t *testing.T) {
		if err := openBytes(t, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("good file opens", func(t *testing.T) {
		if err := openBytes(t, good); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenDamagedPages flips the header of each page in turn: the file
// opens (the page was free) or is refused as damaged, never a panic, and
// some flip is found.
func TestOpenDamagedPages(t *testing.T) {
	good := goodFile(t)
	const page = 4096
	found := 0
	for p := 2; p*page < len(good); p++ {
		raw := append([]byte(nil), good...)
		for i := p * page; i < p*page+16; i++ {
			raw[i] ^= 0x5a
		}
		err := openBytes(t, raw)
		switch {
		case errors.Is(err, storage.ErrDamaged):
			found++
		case err != nil:
			t.Errorf("page %d: %v, want nil or ErrDamaged", p, err)
		}
	}
	if found == 0 {
		t.Fatal("no flipped page was found damaged")
	}
}

// TestRefusedOpenLeavesNoLock: after a damaged file is refused, the good
// file put back at the same path opens at once. bbolt locks the file while
// opening it, and a lock left behind would make the restore look like
// another process holding the database.
func TestRefusedOpenLeavesNoLock(t *testing.T) {
	good := goodFile(t)
	random := make([]byte, 32<<10)
	_, _ = rand.Read(random)
	cases := map[string][]byte{"random": random, "truncated": good[:len(good)/2], "one page": good[:4096]}
	for p := 2; p*4096 < len(good); p++ {
		raw := append([]byte(nil), good...)
		for i := p * 4096; i < p*4096+16; i++ {
			raw[i] ^= 0x5a
		}
		cases[fmt.Sprintf("page %d flipped", p)] = raw
	}
	for name, raw := range cases {
		path := filepath.Join(t.TempDir(), "mfa.db")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := bolt.Open(path, bolt.Options{}); err == nil {
			_ = b.Close()
		}
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := bolt.Open(path, bolt.Options{Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Errorf("%s, then the good file: %v", name, err)
			continue
		}
		_ = b.Close()
	}
}
