package storage

import (
	"context"
	"time"
)

// AuditStore keeps the audit log: opaque records in time order, appended in
// batches off the request path, read newest first a page at a time, and
// pruned by age. It is an interface of its own, apart from Store, so that a
// networked deployment can keep the log where append-only data belongs (its
// own table or service) and package audit depends on nothing else.
//
// The transaction methods follow Store's (see "Transactions" there): View is
// read-only, Update is serialisable and all or nothing, and Batch may
// combine callers and run fn more than once. fn may run more than once in
// both Update and Batch, so it must be idempotent and have no effect outside
// the transaction.
type AuditStore interface {
	// View runs fn in a read-only transaction. Writes inside fn fail.
	View(ctx context.Context, fn func(AuditTx) error) error

	// Update runs fn in a read-write transaction: if fn returns an error,
	// nothing it wrote is kept and that error is returned.
	Update(ctx context.Context, fn func(AuditTx) error) error

	// Batch is Update for many small concurrent writes; see Store.Batch.
	Batch(ctx context.Context, fn func(AuditTx) error) error
}

// AuditTx is one audit log transaction. Data passed in is copied and data
// handed to a scan is the caller's, as with Tx. An AuditTx is valid only
// until its fn returns and must not be shared between goroutines.
//
// A store whose audit log shares its database may also make the Tx it
// passes to Store's fn implement AuditTx, so that an event can be appended
// atomically with the change it records; those appends then commit or roll
// back with the rest of that transaction. Callers must not count on it:
// check with a type assertion.
type AuditTx interface {
	// AppendAudit stores one audit record at time t. Records are opaque
	// bytes (package audit stores JSON) kept in time order; records with
	// the same t are kept in the order they were appended and never
	// collide. t must lie between the Unix epoch and the year 2262 (the
	// range of int64 Unix nanoseconds).
	AppendAudit(t time.Time, data []byte) error
	// ScanAudit calls fn for audit records newest first, starting strictly
	// before the record named by before ("" = start at the newest), until
	// fn returns false or an error (which ScanAudit returns). cursor names
	// the record passed to fn: opaque text that a later ScanAudit, even in
	// another transaction, can start from, so a reader can page; it stays
	// valid after the record is pruned. A cursor this store did not issue
	// fails with an error wrapping ErrBadCursor. data is the caller's copy.
	// fn must not write audit records (append or prune) during the scan.
	ScanAudit(before string, fn func(cursor string, t time.Time, data []byte) (bool, error)) error
	// PruneAudit deletes the audit records older than t (strictly) and
	// returns how many.
	PruneAudit(t time.Time) (int, error)
	// TrimAudit deletes the oldest audit records until at most keep are
	// left, and returns how many it deleted.
	TrimAudit(keep int) (int, error)
}
