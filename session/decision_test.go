package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDecisionGate: a decision waits for the requests already sharing the
// session, turns later ones away, refuses a second decision, and opens the
// session again when it ends.
func TestDecisionGate(t *testing.T) {
	s := &Session{State: Anonymous}
	for range 2 { // two requests at the app
		if !s.Share() {
			t.Fatal("share refused with no decision")
		}
	}
	began := make(chan error, 1)
	go func() { began <- s.BeginDecision(context.Background()) }()
	for !s.Deciding() {
		time.Sleep(time.Millisecond)
	}
	if s.Share() {
		t.Fatal("a request shared the session while a decision held it")
	}
	select {
	case err := <-began:
		t.Fatalf("the decision began with two requests still at the app: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := s.BeginDecision(context.Background()); !errors.Is(err, ErrDeciding) {
		t.Fatalf("a second decision: %v, want ErrDeciding", err)
	}
	s.Unshare()
	s.Unshare()
	if err := <-began; err != nil {
		t.Fatal(err)
	}
	s.EndDecision()
	if s.Deciding() || !s.Share() {
		t.Fatal("the session stayed held after the decision ended")
	}
	s.Unshare()

	// A request that never ends (a WebSocket) does not block the decision:
	// after the wait it goes on, holding the session; the gate is whole
	// again when both are done.
	s.Share()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.BeginDecision(ctx); err != nil {
		t.Fatalf("decision beside a request that never ends: %v", err)
	}
	if s.Share() {
		t.Fatal("a new request shared the session during the decision")
	}
	s.EndDecision()
	s.Unshare()
	if s.Deciding() || s.gate.Load() != 0 {
		t.Fatalf("gate left at %d", s.gate.Load())
	}
}

// TestDecisionGateRace: under concurrent shares and decisions, no request
// shares the session while a decision holds it.
func TestDecisionGateRace(t *testing.T) {
	s := &Session{State: Anonymous}
	var inDecision atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(200 * time.Millisecond)
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if s.Share() {
					if inDecision.Load() {
						bad.Add(1)
					}
					s.Unshare()
				}
			}
		}()
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if s.BeginDecision(context.Background()) == nil {
					inDecision.Store(true)
					time.Sleep(50 * time.Microsecond)
					inDecision.Store(false)
					s.EndDecision()
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d shares overlapped a decision", bad.Load())
	}
}

// TestEpochMovesWhenADecisionGoesAhead: the epoch moves each time a
// decision stops waiting (drained or timed out), not when one is refused or
// ended; an ended session has moved too.
func TestEpochMovesWhenADecisionGoesAhead(t *testing.T) {
	s := &Session{}
	e0 := s.Epoch()
	if s.MovedSince(e0) {
		t.Fatal("moved before anything happened")
	}
	if err := s.BeginDecision(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.MovedSince(e0) {
		t.Fatal("a decision went ahead and the epoch did not move")
	}
	e1 := s.Epoch()
	if err := s.BeginDecision(context.Background()); !errors.Is(err, ErrDeciding) {
		t.Fatalf("a second decision: %v", err)
	}
	s.EndDecision()
	if s.MovedSince(e1) {
		t.Fatal("a refused decision or EndDecision moved the epoch")
	}
	// A request at the app outlasts the wait: the decision goes ahead anyway.
	if !s.Share() {
		t.Fatal("share refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := s.BeginDecision(ctx)
	cancel()
	if err != nil || !s.MovedSince(e1) {
		t.Fatalf("a decision that timed out waiting: %v, moved %v", err, s.MovedSince(e1))
	}
	s.EndDecision()
	s.Unshare()
	e2 := s.Epoch()
	s.Revoke()
	if !s.MovedSince(e2) {
		t.Fatal("an ended session has not moved")
	}
}
