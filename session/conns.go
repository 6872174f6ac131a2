package session

import (
	"io"
	"sync"
)

// Connections taken over by an upgrade (a WebSocket after its 101) carry the
// session's app cookies for as long as they stay open, outside any request
// the gateway sees. They are tracked on the session and closed when a
// decision goes ahead for it or it ends: an upgraded connection opened
// before a sign-in must not go on as the new user, nor one of a revoked
// session as its user.
type conns struct {
	mu   sync.Mutex
	open map[io.Closer]struct{}
}

// Track registers c, to be closed once the session moves past epoch (see
// MovedSince). If it already has, Track closes c and reports false. Call
// untrack when c closes.
func (s *Session) Track(c io.Closer, epoch uint32) (untrack func(), ok bool) {
	s.conns.mu.Lock()
	if s.MovedSince(epoch) {
		s.conns.mu.Unlock()
		_ = c.Close()
		return nil, false
	}
	if s.conns.open == nil {
		s.conns.open = map[io.Closer]struct{}{}
	}
	s.conns.open[c] = struct{}{}
	s.conns.mu.Unlock()
	return func() {
		s.conns.mu.Lock()
		delete(s.conns.open, c)
		s.conns.mu.Unlock()
	}, true
}

// closeConns closes every tracked connection. Whoever moves the session
// (a decision, an end) calls it after the move, so a connection tracked
// before is closed here and one tracked after sees the move in Track.
func (s *Session) closeConns() {
	s.conns.mu.Lock()
	open := s.conns.open
	s.conns.open = nil
	s.conns.mu.Unlock()
	for c := range open {
		_ = c.Close()
	}
}

// adoptConns moves held's tracked connections to s, a newer copy of the
// same session that replaces it in the table, so that ending s closes them.
func (s *Session) adoptConns(held *Session) {
	held.conns.mu.Lock()
	open := held.conns.open
	held.conns.open = nil
	held.conns.mu.Unlock()
	if len(open) == 0 {
		return
	}
	s.conns.mu.Lock()
	if s.conns.open == nil {
		s.conns.open = map[io.Closer]struct{}{}
	}
	for c := range open {
		s.conns.open[c] = struct{}{}
	}
	s.conns.mu.Unlock()
	if s.Revoked() {
		s.closeConns()
	}
}
