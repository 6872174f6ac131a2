package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// t0 is the tests' reference time.
func t0() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC) }

// clock is an injectable time source.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }

// openStore returns the audit log of a fresh bbolt store, closed when the
// test ends.
func openStore(t testing.TB) storage.AuditStore {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Audit()
}

// newLog returns a Log on a fresh bbolt store, closed when the test ends.
func newLog(t testing.TB, store storage.AuditStore, opts Options) *Log {
	t.Helper()
	if store == nil {
		store = openStore(t)
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Hour // tests flush explicitly
	}
	l := New(store, opts)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func flush(t *testing.T, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// queryAll pages through every event matching f.
func queryAll(t *testing.T, l *Log, f Filter) []Event {
	t.Helper()
	var all []Event
	cursor := ""
	for {
		page, next, err := l.Query(context.Background(), f, cursor, MaxLimit)
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// ns names events by their "n" detail, for comparing lists.
func ns(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Detail["n"]
	}
	return out
}

func TestRecordFlushQuery(t *testing.T) {
	clk := newClock(t0())
	l := newLog(t, nil, Options{Now: clk.now})
	full := Event{
		Time:      t0().Add(-time.Minute).In(time.FixedZone("CET", 3600)),
		Type:      TypeChallengeFailed,
		Actor:     "alice",
		Subject:   "alice",
		Remote:    "192.0.2.7:51234",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		Detail:    map[string]string{"reason": "bad_code", "n": "1"},
		Cursor:    "ignored",
	}
	l.Record(full)
	l.Record(Event{Type: TypePolicyChanged, Actor: "bob", Detail: map[string]string{"n": "2"}}) // Time from the clock
	l.Record(Event{Type: TypeSessionExpired, Actor: ActorSystem, Time: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		Detail: map[string]string{"n": "3"}}) // unstorable time: now instead

	if got, _, _ := l.Query(context.Background(), Filter{}, "", 0); len(got) != 0 {
		t.Fatalf("events visible before Flush: %d", len(got))
	}
	flush(t, l)
	got := queryAll(t, l, Filter{})
	if !reflect.DeepEqual(ns(got), []string{"3", "2", "1"}) {
		t.Fatalf("order %q, want [3 2 1] (same-time events newest-recorded first)", ns(got))
	}
	want := full
	want.Time, want.Cursor = full.Time.UTC(), got[2].Cursor
	if got[2].Cursor == "" || !reflect.DeepEqual(got[2], want) {
		t.Fatalf("event\n got %+v\nwant %+v", got[2], want)
	}
	for _, e := range got[:2] {
		if !e.Time.Equal(t0()) || e.Cursor == "" {
			t.Fatalf("event %s: time %v cursor %q; want the clock's %v", e.Detail["n"], e.Time, e.Cursor, t0())
		}
	}
}

func TestRetention(t *testing.T) {
	store := openStore(t)
	now := t0().Add(365 * 24 * time.Hour)
	clk := newClock(now)
	l := newLog(t, store, Options{Now: clk.now, Retention: 90 * 24 * time.Hour})
	for i, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 90*24*time.Hour + time.Second, 89 * 24 * time.Hour, time.Hour} {
		l.Record(Event{Time: now.Add(-age), Type: TypeSignIn, Detail: map[string]string{"n": fmt.Sprint(i)}})
	}
	flush(t, l)
	l.prune(context.Background())
	if got := ns(queryAll(t, l, Filter{})); !reflect.DeepEqual(got, []string{"4", "3"}) {
		t.Fatalf("after prune: %q, want [4 3]", got)
	}

	// The clock moves on; a new Log (a restart) prunes at start.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clk.set(now.Add(89*24*time.Hour + time.Minute))
	l = newLog(t, store, Options{Now: clk.now}) // default retention: 90 days
	flush(t, l)                                 // answered after the start-up prune
	if got := ns(queryAll(t, l, Filter{})); !reflect.DeepEqual(got, []string{"4"}) {
		t.Fatalf("after start-up prune: %q, want [4]", got)
	}
}

// TestSizeCap: besides the retention, the log keeps at most MaxEvents, the
// newest; what it prunes over the cap is counted and logged.
func TestSizeCap(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	clk := newClock(t0())
	l := newLog(t, nil, Options{Now: clk.now, MaxEvents: 20, Logger: zap.New(core)})
	for i := range 50 {
		l.Record(Event{Time: t0().Add(time.Duration(i) * time.Second), Type: TypeSignInRefused, Detail: map[string]string{"n": fmt.Sprint(i)}})
	}
	flush(t, l)
	l.prune(context.Background())
	got := ns(queryAll(t, l, Filter{}))
	if len(got) != 20 || got[0] != "49" || got[19] != "30" {
		t.Fatalf("after the cap: %d events, %v", len(got), got)
	}
	if l.Trimmed() != 30 || logs.FilterMessage("audit events pruned over the size cap").Len() != 1 {
		t.Fatalf("trimmed %d, %d warnings", l.Trimmed(), logs.FilterMessage("audit events pruned over the size cap").Len())
	}
}

// blockingStore is a bbolt store whose Batch waits until release is closed.
type blockingStore struct {
	storage.AuditStore
	release chan struct{}
	batches atomic.Int32
}

func (s *blockingStore) Batch(ctx context.Context, fn func(storage.AuditTx) error) error {
	s.batches.Add(1)
	<-s.release
	return s.AuditStore.Batch(ctx, fn)
}

func TestRecordNeverBlocks(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	store := &blockingStore{AuditStore: openStore(t), release: make(chan struct{})}
	l := newLog(t, store, Options{Buffer: 100, FlushInterval: time.Millisecond, Logger: zap.New(core)})
	var once sync.Once
	release := func() { once.Do(func() { close(store.release) }) }
	t.Cleanup(release) // runs before newLog's Close, which would wait for the store

	const n = 1000
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		if i == 150 { // let a flush take the first queue and get stuck in Batch
			deadline := time.Now().Add(5 * time.Second)
			for store.batches.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		t1 := time.Now()
		l.Record(Event{Type: TypeSignIn, Actor: "alice", Detail: map[string]string{"n": fmt.Sprint(i)}})
		slowest = max(slowest, time.Since(t1))
	}
	total := time.Since(start)
	if store.batches.Load() == 0 {
		t.Fatal("no flush started")
	}
	if d := l.Dropped(); d == 0 {
		t.Fatal("a full buffer dropped nothing")
	}
	if slowest > 100*time.Millisecond {
		t.Fatalf("slowest Record took %v while the store was stuck (all %d took %v)", slowest, n, total)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush on a stuck store: %v, want the context's deadline", err)
	}
	t.Logf("%d Records took %v (slowest %v); %d dropped", n, total, slowest, l.Dropped())

	// Unstick: everything not dropped is written, and the drops are logged.
	release()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(queryAll(t, l, Filter{})); uint64(got)+l.Dropped() != n {
		t.Fatalf("%d written + %d dropped != %d recorded", got, l.Dropped(), n)
	}
	if logs.FilterMessage("audit events dropped").Len() == 0 {
		t.Fatal("drops not logged")
	}
}

func TestConcurrentRecord(t *testing.T) {
	l := newLog(t, nil, Options{FlushInterval: 5 * time.Millisecond}) // flushes race with Records
	const goroutines, each = 20, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Record(Event{Type: TypeSignIn, Actor: fmt.Sprintf("u%02d", g), Detail: map[string]string{"n": fmt.Sprint(i)}})
			}
		})
	}
	wg.Wait()
	flush(t, l)
	got := queryAll(t, l, Filter{})
	if len(got) != goroutines*each || l.Dropped() != 0 {
		t.Fatalf("%d of %d events landed, %d dropped", len(got), goroutines*each, l.Dropped())
	}
	per := map[string]int{}
	for _, e := range got {
		per[e.Actor]++
	}
	for g := range goroutines {
		if c := per[fmt.Sprintf("u%02d", g)]; c != each {
			t.Fatalf("u%02d: %d events, want %d", g, c, each)
		}
	}
}

func TestClose(t *testing.T) {
	l := newLog(t, nil, Options{})
	l.Record(Event{Type: TypeSignOut, Actor: "alice"})
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := queryAll(t, l, Filter{}); len(got) != 1 || got[0].Type != TypeSignOut {
		t.Fatalf("after Close: %+v; want the queued event written", got)
	}
	l.Record(Event{Type: TypeSignIn, Actor: "alice"})
	if err := l.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := queryAll(t, l, Filter{}); len(got) != 1 || l.Dropped() != 0 {
		t.Fatalf("Record after Close: %d events, %d counted as dropped; want it dropped silently", len(got), l.Dropped())
	}
}

// failingStore fails every Batch.
type failingStore struct{ storage.AuditStore }

func (failingStore) Batch(context.Context, func(storage.AuditTx) error) error {
	return errors.New("disk full")
}

func TestWriteFailure(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	l := newLog(t, failingStore{openStore(t)}, Options{Logger: zap.New(core)})
	l.Record(Event{Type: TypeSignIn})
	l.Record(Event{Type: TypeSignOut})
	if err := l.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush = %v, want the store's error", err)
	}
	if l.Dropped() != 2 || logs.FilterMessage("audit events lost: write failed").Len() != 1 {
		t.Fatalf("dropped %d, logged %v", l.Dropped(), logs.All())
	}
	if err := l.Flush(context.Background()); err != nil { // nothing left to write
		t.Fatalf("second Flush: %v", err)
	}
}

func TestRecordLimits(t *testing.T) {
	l := newLog(t, nil, Options{})
	long := strings.Repeat("é", 200) // 400 bytes of two-byte runes
	detail := map[string]string{"v": long, strings.Repeat("k", 100): "x"}
	for i := range 20 {
		detail[fmt.Sprintf("d%02d", i)] = "y"
	}
	l.Record(Event{Type: strings.Repeat("t", 100), Actor: long, Subject: long, Remote: long, UserAgent: "a" + long, Detail: detail})
	delete(detail, "d00") // the caller's map is its own again
	detail["d01"] = "changed"
	flush(t, l)
	got := queryAll(t, l, Filter{})[0]
	for name, tc := range map[string]struct {
		s   string
		max int
	}{
		"type": {got.Type, maxType}, "actor": {got.Actor, maxField}, "subject": {got.Subject, maxField},
		"remote": {got.Remote, maxField}, "user agent": {got.UserAgent, maxField},
	} {
		if len(tc.s) > tc.max || len(tc.s) < tc.max-utf8.UTFMax || !utf8.ValidString(tc.s) {
			t.Errorf("%s: %d bytes (valid UTF-8: %v), want at most %d", name, len(tc.s), utf8.ValidString(tc.s), tc.max)
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range got.Detail {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13", "d14", "d15"}
	if !reflect.DeepEqual(keys, want) || got.Detail["d01"] != "y" {
		t.Fatalf("detail keys %q (d01=%q); want the first 16 sorted, as recorded", keys, got.Detail["d01"])
	}

	// Few keys: all kept, long ones cut; a key cut to equal another is
	// kept once.
	l.Record(Event{Type: TypeSignIn, Detail: map[string]string{"v": long, strings.Repeat("k", 100): "x"}})
	flush(t, l)
	d := queryAll(t, l, Filter{Type: TypeSignIn})[0].Detail
	if len(d) != 2 || len(d["v"]) > maxField || d[strings.Repeat("k", maxDetailKey)] != "x" {
		t.Fatalf("detail %q", d)
	}
	// (JSON decoding would hide a duplicate key; look at what is queued.)
	if ent := l.clean(&Event{Detail: map[string]string{strings.Repeat("k", 100): "x", strings.Repeat("k", maxDetailKey): "x"}}); len(ent.detail) != 2 {
		t.Fatalf("colliding keys queued as %q", ent.detail)
	}
}

func TestTypes(t *testing.T) {
	types := Types()
	seen := map[string]bool{}
	for _, ty := range types {
		if ty == "" || seen[ty] || len(ty) > maxType {
			t.Fatalf("bad or repeated type %q", ty)
		}
		seen[ty] = true
	}
	if len(types) != 38 {
		t.Fatalf("%d types, want 38", len(types))
	}
	types[0] = "changed"
	if Types()[0] != TypeEnrolStarted {
		t.Fatal("Types shares its slice")
	}
}
