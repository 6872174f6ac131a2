package instrumented_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/instrumented"
	"github.com/mfagate/mfagate/storage/storetest"
)

func openBolt(t *testing.T) storage.Store {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestConformance: the wrapper changes nothing a caller of the contract
// can see, the audit log (and audit appends inside Update) included.
func TestConformance(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) storage.Store { return instrumented.Wrap(openBolt(t)) })
}

// failing fails every Batch itself, without running fn: a store failure.
type failing struct{ storage.Store }

func (failing) Batch(context.Context, func(storage.Tx) error) error { return errors.New("disk full") }

func op(t *testing.T, s *instrumented.Store, part instrumented.Part, o instrumented.Op) instrumented.OpSnapshot {
	t.Helper()
	for _, x := range s.Snapshot() {
		if x.Part == part && x.Op == o {
			return x
		}
	}
	t.Fatalf("no snapshot for %v %v", part, o)
	return instrumented.OpSnapshot{}
}

// TestCounts: every transaction is timed under its part and kind; only
// failures of the store count as errors, not errors fn returned.
func TestCounts(t *testing.T) {
	ctx := context.Background()
	s := instrumented.Wrap(failing{openBolt(t)})
	noop := func(storage.Tx) error { return nil }
	mine := errors.New("wrong code")
	for range 3 {
		if err := s.View(ctx, noop); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx storage.Tx) error { return mine }); !errors.Is(err, mine) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if err := s.View(ctx, func(tx storage.Tx) error {
		_, err := tx.User("nobody")
		return err
	}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("View = %v, want not found", err)
	}
	if err := s.Batch(ctx, noop); err == nil {
		t.Fatal("the failing Batch succeeded")
	}
	if err := s.Audit().Update(ctx, func(tx storage.AuditTx) error { return tx.AppendAudit(time.Now(), []byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		part          instrumented.Part
		op            instrumented.Op
		count, errors uint64
	}{
		{instrumented.State, instrumented.View, 4, 0},
		{instrumented.State, instrumented.Update, 1, 0},
		{instrumented.State, instrumented.Batch, 1, 1},
		{instrumented.Audit, instrumented.View, 0, 0},
		{instrumented.Audit, instrumented.Update, 1, 0},
		{instrumented.Audit, instrumented.Batch, 0, 0},
	} {
		got := op(t, s, tc.part, tc.op)
		if got.Count != tc.count || got.Errors != tc.errors {
			t.Errorf("%v %v: %d transactions, %d errors; want %d, %d", tc.part, tc.op, got.Count, got.Errors, tc.count, tc.errors)
		}
		if len(got.Buckets) != len(instrumented.Bounds()) {
			t.Fatalf("%d buckets for %d bounds", len(got.Buckets), len(instrumented.Bounds()))
		}
		for i := 1; i < len(got.Buckets); i++ {
			if got.Buckets[i] < got.Buckets[i-1] {
				t.Fatalf("%v %v: buckets not cumulative: %v", tc.part, tc.op, got.Buckets)
			}
		}
		if last := got.Buckets[len(got.Buckets)-1]; last > got.Count || (tc.count > 0 && got.SumSeconds <= 0) {
			t.Errorf("%v %v: last bucket %d of %d, sum %v", tc.part, tc.op, last, got.Count, got.SumSeconds)
		}
	}
}

// TestBackupPassedThrough: wrapping keeps the store's backup, and a store
// without one says so with errors.ErrUnsupported.
func TestBackupPassedThrough(t *testing.T) {
	var buf bytes.Buffer
	n, err := instrumented.Wrap(openBolt(t)).Backup(context.Background(), &buf)
	if err != nil || n == 0 || int64(buf.Len()) != n {
		t.Fatalf("backup through the wrapper: %d bytes (%d written), %v", n, buf.Len(), err)
	}
	if _, err := instrumented.Wrap(failing{openBolt(t)}).Backup(context.Background(), &buf); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("backup of a store that cannot copy itself: %v", err)
	}
}
