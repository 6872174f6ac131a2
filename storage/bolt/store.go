// Package bolt implements storage.Store on one embedded bbolt file, for a
// gateway that runs as a single process.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
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
	// Only a missing file makes a new database. bbolt would take an empty
	// file for a new one, and every enrolled user would sign in with the
	// password alone.
	existed := false
	if fi, err := os.Stat(abs); err == nil {
		existed = true
		if err := precheck(abs, fi); err != nil {
			return nil, err
		}
	}
	db, err := openChecked(abs, timeout, existed, false)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s (waited %v): %w", abs, timeout, storage.ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	return &Store{db: db, path: abs}, nil
}

// precheck refuses an existing file that bbolt would take for a new
// database (an empty one) or fault on (one cut short).
func precheck(path string, fi os.FileInfo) error {
	if fi.Size() == 0 {
		return damaged(path, errors.New("the file is empty"))
	}
	if err := checkLength(path); err != nil {
		return damaged(path, err)
	}
	return nil
}

// damaged is the error for a file that cannot be used as the database, with
// what to do about it.
func damaged(path string, why error) error {
	return &damageError{path: path, why: why, advise: true}
}

// damageError wraps storage.ErrDamaged. Check drops the advice: the file it
// refuses may be a backup rather than the database.
type damageError struct {
	path   string
	why    error
	advise bool
}

func (e *damageError) Error() string {
	msg := fmt.Sprintf("bolt: %s: %v: %v", e.path, storage.ErrDamaged, e.why)
	if e.advise {
		msg += ". Restore the file from a backup, or move it away to start a new, empty database (every user then sets up 2FA again)"
	}
	return msg
}

func (e *damageError) Unwrap() error { return storage.ErrDamaged }

// openChecked opens the file, reads every bucket and record of an existing
// one and checks the schema, and turns bbolt's panics on a damaged file into
// an error. bbolt maps the file into memory, so a file shorter than its own
// header says faults on access: with panic-on-fault that is a panic too.
//
// readOnly opens the file without writing to it (and with a shared lock, so
// it waits on a process that has it open for writing): the checks on an
// existing file run, the schema is left as it is for the caller to read.
func openChecked(path string, timeout time.Duration, existed, readOnly bool) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// bbolt holds its file lock on the file it opens; a panic inside Open
	// never returns the handle that would release it, so the file is kept
	// here to be closed then.
	var file *os.File
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				_ = file.Close()
			}
			db, err = nil, damaged(path, fmt.Errorf("%v", r))
		}
	}()
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, OpenFile: openFile, ReadOnly: readOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, err
	}
	if err != nil {
		if existed {
			return nil, damaged(path, err)
		}
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if existed {
		err = db.View(func(tx *bbolt.Tx) error {
			if err := tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walk(b) }); err != nil {
				return err
			}
			return foreign(tx)
		})
		if err != nil {
			_ = db.Close()
			return nil, damaged(path, err)
		}
	}
	if readOnly {
		return db, nil
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return db, nil
}

// walk reads every record of b and its nested buckets, so that a damaged
// page shows at start rather than under a request.
func walk(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walk(nb)
			}
		}
		return nil
	})
}

// foreign reports a bbolt file of another program: it has buckets, but not
// this program's meta bucket with its schema version. A file with no bucket
// at all was never initialised (a first start cut short) and is taken as new.
func foreign(tx *bbolt.Tx) error {
	n := 0
	_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { n++; return nil })
	if n == 0 {
		return nil
	}
	if m := tx.Bucket([]byte(bucketMeta)); m == nil || m.Get([]byte(keySchema)) == nil {
		return errors.New("it is a bbolt file of another program (no mfagate schema)")
	}
	return nil
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
	v, err := parseSchema(raw)
	if err != nil {
		return err
	}
	if v < schemaVersion {
		// 1 -> 2 only added the audit bucket, created above; no record
		// moves. A later layout change adds its step here.
		return meta.Put([]byte(keySchema), []byte(strconv.Itoa(schemaVersion)))
	}
	return nil
}

// parseSchema reads a stored schema version this build can open: an older
// one is upgraded on open, a newer one refused.
func parseSchema(raw []byte) (int, error) {
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("bad schema version %q in bucket %q", raw, bucketMeta)
	}
	if v > schemaVersion {
		return 0, fmt.Errorf("schema version %d is newer than this build supports (%d)", v, schemaVersion)
	}
	return v, nil
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
//
// A damaged page found while running makes bbolt panic. The panic is the
// transaction's error instead (wrapping storage.ErrDamaged), so the request
// or loop that ran into it fails closed and the process stays up; bbolt
// rolls the transaction back on its way out.
func (b *Store) view(ctx context.Context, fn func(*txn) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer b.recoverDamage(&err)
	return b.db.View(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

func (b *Store) update(ctx context.Context, fn func(*txn) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer b.recoverDamage(&err)
	return b.db.Update(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

func (b *Store) batch(ctx context.Context, fn func(*txn) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A call that fails (or panics) in a batch is run again alone, in this
	// goroutine, where recoverDamage sees its panic.
	defer b.recoverDamage(&err)
	return b.db.Batch(func(btx *bbolt.Tx) error { return run(btx, fn) })
}

func (b *Store) recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("bolt: %s: %w: %v", b.path, storage.ErrDamaged, r)
	}
}

// run calls fn with a txn wrapping btx and invalidates it afterwards: bbolt
// memory is only valid during the transaction, so a txn kept past fn would
// read unmapped pages.
//
// A page beyond the end of a damaged file faults on access; panic-on-fault
// makes that a panic, which the caller's recoverDamage reports.
func run(btx *bbolt.Tx, fn func(*txn) error) error {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	tx := &txn{tx: btx}
	defer func() { tx.tx = nil }()
	return fn(tx)
}
