package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// auditRec is one record as ScanAudit reported it.
type auditRec struct {
	cursor string
	t      time.Time
	data   string
}

func auditUpdate(t *testing.T, s storage.AuditStore, fn func(storage.AuditTx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func auditView(t *testing.T, s storage.AuditStore, fn func(storage.AuditTx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func appendAudit(t *testing.T, s storage.AuditStore, at time.Time, data string) {
	t.Helper()
	auditUpdate(t, s, func(tx storage.AuditTx) error { return tx.AppendAudit(at, []byte(data)) })
}

// scanAudit returns up to max records (all if max <= 0) before cursor.
func scanAudit(t *testing.T, s storage.AuditStore, before string, max int) []auditRec {
	t.Helper()
	var got []auditRec
	auditView(t, s, func(tx storage.AuditTx) error {
		got = got[:0]
		return tx.ScanAudit(before, func(c string, at time.Time, data []byte) (bool, error) {
			got = append(got, auditRec{c, at, string(data)})
			return max <= 0 || len(got) < max, nil
		})
	})
	return got
}

func dataOf(recs []auditRec) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.data
	}
	return out
}

func testAuditOrder(t *testing.T, s storage.AuditStore) {
	if got := scanAudit(t, s, "", 0); len(got) != 0 {
		t.Fatalf("empty store scanned %d records", len(got))
	}
	// Appended out of time order, some in one transaction, some sharing a
	// time: the scan is by time, newest first, and same-time records
	// come newest-appended first.
	appendAudit(t, s, t0().Add(2*time.Second), "c")
	appendAudit(t, s, t0(), "a")
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		for _, d := range []string{"d1", "d2", "d3"} {
			if err := tx.AppendAudit(t0().Add(3*time.Second), []byte(d)); err != nil {
				return err
			}
		}
		return tx.AppendAudit(t0().Add(time.Second), []byte("b"))
	})
	appendAudit(t, s, t0().Add(3*time.Second), "d4")
	appendAudit(t, s, t0().Add(time.Hour), "") // empty data is a record too

	got := scanAudit(t, s, "", 0)
	want := []string{"", "d4", "d3", "d2", "d1", "c", "b", "a"}
	if !reflect.DeepEqual(dataOf(got), want) {
		t.Fatalf("scan order %q, want %q", dataOf(got), want)
	}
	wantT := []time.Duration{time.Hour, 3, 3, 3, 3, 2, 1, 0}
	seen := map[string]bool{}
	for i, r := range got {
		d := wantT[i]
		if d < time.Hour {
			d *= time.Second
		}
		if !r.t.Equal(t0().Add(d)) {
			t.Errorf("record %q at %v, want %v", r.data, r.t, t0().Add(d))
		}
		if r.cursor == "" || seen[r.cursor] {
			t.Errorf("record %q: empty or repeated cursor %q", r.data, r.cursor)
		}
		seen[r.cursor] = true
	}
}

func testAuditPaging(t *testing.T, s storage.AuditStore) {
	const n, page = 25, 10
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		for i := range n {
			if err := tx.AppendAudit(t0().Add(time.Duration(i)*time.Second), []byte(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	var all []string
	cursor, pages := "", 0
	for {
		got := scanAudit(t, s, cursor, page)
		if len(got) == 0 {
			break
		}
		pages++
		all = append(all, dataOf(got)...)
		cursor = got[len(got)-1].cursor
		// A record newer than every page so far must not show up in a
		// later page (the cursor is a position, not an offset).
		appendAudit(t, s, t0().Add(time.Hour+time.Duration(pages)*time.Second), "late")
	}
	var want []string
	for i := n - 1; i >= 0; i-- {
		want = append(want, fmt.Sprint(i))
	}
	if pages != 3 || !reflect.DeepEqual(all, want) {
		t.Fatalf("%d pages of %q, want 3 pages of %q", pages, all, want)
	}

	// Starting from the oldest record's cursor finds nothing; from the
	// newest, everything but it.
	if got := scanAudit(t, s, cursor, 0); len(got) != 0 {
		t.Fatalf("scan before the oldest record: %q", dataOf(got))
	}
	newest := scanAudit(t, s, "", 1)
	if got := scanAudit(t, s, newest[0].cursor, 0); len(got) != n+pages-1 {
		t.Fatalf("scan before the newest record: %d records, want %d", len(got), n+pages-1)
	}
}

func testAuditCursorAfterPrune(t *testing.T, s storage.AuditStore) {
	for i := range 5 {
		appendAudit(t, s, t0().Add(time.Duration(i)*time.Second), fmt.Sprint(i))
	}
	page := scanAudit(t, s, "", 2) // 4, 3
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		_, err := tx.PruneAudit(t0().Add(4 * time.Second)) // removes 0..3, the cursor's record too
		return err
	})
	appendAudit(t, s, t0().Add(2500*time.Millisecond), "new")
	if got := scanAudit(t, s, page[1].cursor, 0); !reflect.DeepEqual(dataOf(got), []string{"new"}) {
		t.Fatalf("scan from a pruned record's cursor: %q, want [new]", dataOf(got))
	}
}

func testAuditBadCursor(t *testing.T, s storage.AuditStore) {
	appendAudit(t, s, t0(), "a")
	good := scanAudit(t, s, "", 1)[0].cursor
	for _, tc := range []struct{ name, cursor string }{
		{"not a cursor", "not-a-cursor"},
		{"truncated", good[:len(good)-1]},
		{"extended", good + "0"},
		{"doubled", good + good},
		{"space", " " + good[1:]},
		{"nul", "\x00"},
		{"invalid utf-8", "\xff\xfe"},
		{"huge", string(make([]byte, 1<<16))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			err := s.View(context.Background(), func(tx storage.AuditTx) error {
				return tx.ScanAudit(tc.cursor, func(string, time.Time, []byte) (bool, error) {
					called = true
					return true, nil
				})
			})
			if !errors.Is(err, storage.ErrBadCursor) || called {
				t.Fatalf("ScanAudit(%.40q): err = %v, fn called = %v; want ErrBadCursor", tc.cursor, err, called)
			}
		})
	}
}

func testAuditStop(t *testing.T, s storage.AuditStore) {
	for i := range 3 {
		appendAudit(t, s, t0().Add(time.Duration(i)*time.Second), fmt.Sprint(i))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.View(context.Background(), func(tx storage.AuditTx) error {
		return tx.ScanAudit("", func(string, time.Time, []byte) (bool, error) { calls++; return true, stop })
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ScanAudit with failing fn: err = %v after %d calls", err, calls)
	}
	calls = 0
	auditView(t, s, func(tx storage.AuditTx) error {
		return tx.ScanAudit("", func(string, time.Time, []byte) (bool, error) { calls++; return false, nil })
	})
	if calls != 1 {
		t.Fatalf("fn returning false: %d calls, want 1", calls)
	}
}

func testAuditPrune(t *testing.T, s storage.AuditStore) {
	now := t0().Add(90 * 24 * time.Hour)
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		for _, r := range []struct {
			at   time.Time
			data string
		}{
			{now.Add(-100 * 24 * time.Hour), "old1"},
			{now.Add(-time.Second), "old2"},
			{now.Add(-time.Nanosecond), "old3"},
			{now, "at-now"}, // not older than now: kept
			{now, "at-now2"},
			{now.Add(time.Nanosecond), "new"},
		} {
			if err := tx.AppendAudit(r.at, []byte(r.data)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		at   time.Time
		want int
	}{
		{"before everything", now.Add(-101 * 24 * time.Hour), 0},
		{"epoch", time.Unix(0, 0), 0},
		{"old ones", now, 3},
		{"again", now, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int
			auditUpdate(t, s, func(tx storage.AuditTx) error { var err error; n, err = tx.PruneAudit(tc.at); return err })
			if n != tc.want {
				t.Fatalf("PruneAudit = %d, want %d", n, tc.want)
			}
		})
	}
	if got := dataOf(scanAudit(t, s, "", 0)); !reflect.DeepEqual(got, []string{"new", "at-now2", "at-now"}) {
		t.Fatalf("left after prune: %q", got)
	}
	var n int
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		var err error
		n, err = tx.PruneAudit(now.Add(24 * time.Hour))
		return err
	})
	if n != 3 || len(scanAudit(t, s, "", 0)) != 0 {
		t.Fatalf("pruning everything: %d deleted, %d left", n, len(scanAudit(t, s, "", 0)))
	}

	// TrimAudit keeps the newest records, however recent the others.
	for i := range 10 {
		auditUpdate(t, s, func(tx storage.AuditTx) error {
			return tx.AppendAudit(now.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("r%d", i)))
		})
	}
	auditUpdate(t, s, func(tx storage.AuditTx) error { var err error; n, err = tx.TrimAudit(4); return err })
	if got := dataOf(scanAudit(t, s, "", 0)); n != 6 || !reflect.DeepEqual(got, []string{"r9", "r8", "r7", "r6"}) {
		t.Fatalf("TrimAudit(4) of 10: %d deleted, left %q", n, got)
	}
	auditUpdate(t, s, func(tx storage.AuditTx) error { var err error; n, err = tx.TrimAudit(100); return err })
	if n != 0 || len(scanAudit(t, s, "", 0)) != 4 {
		t.Fatalf("TrimAudit above the count deleted %d", n)
	}

	// Pruned and trimmed in one transaction (as the hourly prune does), the
	// trim counts what the prune left, not what the transaction began with.
	var pruned int
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		var err error
		if pruned, err = tx.PruneAudit(now.Add(7 * time.Second)); err != nil { // r6 goes
			return err
		}
		n, err = tx.TrimAudit(2)
		return err
	})
	if got := dataOf(scanAudit(t, s, "", 0)); pruned != 1 || n != 1 || !reflect.DeepEqual(got, []string{"r9", "r8"}) {
		t.Fatalf("prune then TrimAudit(2) in one transaction: %d pruned, %d trimmed, left %q", pruned, n, got)
	}
}

func testAuditCopies(t *testing.T, s storage.AuditStore) {
	data := []byte("record")
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		err := tx.AppendAudit(t0(), data)
		data[0] = 'X' // after the call, before the commit
		return err
	})
	var kept []byte
	for range 2 {
		auditView(t, s, func(tx storage.AuditTx) error {
			return tx.ScanAudit("", func(_ string, _ time.Time, d []byte) (bool, error) {
				if string(d) != "record" {
					return false, fmt.Errorf("stored record changed: %q", d)
				}
				d[0] = 'Y'
				kept = d
				return true, nil
			})
		})
		kept[1] = 'Z' // after the transaction ended: must be the caller's own memory
	}
}

func testAuditTransactions(t *testing.T, s storage.AuditStore) {
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx storage.AuditTx) error {
		if err := tx.AppendAudit(t0(), []byte("rolled back")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want fn's error", err)
	}
	if got := scanAudit(t, s, "", 0); len(got) != 0 {
		t.Fatalf("failed Update left %q", dataOf(got))
	}

	appendAudit(t, s, t0(), "kept")
	for _, tc := range []struct {
		name string
		fn   func(storage.AuditTx) error
	}{
		{"AppendAudit", func(tx storage.AuditTx) error { return tx.AppendAudit(t0(), []byte("x")) }},
		{"PruneAudit", func(tx storage.AuditTx) error { _, err := tx.PruneAudit(t0().Add(time.Hour)); return err }},
	} {
		t.Run(tc.name+" in View", func(t *testing.T) {
			if err := s.View(context.Background(), tc.fn); err == nil {
				t.Fatal("succeeded in a read-only transaction")
			}
		})
	}
	if got := dataOf(scanAudit(t, s, "", 0)); !reflect.DeepEqual(got, []string{"kept"}) {
		t.Fatalf("View changed the audit records: %q", got)
	}

	// Batch: concurrent appends at one instant all land, none collide.
	const n = 30
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.Batch(context.Background(), func(tx storage.AuditTx) error {
				return tx.AppendAudit(t0().Add(time.Minute), []byte(fmt.Sprint(i)))
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Batch: %v", err)
		}
	}
	if got := scanAudit(t, s, "", 0); len(got) != n+1 {
		t.Fatalf("%d records after %d batched appends, want %d", len(got), n, n+1)
	}
}

func testAuditTimeRange(t *testing.T, s storage.AuditStore) {
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"zero", time.Time{}},
		{"before the epoch", time.Unix(-1, 0)},
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(context.Background(), func(tx storage.AuditTx) error { return tx.AppendAudit(tc.at, []byte("x")) })
			if err == nil {
				t.Fatal("AppendAudit accepted an unstorable time")
			}
		})
	}
	// The ends of the range are storable, and a time in another location
	// comes back as the same instant.
	est := time.FixedZone("EST", -5*3600)
	for _, at := range []time.Time{time.Unix(0, 0), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), t0().In(est)} {
		appendAudit(t, s, at, "x")
	}
	got := scanAudit(t, s, "", 0)
	if len(got) != 3 || !got[0].t.Equal(time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		!got[1].t.Equal(t0()) || !got[2].t.Equal(time.Unix(0, 0)) {
		t.Fatalf("range ends: %+v", got)
	}
}

// testAuditApart checks that the audit log and the records do not touch
// each other: pruning the log keeps users, sessions and settings; deleting
// those keeps the log.
func testAuditApart(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutUser(fullUser("alice")); err != nil {
			return err
		}
		if err := tx.PutSession(fullSession("s")); err != nil {
			return err
		}
		return tx.PutSetting("k", []byte("v"))
	})
	log := s.Audit()
	appendAudit(t, log, t0(), "old")
	appendAudit(t, log, t0().Add(time.Hour), "new")
	auditUpdate(t, log, func(tx storage.AuditTx) error {
		_, err := tx.PruneAudit(t0().Add(time.Minute))
		return err
	})
	view(t, s, func(tx storage.Tx) error {
		if _, err := tx.User("alice"); err != nil {
			return fmt.Errorf("prune touched users: %w", err)
		}
		if _, err := tx.Session("s"); err != nil {
			return fmt.Errorf("prune touched sessions: %w", err)
		}
		if _, err := tx.Setting("k"); err != nil {
			return fmt.Errorf("prune touched settings: %w", err)
		}
		return nil
	})
	update(t, s, func(tx storage.Tx) error {
		if err := tx.DeleteUser("alice"); err != nil {
			return err
		}
		return tx.DeleteSession("s")
	})
	if _, err := storage.SweepSessions(context.Background(), s, t0().Add(100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := dataOf(scanAudit(t, log, "", 0)); !reflect.DeepEqual(got, []string{"new"}) {
		t.Fatalf("audit log after deleting records: %q, want [new]", got)
	}
}

// testAuditReadYourWrites checks that a scan later in an Update sees the
// transaction's own appends and prunes.
func testAuditReadYourWrites(t *testing.T, s storage.AuditStore) {
	appendAudit(t, s, t0(), "old")
	auditUpdate(t, s, func(tx storage.AuditTx) error {
		if err := tx.AppendAudit(t0().Add(time.Hour), []byte("new")); err != nil {
			return err
		}
		if n, err := tx.PruneAudit(t0().Add(time.Minute)); err != nil || n != 1 {
			return fmt.Errorf("PruneAudit = %d, %v; want 1", n, err)
		}
		var got []string
		if err := tx.ScanAudit("", func(_ string, _ time.Time, data []byte) (bool, error) {
			got = append(got, string(data))
			return true, nil
		}); err != nil {
			return err
		}
		if !reflect.DeepEqual(got, []string{"new"}) {
			return fmt.Errorf("scan in the same transaction: %q, want [new]", got)
		}
		return nil
	})
}

// testAuditBatchRetry is testBatchRetry for the audit log: one callback of
// a concurrent Batch appends and then fails. Every other caller's records
// must be there exactly once, however often its callback ran, and none of
// the failing one's.
func testAuditBatchRetry(t *testing.T, s storage.AuditStore) {
	const n, each = 16, 3
	fail := errors.New("callback failed")
	errs := make([]error, n)
	var wg, ready sync.WaitGroup
	fn := func(i int) func(storage.AuditTx) error {
		return func(tx storage.AuditTx) error {
			for k := range each {
				if err := tx.AppendAudit(t0(), []byte(fmt.Sprintf("%02d-%d", i, k))); err != nil {
					return err
				}
			}
			if i == n-1 {
				return fail
			}
			return nil
		}
	}
	ready.Add(n - 1)
	for i := range n - 1 {
		wg.Go(func() {
			ready.Done()
			errs[i] = s.Batch(context.Background(), fn(i))
		})
	}
	ready.Wait() // the failing caller last, as in testBatchRetry
	wg.Go(func() { errs[n-1] = s.Batch(context.Background(), fn(n-1)) })
	wg.Wait()
	for i, err := range errs {
		if i == n-1 {
			if !errors.Is(err, fail) {
				t.Fatalf("failing Batch returned %v, want its callback's error", err)
			}
		} else if err != nil {
			t.Fatalf("Batch %d: %v", i, err)
		}
	}
	got := dataOf(scanAudit(t, s, "", 0))
	slices.Sort(got)
	var want []string
	for i := range n - 1 {
		for k := range each {
			want = append(want, fmt.Sprintf("%02d-%d", i, k))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records after a batch with one failing callback:\n got %q\nwant %q", got, want)
	}
}
