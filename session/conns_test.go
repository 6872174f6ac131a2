package session

import (
	"context"
	"testing"
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
}
