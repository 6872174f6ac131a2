package faultstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/storetest"
)

func open(t *testing.T) *Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db)
}

// With no fault set, the wrapper is the store it wraps.
func TestConformanceWithoutFaults(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) storage.Store { return open(t) })
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	put := func(tx storage.Tx) error { return tx.PutUser(storage.User{ID: "alice"}) }
	read := func(tx storage.Tx) error { _, err := tx.User("alice"); return err }
	cases := []struct {
		fault               Fault
		view, update, blind bool // true: that call succeeds
	}{
		{0, true, true, true},
		{FailWrites, true, false, false},
		{FailReads, false, false, true}, // a write that reads nothing still goes in
		{SlowWrites, true, true, true},
		{FailWrites | FailReads, false, false, false},
	}
	for _, c := range cases {
		s := open(t)
		if err := s.Update(ctx, put); err != nil {
			t.Fatal(err)
		}
		s.SetDelay(time.Millisecond)
		s.Set(c.fault)
		check := func(what string, ok bool, err error) {
			t.Helper()
			if ok != (err == nil) || (err != nil && !errors.Is(err, ErrInjected)) {
				t.Errorf("fault %b: %s: err %v, want success %v", c.fault, what, err, ok)
			}
		}
		check("view", c.view, s.View(ctx, read))
		check("update that reads", c.update, s.Update(ctx, func(tx storage.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			return put(tx)
		}))
		check("batch that only writes", c.blind, s.Batch(ctx, put))
		s.Set(0)
		if err := s.View(ctx, read); err != nil {
			t.Errorf("fault %b cleared: %v", c.fault, err)
		}
	}
}

// A slow write waits, but gives up with its context.
func TestSlowWriteHonoursContext(t *testing.T) {
	s := open(t)
	s.SetDelay(time.Hour)
	s.Set(SlowWrites)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Update(ctx, func(storage.Tx) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow write past its deadline: %v", err)
	}
}
