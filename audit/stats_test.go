package audit

import (
	"context"
	"testing"
	"time"
)

// TestStats: each way an event is stored or goes is counted apart, once.
func TestStats(t *testing.T) {
	clk := newClock(t0())
	l := newLog(t, nil, Options{Now: clk.now, MaxEvents: 3, Retention: time.Hour, Buffer: 4})
	// Sign-outs: a type never folded, so each Record is one event.
	for i := range 6 { // the queue takes 4: two dropped
		l.Record(Event{Time: t0().Add(time.Duration(i-4) * time.Hour), Type: TypeSignOut})
	}
	flush(t, l)
	l.prune(context.Background()) // 3 past the retention, 1 left
	l.Record(Event{Type: TypeSignOut})
	l.Record(Event{Type: TypeSignOut})
	l.Record(Event{Type: TypeSignOut})
	flush(t, l)
	l.prune(context.Background()) // 4 events over a cap of 3
	want := Stats{Written: 7, QueueFull: 2, Pruned: 3, Trimmed: 1}
	if got := l.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}

	f := newLog(t, failingStore{openStore(t)}, Options{})
	f.Record(Event{Type: TypeSignOut})
	f.Record(Event{Type: TypeSignOut})
	if err := f.Flush(context.Background()); err == nil {
		t.Fatal("a failed write flushed")
	}
	if got, want := f.Stats(), (Stats{WriteFailed: 2}); got != want || f.Dropped() != 2 {
		t.Fatalf("after a failed write: stats %+v, want %+v; Dropped %d, want 2", got, want, f.Dropped())
	}
}
