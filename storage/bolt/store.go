// Package bolt implements storage.Store on one embedded bbolt file, for a
// gateway that runs as a single process.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mfagate/mfagate/storage"
)

// Bucket names. Each record type has its own bucket, keyed by ID. They are
// strings, not []byte variables, so that no package state can be mutated.
const (
	bucketUsers    = "users"
	bucketSessions = "sessions"
	bucketSettings = "settings"
	bucketMeta     = "meta"
	bucketAudit    = "audit" // added in schema version 2

	keySchema = "schema"
)

// schemaVersion is the layout this code reads and writes, stored in the meta
// bucket so that a future layout change can migrate old files, and so that
// an older binary refuses a file written by a newer one instead of
// misreading it.
//
// History:
//
//	1: users, sessions, settings, meta.
//	2: adds the audit bucket. A version 1 file is upgraded on open, which
//	   only creates the bucket. After that a version 1 build refuses the
//	   file, as it does any newer one: rolling back to it means setting
//	   meta/schema back to 1 (harmless for this change, which it would
//	   simply ignore), a deliberate step rather than a silent one.
const schemaVersion = 2

// defaultLockTimeout bounds the wait for bbolt's file lock. bbolt waits
// forever by default, which would hang a second Caddy process (or a reload
// that forgot to share the handle) instead of telling the operator.
const defaultLockTimeout = time.Second

// Options configures Open.
type Options struct {
	// Timeout is how long to wait for another process to release the
	// file lock before failing with storage.ErrLocked; 0 (or negative)
	// means 1s.
	Timeout time.Duration
}

// Store is a storage.Store in one bbolt file. bbolt allows a single process
// to hold the file, so open it once per process and share it (the Caddy
// module keeps it in a usage pool across config reloads).
type Store struct {
	db   *bbolt.DB
	path string
}

var _ storage.Store = (*Store)(nil)

// Open opens or creates the database file at path with mode 0600, creating
// missing parent directories with mode 0700 (the file holds session and
// recovery-code hashes and sealed secrets). If another process holds the
// file for longer than opts.Timeout, the error wraps storage.ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("bolt: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", abs, err)
	}
	db, err := bbolt.Open(abs, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s (waited %v): %w", abs, timeout, storage.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", abs, err)
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", abs, err)
	}
	return &Store{db: db, path: abs}, nil
}

// initSchema creates every bucket in one transaction, so later transactions
// can assume they exist (and read-only ones need not create them), checks
// the schema version and upgrades an older file in the same transaction, so
// a failed upgrade leaves the file as it was.
func initSchema(tx *bbolt.Tx) error {
	for _, name := range []string{bucketUsers, bucketSessions, bucketSettings, bucketMeta, bucketAudit} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bucketMeta))
	raw := meta.Get([]byte(keySchema))
	if raw == nil {
		return meta.Put([]byte(keySchema), []byte(strconv.Itoa(schemaVersion)))
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return fmt.Errorf("bad schema version %q in bucket %q", raw, bucketMeta)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build supports (%d)", v, schemaVersion)
	}
	if v < schemaVersion {
		// 1 -> 2 only added the audit bucket, created above; no record
		// moves. A later layout change adds its step here.
		return meta.Put([]byte(keySchema), []byte(strconv.Itoa(schemaVersion)))
	}
	return nil
}

// Path returns the absolute path of the database file, a stable key for
// sharing one handle across config reloads.
func (b *Store) Path() string { return b.path }

// View implements storage.Store.
func (b *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	return b.view(ctx, func(t *txn) error { return fn(t) })
}

// Update implements storage.Store.
func (b *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return b.update(ctx, func(t *txn) error { return fn(t) })
}

// Batch implements storage.Store with bbolt's DB.Batch, which groups
// concurrent callers into one transaction and one fsync; if one fn fails,
// the others are retried without it, which is why fn must be idempotent.
func (b *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return b.batch(ctx, func(t *txn) error { return fn(t) })
}

// Close implements storage.Store. Calling it again returns nil.
func (b *Store) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", b.path, err)
	}
	return nil
}

// view, update and batch run fn in bbolt's transactions of those kinds;
// both Store and its audit log go through them.
func (b *Store) view(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

func (b *Store) update(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

func (b *Store) batch(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Batch(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

// run calls fn with a txn wrapping btx and invalidates it afterwards: bbolt
// memory is only valid during the transaction, so a txn kept past fn would
// read unmapped pages.
func run(btx *bbolt.Tx, fn func(*txn) error) error {
	tx := &txn{tx: btx}
	defer func() { tx.tx = nil }()
	return fn(tx)
}
