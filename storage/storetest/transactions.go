package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

func testUpdateRollback(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error { return tx.PutUser(fullUser("keep")) })
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		if err := tx.PutUser(fullUser("new")); err != nil {
			return err
		}
		if err := tx.PutSession(fullSession("s")); err != nil {
			return err
		}
		if err := tx.PutSetting("k", []byte("v")); err != nil {
			return err
		}
		if err := tx.DeleteUser("keep"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want fn's error", err)
	}
	view(t, s, func(tx storage.Tx) error {
		if _, err := tx.User("new"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("user written by failed Update: %v", err)
		}
		if _, err := tx.Session("s"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("session written by failed Update: %v", err)
		}
		if _, err := tx.Setting("k"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("setting written by failed Update: %v", err)
		}
		if _, err := tx.User("keep"); err != nil {
			return fmt.Errorf("user deleted by failed Update: %v", err)
		}
		return nil
	})
}

func testViewReadOnly(t *testing.T, s storage.Store) {
	err := s.View(context.Background(), func(tx storage.Tx) error {
		return tx.PutUser(fullUser("alice"))
	})
	if err == nil {
		t.Fatal("PutUser in View succeeded")
	}
	if _, err := getUser(t, s, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("View wrote a user: %v", err)
	}
}

func testCanceledContext(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, run := range map[string]func(context.Context, func(storage.Tx) error) error{
		"View": s.View, "Update": s.Update, "Batch": s.Batch,
	} {
		ran := false
		err := run(ctx, func(storage.Tx) error { ran = true; return nil })
		if !errors.Is(err, context.Canceled) || ran {
			t.Errorf("%s with canceled ctx: err = %v, fn ran = %v", name, err, ran)
		}
	}
}

func testBatch(t *testing.T, s storage.Store) {
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("user%02d", i)
			errs <- s.Batch(context.Background(), func(tx storage.Tx) error {
				return tx.PutUser(storage.User{ID: id, TOTPLastStep: int64(i)})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Batch: %v", err)
		}
	}
	got := map[string]int64{}
	view(t, s, func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error { got[u.ID] = u.TOTPLastStep; return nil })
	})
	if len(got) != n {
		t.Fatalf("%d of %d batched writes landed", len(got), n)
	}
	for i := range n {
		if step, ok := got[fmt.Sprintf("user%02d", i)]; !ok || step != int64(i) {
			t.Fatalf("user%02d: step %d, present %v", i, step, ok)
		}
	}
}

func testSweepSessions(t *testing.T, s storage.Store) {
	now := t0().Add(24 * time.Hour)
	sessions := map[string]time.Time{
		"expired":   now.Add(-time.Second),
		"long-gone": now.Add(-30 * 24 * time.Hour),
		"no-expiry": {},
		"at-now":    now, // not before now: kept
		"live":      now.Add(time.Hour),
	}
	update(t, s, func(tx storage.Tx) error {
		for id, exp := range sessions {
			sess := fullSession(id)
			sess.ExpiresAt = exp
			if err := tx.PutSession(sess); err != nil {
				return err
			}
		}
		return tx.PutUser(fullUser("alice")) // users are untouched
	})
	n, err := storage.SweepSessions(context.Background(), s, now)
	if err != nil || n != 3 {
		t.Fatalf("SweepSessions = %d, %v; want 3", n, err)
	}
	var left []string
	view(t, s, func(tx storage.Tx) error {
		return tx.ForEachSession(func(sess storage.Session) error { left = append(left, sess.ID); return nil })
	})
	sort.Strings(left)
	if !reflect.DeepEqual(left, []string{"at-now", "live"}) {
		t.Fatalf("sessions left: %v", left)
	}
	if _, err := getUser(t, s, "alice"); err != nil {
		t.Fatalf("sweep touched users: %v", err)
	}
	if n, err := storage.SweepSessions(context.Background(), s, now); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
}
