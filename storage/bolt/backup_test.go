package bolt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// flipRoots damages the header of the root bucket's page named by each meta
// page: a page every reader of the file needs.
func flipRoots(t *testing.T, good []byte) []byte {
	t.Helper()
	const page = 4096
	raw := append([]byte(nil), good...)
	for m := range 2 {
		root := binary.LittleEndian.Uint64(raw[m*page+16+16:]) // page header, then magic..flags
		if root < 2 || int(root+1)*page > len(raw) {
			t.Fatalf("meta %d: root page %d out of range", m, root)
		}
		for i := int(root) * page; i < int(root)*page+16; i++ {
			raw[i] ^= 0x5a
		}
	}
	return raw
}

// emptyBolt is a bbolt file with no bucket at all: Open takes it for a new
// database, but it holds nothing to keep or restore.
func emptyBolt(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
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

// TestCheck: a good file gets its counts; a damaged, foreign or empty one is
// refused with ErrDamaged naming the file, a missing one is an error and is
// not created; the file is never changed, and nothing panics.
func TestCheck(t *testing.T) {
	good := goodFile(t)
	random := make([]byte, 16<<10)
	_, _ = rand.Read(random)
	for _, tc := range []struct {
		name    string
		raw     []byte // nil: no file
		wantErr error  // nil: a good report
	}{
		{"good file", good, nil},
		{"zero-length", []byte{}, storage.ErrDamaged},
		{"truncated", good[:len(good)/3], storage.ErrDamaged},
		{"one page", good[:4096], storage.ErrDamaged},
		{"random bytes", random, storage.ErrDamaged},
		{"flipped root page", flipRoots(t, good), storage.ErrDamaged},
		{"foreign bbolt file", foreignFile(t), storage.ErrDamaged},
		{"bbolt file without buckets", emptyBolt(t), storage.ErrDamaged},
		{"missing file", nil, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mfa.db")
			var before os.FileInfo
			if tc.raw != nil {
				if err := os.WriteFile(path, tc.raw, 0o600); err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(path, old, old); err != nil {
					t.Fatal(err)
				}
				before, _ = os.Stat(path)
			}
			rep, err := checkNoPanic(t, path)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.wantErr == nil:
				want := bolt.Report{Path: path, Size: int64(len(good)), Schema: 2, Users: 200}
				if rep != want {
					t.Fatalf("report %+v, want %+v", rep, want)
				}
			case !errors.Is(err, tc.wantErr):
				t.Fatalf("Check: %v, want %v", err, tc.wantErr)
			case !strings.Contains(err.Error(), path):
				t.Errorf("the error does not name the file: %v", err)
			}
			if tc.raw == nil {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Check created the missing file: %v", err)
				}
				return
			}
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			if !bytes.Equal(raw, tc.raw) || !after.ModTime().Equal(before.ModTime()) {
				t.Fatalf("Check changed the file (%d bytes, was %d; mtime %v, was %v)",
					len(raw), len(tc.raw), after.ModTime(), before.ModTime())
			}
		})
	}
}

func checkNoPanic(t *testing.T, path string) (rep bolt.Report, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Check panicked: %v", r)
		}
	}()
	return bolt.Check(path)
}

// TestCheckFlippedPages: Check refuses every file Open refuses (it runs
// the same checks, and more), and never panics.
func TestCheckFlippedPages(t *testing.T) {
	good := goodFile(t)
	const page = 4096
	refused := 0
	for p := 2; p*page < len(good); p++ {
		raw := append([]byte(nil), good...)
		for i := p * page; i < p*page+16; i++ {
			raw[i] ^= 0x5a
		}
		openErr := openBytes(t, raw)
		path := filepath.Join(t.TempDir(), "mfa.db")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := checkNoPanic(t, path)
		if err != nil && !errors.Is(err, storage.ErrDamaged) {
			t.Errorf("page %d: Check: %v, want nil or ErrDamaged", p, err)
		}
		if openErr != nil && err == nil {
			t.Errorf("page %d: Open refuses the file (%v) but Check passes it", p, openErr)
		}
		if err != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no flipped page was found damaged")
	}
}

// TestCheckLockedFile: a file open in another handle (a running Caddy) is
// reported as locked, not damaged, within the lock timeout.
func TestCheckLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	open(t, path)
	start := time.Now()
	_, err := bolt.Check(path)
	if !errors.Is(err, storage.ErrLocked) || errors.Is(err, storage.ErrDamaged) {
		t.Fatalf("Check of a held file: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

// TestInUse: a file held by a store is in use; a free one is not, damaged
// or missing.
func TestInUse(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held.db")
	open(t, held)
	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	free := filepath.Join(dir, "free.db")
	if err := os.WriteFile(free, goodFile(t), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{held: true, damaged: false, free: false, filepath.Join(dir, "missing.db"): false} {
		if got, err := bolt.InUse(path); got != want || err != nil {
			t.Errorf("InUse(%s) = %v, %v; want %v", filepath.Base(path), got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("InUse created the missing file: %v", err)
	}
}

// slowSizer is a backup destination that records the announced size and
// writes slowly, so writers have time to commit while the backup runs.
type slowSizer struct {
	bytes.Buffer
	size  int64
	delay time.Duration
}

func (s *slowSizer) SetBackupSize(n int64) { s.size = n }

func (s *slowSizer) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.Buffer.Write(p)
}

// TestBackupWhileWriting: a backup taken while writers commit is a good
// database file holding every record committed before it started, and the
// writers are not held up while it runs.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	st := open(t, filepath.Join(t.TempDir(), "live.db"))
	secret := bytes.Repeat([]byte{7}, 1024)
	err := st.Update(ctx, func(tx storage.Tx) error {
		for i := range 300 {
			if err := tx.PutUser(storage.User{ID: fmt.Sprintf("seed%03d", i), TOTPSecret: secret, TOTPConfirmed: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		committed []string // users whose Update has returned
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		writes    atomic.Int64
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%05d", w, i)
				err := st.Update(ctx, func(tx storage.Tx) error {
					if err := tx.PutUser(storage.User{ID: id, TOTPSecret: secret}); err != nil {
						return err
					}
					return tx.PutSession(storage.Session{ID: "s-" + id, User: id})
				})
				if err != nil {
					t.Errorf("write %s: %v", id, err)
					return
				}
				writes.Add(1)
				mu.Lock()
				committed = append(committed, id)
				mu.Unlock()
			}
		}()
	}
	for writes.Load() < 10 {
		time.Sleep(time.Millisecond)
	}

	mu.Lock()
	before := append([]string(nil), committed...)
	mu.Unlock()
	startWrites := writes.Load()
	dst := &slowSizer{delay: 5 * time.Millisecond}
	n, err := st.Backup(ctx, dst)
	during := writes.Load() - startWrites
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(dst.Len()) || dst.size != n {
		t.Fatalf("Backup returned %d bytes, wrote %d, announced %d", n, dst.Len(), dst.size)
	}
	if during == 0 {
		t.Fatal("no writer committed while the backup ran: it blocked them")
	}

	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, dst.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := bolt.Check(path)
	if err != nil {
		t.Fatalf("Check of the backup: %v", err)
	}
	if rep.Users < 300+len(before) || rep.Sessions < len(before) || rep.Users-300 != rep.Sessions {
		t.Fatalf("backup report %+v: want at least %d users and %d sessions, one session per written user", rep, 300+len(before), len(before))
	}
	b := open(t, path)
	err = b.View(ctx, func(tx storage.Tx) error {
		for _, id := range before {
			if _, err := tx.User(id); err != nil {
				return fmt.Errorf("user %s committed before the backup: %w", id, err)
			}
			if _, err := tx.Session("s-" + id); err != nil {
				return fmt.Errorf("session of %s committed before the backup: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup of %d bytes: %d users, %d writes committed during it", n, rep.Users, during)
}

// TestBackupCanceled: a backup whose caller is gone stops with the
// context's error instead of writing the rest.
func TestBackupCanceled(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "mfa.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := st.Backup(ctx, io.Discard); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("Backup with a canceled context: %d bytes, %v", n, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	w := cancelAfter{cancel: cancel}
	if _, err := st.Backup(ctx, &w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup canceled mid-way: %v, want context.Canceled", err)
	}
	if w.n != 1 {
		t.Fatalf("%d writes after the cancel reached the writer", w.n-1)
	}
}

// cancelAfter cancels its context on the first write.
type cancelAfter struct {
	cancel func()
	n      int
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n++
	c.cancel()
	return len(p), nil
}
