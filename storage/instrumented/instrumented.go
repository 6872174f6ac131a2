// Package instrumented wraps a storage.Store to time its transactions and
// count its failures, for monitoring. It is engine-neutral and exporter
// neutral: plain atomic counters that the caller reads with Snapshot.
package instrumented

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// Op is one kind of transaction.
type Op uint8

const (
	View Op = iota
	Update
	Batch
	numOps
)

func (o Op) String() string { return [...]string{"view", "update", "batch"}[o] }

// Part is which of the store's interfaces ran the transaction.
type Part uint8

const (
	State Part = iota // storage.Store: users, sessions, settings
	Audit             // storage.AuditStore: the audit log
	numParts
)

func (p Part) String() string { return [...]string{"state", "audit"}[p] }

// Bounds are the latency buckets' upper bounds in seconds: from a read
// served from the page cache to a write waiting on a slow disk's fsync.
func Bounds() []float64 {
	b := bounds()
	return b[:]
}

// bounds is Bounds as an array value: no allocation per observation, and no
// package-level table anyone could change.
func bounds() [numBuckets]float64 {
	return [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
}

const numBuckets = 14

// Store is a storage.Store whose transactions are timed.
type Store struct {
	storage.Store
	audit auditStore
	ops   [numParts][numOps]opStats
}

// opStats is one transaction kind's latency histogram and failures.
type opStats struct {
	buckets [numBuckets + 1]atomic.Uint64 // the last is above every bound
	sumNs   atomic.Int64
	errors  atomic.Uint64
}

// Wrap returns s with its transactions timed, its audit log's included.
func Wrap(s storage.Store) *Store {
	w := &Store{Store: s}
	w.audit = auditStore{inner: s.Audit(), ops: &w.ops[Audit]}
	return w
}

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	return timed(&s.ops[State][View], ctx, fn, s.Store.View)
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return timed(&s.ops[State][Update], ctx, fn, s.Store.Update)
}

// Batch implements storage.Store.
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return timed(&s.ops[State][Batch], ctx, fn, s.Store.Batch)
}

// Backup implements storage.Backuper when the wrapped store does; a copy is
// not a transaction and is not timed.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	b, ok := s.Store.(storage.Backuper)
	if !ok {
		return 0, fmt.Errorf("instrumented: the store cannot copy itself: %w", errors.ErrUnsupported)
	}
	return b.Backup(ctx, w)
}

// Unwrap implements storage.Unwrapper: the optional interfaces of the
// wrapped store (its change feed) stay reachable through storage.FeedOf.
// Feed reads are not timed: they are not the store's transactions.
func (s *Store) Unwrap() storage.Store { return s.Store }

// Audit implements storage.Store: the audit log, timed too.
func (s *Store) Audit() storage.AuditStore { return s.audit }

type auditStore struct {
	inner storage.AuditStore
	ops   *[numOps]opStats
}

func (a auditStore) View(ctx context.Context, fn func(storage.AuditTx) error) error {
	return timed(&a.ops[View], ctx, fn, a.inner.View)
}

func (a auditStore) Update(ctx context.Context, fn func(storage.AuditTx) error) error {
	return timed(&a.ops[Update], ctx, fn, a.inner.Update)
}

func (a auditStore) Batch(ctx context.Context, fn func(storage.AuditTx) error) error {
	return timed(&a.ops[Batch], ctx, fn, a.inner.Batch)
}

// timed runs one transaction through run, recording its duration, and a
// failure when the store failed it. An error that fn itself returned (a
// record not found, a wrong code rolling the transaction back) is the
// caller's outcome, not the store's, and is not counted.
func timed[T any](o *opStats, ctx context.Context, fn func(T) error, run func(context.Context, func(T) error) error) error {
	var fnErr error
	start := time.Now()
	err := run(ctx, func(tx T) error {
		fnErr = fn(tx) // the last run's, when the store runs fn again
		return fnErr
	})
	o.observe(time.Since(start))
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		o.errors.Add(1)
	}
	return err
}

func (o *opStats) observe(d time.Duration) {
	secs := d.Seconds()
	i := 0
	for _, b := range bounds() {
		if secs <= b {
			break
		}
		i++
	}
	o.buckets[i].Add(1)
	o.sumNs.Add(int64(d))
}

// OpSnapshot is one transaction kind's counts.
type OpSnapshot struct {
	Part       Part
	Op         Op
	Buckets    []uint64 // cumulative counts at or under each of Bounds()
	Count      uint64   // every transaction, the ones above the last bound too
	SumSeconds float64
	Errors     uint64 // transactions the store failed
}

// Snapshot reads the counters, one OpSnapshot per part and kind in a fixed
// order.
func (s *Store) Snapshot() []OpSnapshot {
	out := make([]OpSnapshot, 0, int(numParts)*int(numOps))
	for p := range numParts {
		for op := range numOps {
			o := &s.ops[p][op]
			snap := OpSnapshot{Part: p, Op: op, Buckets: make([]uint64, numBuckets), Errors: o.errors.Load()}
			// The count is the buckets' sum, so it is never below the
			// last cumulative bucket however the reads interleave.
			for i := range o.buckets {
				snap.Count += o.buckets[i].Load()
				if i < numBuckets {
					snap.Buckets[i] = snap.Count
				}
			}
			snap.SumSeconds = time.Duration(o.sumNs.Load()).Seconds()
			out = append(out, snap)
		}
	}
	return out
}
