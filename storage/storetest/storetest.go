// Package storetest is the conformance suite every storage.Store (and
// storage.AuditStore) implementation must pass, so that the gateway core
// behaves the same on the embedded bbolt store and on any future networked
// store.
package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// RunConformance runs the suite, the audit log's (RunAuditConformance, on
// Store.Audit) included. open must return a new, empty store for the calling
// (sub)test and arrange for it to be closed, typically with t.Cleanup; each
// subtest calls it once.
func RunConformance(t *testing.T, open func(t *testing.T) storage.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"User", testUser},
		{"Session", testSession},
		{"ForEach", testForEach},
		{"ForEachDeleteDuringIteration", testForEachDelete},
		{"Settings", testSettings},
		{"UpdateRollback", testUpdateRollback},
		{"ViewReadOnly", testViewReadOnly},
		{"Copies", testCopies},
		{"EmptyID", testEmptyID},
		{"CanceledContext", testCanceledContext},
		{"Batch", testBatch},
		{"SweepSessions", testSweepSessions},
		{"ReadYourWrites", testReadYourWrites},
		{"LostUpdate", testLostUpdate},
		{"BatchRetry", testBatchRetry},
		{"ConcurrentUser", testConcurrentUser},
		{"AuditApart", testAuditApart},
		{"AuditInUpdate", testAuditInUpdate},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	t.Run("Audit", func(t *testing.T) {
		RunAuditConformance(t, func(t *testing.T) storage.AuditStore { return open(t).Audit() })
	})
}

// RunAuditConformance runs the audit log's part of the suite on its own, for
// an AuditStore implemented apart from any Store. open must return a new,
// empty log for the calling (sub)test and arrange for it to be closed.
func RunAuditConformance(t *testing.T, open func(t *testing.T) storage.AuditStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, storage.AuditStore)
	}{
		{"Order", testAuditOrder},
		{"Paging", testAuditPaging},
		{"CursorAfterPrune", testAuditCursorAfterPrune},
		{"BadCursor", testAuditBadCursor},
		{"Stop", testAuditStop},
		{"Prune", testAuditPrune},
		{"Copies", testAuditCopies},
		{"Transactions", testAuditTransactions},
		{"TimeRange", testAuditTimeRange},
		{"ReadYourWrites", testAuditReadYourWrites},
		{"BatchRetry", testAuditBatchRetry},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// t0 is the suite's reference time. It has whole-second precision so that
// stores with coarser timestamps (SQL microseconds) still compare equal.
func t0() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC) }

func fullUser(id string) storage.User {
	return storage.User{
		ID:             id,
		TOTPSecret:     []byte{1, 0xff, 3, 0},
		TOTPConfirmed:  true,
		TOTPLastStep:   58_000_123,
		RecoveryHashes: [][]byte{{0xaa, 0xbb}, {0xcc, 0}},
		PendingCodes:   []byte("sealed codes"),
		EnrolledAt:     t0(),
		LastSignInAt:   t0().Add(time.Hour),
		CreatedAt:      t0().Add(-time.Hour),
		UpdatedAt:      t0().Add(2 * time.Hour),
		Email:          id + "@example.com",
	}
}

func fullSession(id string) storage.Session {
	return storage.Session{
		ID:          id,
		User:        "alice",
		State:       2,
		AAL:         2,
		MustEnrol:   true,
		Bindings:    []storage.Binding{{Name: "app_sess", Hash: []byte{9, 8, 7}}, {Name: "app_csrf", Hash: []byte{6}}},
		HeldCookies: []byte("sealed cookies"),
		Next:        "/dashboard?tab=1",
		CreatedAt:   t0(),
		AuthAt:      t0().Add(time.Minute),
		LastSeen:    t0().Add(2 * time.Minute),
		ExpiresAt:   t0().Add(12 * time.Hour),
		RemoteAddr:  "127.0.0.1",
		UserAgent:   "Mozilla/5.0",
	}
}

// equal compares records after putting their times in UTC, since a store may
// hand back an equal instant in another location.
func equal[R storage.User | storage.Session](a, b R) bool {
	return reflect.DeepEqual(utc(a), utc(b))
}

func utc[R storage.User | storage.Session](r R) any {
	switch r := any(r).(type) {
	case storage.User:
		r.EnrolledAt, r.LastSignInAt = r.EnrolledAt.UTC(), r.LastSignInAt.UTC()
		r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		return r
	case storage.Session:
		r.CreatedAt, r.AuthAt = r.CreatedAt.UTC(), r.AuthAt.UTC()
		r.LastSeen, r.ExpiresAt = r.LastSeen.UTC(), r.ExpiresAt.UTC()
		return r
	}
	panic("unreachable")
}

func update(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func getUser(t *testing.T, s storage.Store, id string) (u storage.User, err error) {
	t.Helper()
	view(t, s, func(tx storage.Tx) error {
		u, err = tx.User(id)
		return nil
	})
	return u, err
}

func getSession(t *testing.T, s storage.Store, id string) (sess storage.Session, err error) {
	t.Helper()
	view(t, s, func(tx storage.Tx) error {
		sess, err = tx.Session(id)
		return nil
	})
	return sess, err
}
