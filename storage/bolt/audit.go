package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// Audit implements storage.Store. The audit log is a bucket of the same
// file, written in the same kinds of transaction; and a storage.Tx of this
// store is a storage.AuditTx too, so an append can commit (or roll back)
// together with the change it records.
func (b *Store) Audit() storage.AuditStore { return auditLog{b} }

// auditLog is a Store's audit log: the store's transactions, typed for
// storage.AuditTx.
type auditLog struct{ s *Store }

var (
	_ storage.AuditStore = auditLog{}
	_ storage.AuditTx    = (*txn)(nil)
)

// View implements storage.AuditStore.
func (a auditLog) View(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.s.view(ctx, func(t *txn) error { return fn(t) })
}

// Update implements storage.AuditStore.
func (a auditLog) Update(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.s.update(ctx, func(t *txn) error { return fn(t) })
}

// Batch implements storage.AuditStore; see Store.Batch.
func (a auditLog) Batch(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.s.batch(ctx, func(t *txn) error { return fn(t) })
}

// Audit records live in their own bucket under a 16-byte key: the record's
// time in Unix nanoseconds, then the bucket's next sequence number, both
// big-endian. bbolt keeps keys sorted bytewise, so the bucket is in time
// order (a reverse cursor walk is newest first) and two records with the
// same time still get distinct keys. A cursor is the key in hex.
const (
	auditKeyLen    = 16
	auditCursorLen = 2 * auditKeyLen
)

// auditMinTime and auditMaxTime bound the times a key can hold: before the
// epoch UnixNano is negative (and would sort after every later record as
// unsigned bytes); past 2262 it overflows. (Functions, not variables, so
// there is no package state to mutate.)
func auditMinTime() time.Time { return time.Unix(0, 0) }
func auditMaxTime() time.Time { return time.Unix(0, math.MaxInt64) }

func auditKey(t time.Time, seq uint64) []byte {
	k := make([]byte, auditKeyLen)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// auditKeyTime is the time encoded in a key's first 8 bytes.
func auditKeyTime(k []byte) (time.Time, error) {
	if len(k) != auditKeyLen {
		return time.Time{}, fmt.Errorf("corrupt record in bucket %q key %x: want a %d-byte key", bucketAudit, k, auditKeyLen)
	}
	n := binary.BigEndian.Uint64(k)
	if n > math.MaxInt64 {
		return time.Time{}, fmt.Errorf("corrupt record in bucket %q key %x: time out of range", bucketAudit, k)
	}
	return time.Unix(0, int64(n)).UTC(), nil
}

// formatAuditCursor names the record at key k for a later ScanAudit.
func formatAuditCursor(k []byte) string { return hex.EncodeToString(k) }

// parseAuditCursor turns a cursor back into the key it names. Cursors come
// back from clients, so anything but exactly a key's hex is refused (and the
// input is not echoed: it may be long or hostile).
func parseAuditCursor(cursor string) ([]byte, error) {
	if len(cursor) != auditCursorLen {
		return nil, fmt.Errorf("cursor of %d characters, want %d hex digits: %w", len(cursor), auditCursorLen, storage.ErrBadCursor)
	}
	k, err := hex.DecodeString(cursor)
	if err != nil {
		return nil, fmt.Errorf("cursor is not hex: %w", storage.ErrBadCursor)
	}
	return k, nil
}

// AppendAudit implements storage.AuditTx.
func (t *txn) AppendAudit(at time.Time, data []byte) error {
	if err := t.appendAudit(at, data); err != nil {
		return fmt.Errorf("bolt: append audit record: %w", err)
	}
	return nil
}

func (t *txn) appendAudit(at time.Time, data []byte) error {
	if at.Before(auditMinTime()) || at.After(auditMaxTime()) {
		return fmt.Errorf("time %v outside the years %d to %d", at, auditMinTime().Year(), auditMaxTime().Year())
	}
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return err
	}
	// NextSequence fails in a read-only transaction, so View cannot append.
	// In a Batch that bbolt re-runs, the sequence is rolled back with the
	// rest of the failed transaction, so keys stay unique.
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(auditKey(at, seq), bytes.Clone(data)) // bbolt holds value until commit
}

// ScanAudit implements storage.AuditTx.
func (t *txn) ScanAudit(before string, fn func(cursor string, t time.Time, data []byte) (bool, error)) error {
	var from []byte
	if before != "" {
		k, err := parseAuditCursor(before)
		if err != nil {
			return fmt.Errorf("bolt: scan audit: %w", err)
		}
		from = k
	}
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return fmt.Errorf("bolt: scan audit: %w", err)
	}
	c := b.Cursor()
	var k, v []byte
	if from == nil {
		k, v = c.Last()
	} else if k, _ = c.Seek(from); k == nil {
		k, v = c.Last() // every record is before the cursor
	} else {
		k, v = c.Prev() // Seek found the cursor's record or the first after it
	}
	for ; k != nil; k, v = c.Prev() {
		at, err := auditKeyTime(k)
		if err != nil {
			return fmt.Errorf("bolt: scan audit: %w", err)
		}
		more, err := fn(formatAuditCursor(k), at, bytes.Clone(v))
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// TrimAudit implements storage.AuditTx.
func (t *txn) TrimAudit(keep int) (int, error) {
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return 0, err
	}
	if !t.tx.Writable() {
		return 0, errors.New("bolt: trim audit records: read-only transaction")
	}
	// Count with a cursor: bucket statistics read the committed pages and
	// miss deletions earlier in this transaction (a prune), which would trim
	// too many.
	c := b.Cursor()
	total := 0
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		total++
	}
	extra := total - max(keep, 0)
	n := 0
	// Re-seek the first key after each delete, as pruneAudit does.
	for k, _ := c.First(); k != nil && n < extra; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return n, fmt.Errorf("bolt: trim audit records: %w", err)
		}
		n++
	}
	return n, nil
}

// PruneAudit implements storage.AuditTx.
func (t *txn) PruneAudit(before time.Time) (int, error) {
	n, err := t.pruneAudit(before)
	if err != nil {
		return n, fmt.Errorf("bolt: prune audit records: %w", err)
	}
	return n, nil
}

func (t *txn) pruneAudit(before time.Time) (int, error) {
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return 0, err
	}
	if !t.tx.Writable() {
		return 0, errors.New("read-only transaction")
	}
	if !before.After(auditMinTime()) {
		return 0, nil // no record can be older
	}
	// Every key of a record older than before sorts below this 8-byte
	// prefix; a key with the prefix itself (same nanosecond) sorts above.
	bound := make([]byte, 8)
	binary.BigEndian.PutUint64(bound, uint64(math.MaxInt64))
	if before.Before(auditMaxTime()) {
		binary.BigEndian.PutUint64(bound, uint64(before.UnixNano()))
	}
	c := b.Cursor()
	n := 0
	// Re-seek the first key after each delete: bbolt's Cursor.Next after
	// Cursor.Delete can skip a key.
	for k, _ := c.First(); k != nil && bytes.Compare(k, bound) < 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
