package audit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// all returns every stored event, oldest first.
func all(t *testing.T, l *Log) []Event {
	t.Helper()
	evs, _, err := l.Query(context.Background(), Filter{}, "", 500)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// TestRepeatsFolded: what a client can repeat at will is written once per
// window plus one record with the count; each user, address, actor and
// detail keeps its own count; other events are never folded.
func TestRepeatsFolded(t *testing.T) {
	c := newClock(t0())
	l := newLog(t, nil, Options{Now: c.now})
	failed := Event{Type: TypeChallengeFailed, Actor: "alice", Subject: "alice", Remote: "192.0.2.1", Detail: map[string]string{"reason": "wrong_code"}}
	for range 500 {
		l.Record(failed)
	}
	other := failed
	other.Remote = "192.0.2.2"
	l.Record(other)
	for range 3 {
		l.Record(Event{Type: TypeCodesRegenerated, Actor: "bob", Subject: "bob"}) // never folded
	}
	flush(t, l)
	if n := len(all(t, l)); n != 5 {
		t.Fatalf("%d events written inside the window, want 5 (one fold, one other address, 3 unfolded)", n)
	}
	if n := l.Stats().Folded; n != 499 {
		t.Fatalf("Stats().Folded = %d, want 499", n)
	}

	c.set(t0().Add(RepeatWindow + time.Second)) // the window ends
	flush(t, l)
	evs := all(t, l)
	if len(evs) != 6 {
		t.Fatalf("%d events after the window, want 6", len(evs))
	}
	sum := evs[5]
	if sum.Type != TypeChallengeFailed || sum.Subject != "alice" || sum.Remote != "192.0.2.1" ||
		sum.Detail["repeated"] != "499" || sum.Detail["reason"] != "wrong_code" || sum.Detail["within"] != RepeatWindow.String() {
		t.Fatalf("summary %+v", sum)
	}
	if !sum.Time.Equal(t0().Add(RepeatWindow)) {
		t.Fatalf("summary at %v, want the end of the window", sum.Time)
	}

	// A new window starts with a record of its own.
	l.Record(failed)
	flush(t, l)
	if n := len(all(t, l)); n != 7 {
		t.Fatalf("%d events, want 7: the next window's first event is written", n)
	}
}

// TestRepeatsWrittenOnClose: Close ends every window, so no count is lost.
func TestRepeatsWrittenOnClose(t *testing.T) {
	store := openStore(t)
	l := New(store, Options{FlushInterval: time.Hour})
	for range 10 {
		l.Record(Event{Type: TypeSignIn, Subject: "alice", Remote: "192.0.2.1"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs := all(t, l)
	if len(evs) != 2 || evs[1].Detail["repeated"] != "9" {
		t.Fatalf("after Close: %+v", evs)
	}
}

// TestRepeatKeysBounded: past maxRepeatKeys distinct keys, events are
// written one by one, so the folding map cannot grow without bound.
func TestRepeatKeysBounded(t *testing.T) {
	var r repeats
	now := t0()
	for i := range maxRepeatKeys + 100 {
		e := Event{Type: TypeSignInRefused, Remote: fmt.Sprint(i)}
		if r.fold(&e, now) {
			t.Fatalf("event %d folded: it is the first of its key", i)
		}
	}
	if len(r.m) != maxRepeatKeys {
		t.Fatalf("%d keys held, want the cap %d", len(r.m), maxRepeatKeys)
	}
	if got := r.due(now.Add(RepeatWindow), false); len(got) != 0 {
		t.Fatalf("%d summaries for windows without repeats", len(got))
	}
	if len(r.m) != 0 {
		t.Fatalf("%d keys left after their windows ended", len(r.m))
	}
}
