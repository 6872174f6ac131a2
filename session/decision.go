package session

import (
	"context"
	"errors"
	"math"
	"time"
)

// One sign-in decision at a time per browser. While the gateway decides
// whether a request signed an anonymous session's app cookie in (it waits
// for the app's answer and writes the outcome), that cookie must not reach
// the app on any other request: an app that signs its pre-sign-in session
// in place would already serve the new user's pages on it. Requests that
// forward the cookie share the session; a decision holds it alone, waits for
// the shared requests already at the app, and turns later ones away.

// deciding marks the gate as held by a decision; the low bits count the
// requests sharing it.
const deciding = math.MinInt32

// ErrDeciding is a decision refused because another one is under way.
var ErrDeciding = errors.New("another sign-in is being decided for this browser")

// Share lets a request forward the session's app cookies. It reports false
// while a decision holds the session: the request goes without them.
// Every Share that returns true is paired with an Unshare.
func (s *Session) Share() bool {
	for {
		v := s.gate.Load()
		if v < 0 {
			return false
		}
		if s.gate.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// Unshare ends a Share.
func (s *Session) Unshare() { s.gate.Add(-1) }

// Deciding reports whether a decision holds the session.
func (s *Session) Deciding() bool { return s.gate.Load() < 0 }

// BeginDecision holds the session for one decision: later requests go
// without its cookies, and it waits for the requests already sharing it to
// finish, until ctx ends: a long-lived one (a WebSocket or event stream the
// page opened before the sign-in) must not block the sign-in. When it
// returns, the epoch has moved. ErrDeciding if another
// decision holds it. Every BeginDecision that returns nil is paired with an
// EndDecision.
func (s *Session) BeginDecision(ctx context.Context) error {
	for {
		v := s.gate.Load()
		if v < 0 {
			return ErrDeciding
		}
		if s.gate.CompareAndSwap(v, v|deciding) {
			break
		}
	}
	// Upgraded connections would hold the wait for its whole length: they
	// go now, and any taken over during the wait go when it ends.
	s.closeConns()
	defer func() {
		s.epoch.Add(1) // from here the app may be signing the session in
		s.closeConns()
	}()
	for wait := 100 * time.Microsecond; s.gate.Load() != deciding; wait = min(2*wait, 10*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil // decide anyway, holding the session for it
		case <-time.After(wait):
		}
	}
	return nil
}

// Epoch counts the decisions that have gone to the app for this session.
// A request that shares the session notes it when it looks the session up:
// if it moves before the request is done, the app may have signed the
// session's cookies in meanwhile, so the request's body stops there and
// its response is not released (see the guard). Only a request still at
// the app when the decision stops waiting for it is affected: a long poll,
// an event stream, a slow upload.
func (s *Session) Epoch() uint32 { return s.epoch.Load() }

// MovedSince reports whether a decision has gone to the app, or the session
// ended, since its epoch was epoch.
func (s *Session) MovedSince(epoch uint32) bool { return s.epoch.Load() != epoch || s.Revoked() }

// EndDecision releases the session held by BeginDecision.
func (s *Session) EndDecision() { s.gate.And(^deciding) }
