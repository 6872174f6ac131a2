package bolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mfagate/mfagate/storage"
)

var _ storage.Backuper = (*Store)(nil)

// Backup implements storage.Backuper: it writes the database as one read
// transaction sees it, a complete bbolt file, while writers go on (bbolt
// readers never block them). The copy is read from the file through the
// transaction, never by copying the file, which may be mid-write.
func (b *Store) Backup(ctx context.Context, w io.Writer) (n int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	err = b.db.View(func(tx *bbolt.Tx) error {
		if s, ok := w.(storage.BackupSizer); ok {
			s.SetBackupSize(tx.Size())
		}
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// bbolt flattens some write errors to text: keep the cause.
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return n, fmt.Errorf("bolt: backup %s: %w", b.path, err)
	}
	return n, nil
}

// ctxWriter stops a backup whose caller went away (an operator's ^C, a
// dropped connection) rather than holding the read transaction to the end.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Report is what Check found in a good database file.
type Report struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`   // bytes
	Schema      int    `json:"schema"` // the file's layout version
	Users       int    `json:"users"`
	Sessions    int    `json:"sessions"`
	AuditEvents int    `json:"audit_events"`
	Settings    int    `json:"settings"`
}

// maxCheckErrors bounds the page errors a report lists: a badly damaged
// file has one per page.
const maxCheckErrors = 5

// Check verifies a database file without changing it: it opens the file
// read-only (a missing file is an error, not a new database), runs the
// checks Open runs on an existing file, then bbolt's page consistency check
// and the schema version, and counts the records. A file that fails is an
// error wrapping storage.ErrDamaged, naming the file and what is wrong; a
// file open for writing in another process (a running Caddy) is an error
// wrapping storage.ErrLocked.
func Check(path string) (rep Report, err error) {
	defer func() {
		if de, ok := errors.AsType[*damageError](err); ok {
			de.advise = false
		}
	}()
	if path == "" {
		return Report{}, errors.New("bolt: check: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Report{}, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Report{}, fmt.Errorf("bolt: check: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Report{}, fmt.Errorf("bolt: check %s: not a regular file", abs)
	}
	if err := precheck(abs, fi); err != nil {
		return Report{}, err
	}
	db, err := openChecked(abs, defaultLockTimeout, true, true)
	if errors.Is(err, berrors.ErrTimeout) {
		return Report{}, fmt.Errorf("bolt: check %s (waited %v): %w", abs, defaultLockTimeout, storage.ErrLocked)
	}
	if err != nil {
		return Report{}, err
	}
	defer db.Close()
	rep = Report{Path: abs, Size: fi.Size()}
	if err := inspect(db, &rep); err != nil {
		return Report{}, damaged(abs, err)
	}
	return rep, nil
}

// inspect runs bbolt's consistency check, reads the schema version and
// counts the records, turning a fault on a damaged page into an error.
func inspect(db *bbolt.DB, rep *Report) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		n := 0
		// Drain the channel: the checker blocks until every error is taken.
		for e := range tx.Check() {
			if n++; n <= maxCheckErrors {
				errs = append(errs, e)
			}
		}
		if n > 0 {
			return fmt.Errorf("page check found %d problem(s): %w", n, errors.Join(errs...))
		}
		meta := tx.Bucket([]byte(bucketMeta))
		if meta == nil || meta.Get([]byte(keySchema)) == nil {
			// Open takes a file without buckets for a new database; as a
			// backup or a database to keep, it holds nothing.
			return errors.New("it holds no mfagate schema (an empty bbolt file, or one of another program)")
		}
		v, err := parseSchema(meta.Get([]byte(keySchema)))
		if err != nil {
			return err
		}
		rep.Schema = v
		rep.Users = count(tx, bucketUsers)
		rep.Sessions = count(tx, bucketSessions)
		rep.AuditEvents = count(tx, bucketAudit)
		rep.Settings = count(tx, bucketSettings)
		return nil
	})
}

// count is the number of records in a bucket; 0 for a missing one (the
// audit bucket of a version 1 file).
func count(tx *bbolt.Tx, name string) int {
	b := tx.Bucket([]byte(name))
	if b == nil {
		return 0
	}
	return b.Stats().KeyN
}

// InUse reports whether another process holds the database file open (a
// running Caddy), whatever state the file is in: a restore must not replace
// a file under a running server, damaged or not. A missing file is not in
// use.
func InUse(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, fmt.Errorf("bolt: %s: %w", path, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("bolt: %w", err)
	}
	// The lock comes before anything is read: a read-only open of a held
	// file times out, of a free one succeeds or finds it damaged.
	db, err := openChecked(abs, defaultLockTimeout, true, true)
	if errors.Is(err, berrors.ErrTimeout) {
		return true, nil
	}
	if err == nil {
		_ = db.Close()
	}
	return false, nil
}
