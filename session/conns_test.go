package session

import (
	"context"
	"testing"
	"time"
)

type closer struct{ n int }

func (c *closer) Close() error { c.n++; return nil }

// TestTrackedConnsClose: tracked connections close when a decision goes
// ahead or the session ends, once each; an untracked one does not; one
// tracked after the move is closed at once and refused; a newer copy of
// the session takes them over.
func TestTrackedConnsClose(t *testing.T) {
	s := &Session{}
	a, b, late := &closer{}, &closer{}, &closer{}
	e := s.Epoch()
	if _, ok := s.Track(a, e); !ok {
		t.Fatal("track refused")
	}
	untrack, _ := s.Track(b, e)
	untrack()
	if err := s.BeginDecision(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.EndDecision()
	if a.n != 1 || b.n != 0 {
		t.Fatalf("after a decision: tracked closed %d times, untracked %d", a.n, b.n)
	}
	if _, ok := s.Track(late, e); ok || late.n != 1 {
		t.Fatalf("tracked past the move: ok %v, closed %d", ok, late.n)
	}

	held, fresh, c := &Session{}, &Session{}, &closer{}
	if _, ok := held.Track(c, held.Epoch()); !ok {
		t.Fatal("track refused")
	}
	fresh.adoptConns(held)
	held.Revoke()
	if c.n != 0 {
		t.Fatal("the replaced copy's end closed a connection the newer copy holds")
	}
	fresh.Revoke()
	if c.n != 1 {
		t.Fatalf("the newer copy's end closed it %d times", c.n)
	}

	// A session swept as expired closes its connections too.
	tab := NewTable()
	old := &Session{Key: Key{1}, State: Active, CreatedAt: time.Unix(0, 0)}
	old.SetLastSeen(time.Unix(0, 0))
	tab.Put(old)
	d := &closer{}
	if _, ok := old.Track(d, old.Epoch()); !ok {
		t.Fatal("track refused")
	}
	if gone := tab.Sweep(time.Unix(3600, 0), time.Minute, time.Minute); len(gone) != 1 || d.n != 1 {
		t.Fatalf("swept %d, connection closed %d times", len(gone), d.n)
	}
}
