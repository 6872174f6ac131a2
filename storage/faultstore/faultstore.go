// Package faultstore wraps a storage.Store to inject the faults a real disk
// or database has: refused writes (a full disk), refused reads (a damaged
// page, a lost connection) and slow writes. Tests switch the faults on and
// off while the gateway runs, to check that nothing is reported done that
// the store did not take, and that nothing fails open.
package faultstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// ErrInjected is the error every injected fault returns (wrapped).
var ErrInjected = errors.New("faultstore: injected fault")

// Fault is a set of faults to inject.
type Fault uint32

const (
	// FailWrites refuses every Update and Batch before fn runs.
	FailWrites Fault = 1 << iota
	// FailReads fails View, and every read inside Update and Batch.
	FailReads
	// SlowWrites delays every Update and Batch by the store's Delay.
	SlowWrites
)

// Store is a storage.Store with switchable faults. The audit log is passed
// through: its writes are queued and retried off the request path.
type Store struct {
	storage.Store
	faults atomic.Uint32
	delay  atomic.Int64
}

// New wraps s with no faults set.
func New(s storage.Store) *Store { return &Store{Store: s} }

// Set replaces the faults injected from now on; Set(0) clears them.
func (s *Store) Set(f Fault) { s.faults.Store(uint32(f)) }

// SetDelay sets how long SlowWrites delays each write.
func (s *Store) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

func (s *Store) has(f Fault) bool { return Fault(s.faults.Load())&f != 0 }

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	if s.has(FailReads) {
		return ErrInjected
	}
	return s.Store.View(ctx, fn)
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	return s.Store.Update(ctx, s.wrap(fn))
}

// Batch implements storage.Store.
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	return s.Store.Batch(ctx, s.wrap(fn))
}

func (s *Store) write(ctx context.Context) error {
	if s.has(SlowWrites) {
		select {
		case <-time.After(time.Duration(s.delay.Load())):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.has(FailWrites) {
		return ErrInjected
	}
	return nil
}

func (s *Store) wrap(fn func(storage.Tx) error) func(storage.Tx) error {
	return func(tx storage.Tx) error { return fn(readTx{tx, s}) }
}

// readTx fails reads while FailReads is set.
type readTx struct {
	storage.Tx
	s *Store
}

func (t readTx) User(id string) (storage.User, error) {
	if t.s.has(FailReads) {
		return storage.User{}, ErrInjected
	}
	return t.Tx.User(id)
}

func (t readTx) Session(id string) (storage.Session, error) {
	if t.s.has(FailReads) {
		return storage.Session{}, ErrInjected
	}
	return t.Tx.Session(id)
}

func (t readTx) Setting(key string) ([]byte, error) {
	if t.s.has(FailReads) {
		return nil, ErrInjected
	}
	return t.Tx.Setting(key)
}

func (t readTx) ForEachUser(fn func(storage.User) error) error {
	if t.s.has(FailReads) {
		return ErrInjected
	}
	return t.Tx.ForEachUser(fn)
}

func (t readTx) ForEachSession(fn func(storage.Session) error) error {
	if t.s.has(FailReads) {
		return ErrInjected
	}
	return t.Tx.ForEachSession(fn)
}
