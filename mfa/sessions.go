package mfa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// The session lifecycle: every gateway session is found, started, rotated,
// activated, ended and revoked here, and nowhere else.

// Defaults and limits of the session settings.
const (
	DefaultIdleTimeout = 240 * time.Minute
	MinIdleTimeout     = 5 * time.Minute
	MaxIdleTimeout     = 1440 * time.Minute
	DefaultMaxLifetime = 12 * time.Hour
	DefaultPendingTTL  = 10 * time.Minute
)

// anonymousIdle bounds pre-sign-in sessions, which live in memory only.
const anonymousIdle = 30 * time.Minute

// ValidateIdleTimeout checks the 5–1440 minute range teams know.
func ValidateIdleTimeout(d time.Duration) error {
	if d < MinIdleTimeout || d > MaxIdleTimeout {
		return fmtErr(ErrBadTimeout, "idle timeout %v out of range: 5 to 1440 minutes", d)
	}
	return nil
}

// Current is the gateway session a request came with.
type Current struct {
	Session *session.Session // valid session, nil if none
	ID      session.ID       // its raw id (from the cookie), to re-stamp the cookie
	Reason  session.Reason   // why a cookie's session no longer counts (Valid if there was none)
	Stale   bool             // the cookie's idle deadline should be re-stamped
}

// Lookup finds the session a gateway cookie value names. It is the one idle
// rule: the session must have been active within the idle timeout in force,
// and the cookie's own idle deadline must not have passed. Any cookie that
// cannot be read, names an unknown session or one past its deadlines means
// "no session": fail closed.
func (r *Realm) Lookup(value string, now time.Time) Current {
	var cur Current
	if value == "" {
		return cur
	}
	cl, key, err := r.svc.cookies.verify(r.svc.codec, value)
	if err != nil {
		cur.Reason = session.Revoked
		return cur
	}
	s := r.svc.Sessions.Get(key)
	if s == nil && r.svc.shared && cl.AAL > 0 { // anonymous sessions are not stored
		s = r.svc.readThrough(key, now)
	}

	if s == nil {
		cur.Reason = session.Revoked
		return cur
	}
	idle := anonymousIdle
	if s.State != session.Anonymous {
		idle = r.policy.getAt(r.svc, now).idle(r.cfg.IdleTimeout)
	}
	if reason := s.Check(now, idle); reason != session.Valid {
		cur.Reason = reason
		return cur
	}
	if s.State != session.Anonymous && now.Unix() > cl.IdleDeadline {
		cur.Reason = session.IdleExpired
		return cur
	}
	if s.AAL != cl.AAL || (s.Scope != "" && s.Scope != r.cfg.Scope) {
		// Another scope's session (agents vs end users) is no session here.
		cur.Reason = session.Revoked
		return cur
	}
	cur.Session, cur.ID = s, cl.ID
	// Re-stamp the cookie's deadline about once a minute, not per request.
	cur.Stale = s.State != session.Anonymous && cl.IdleDeadline < now.Add(idle-time.Minute).Unix()
	return cur
}

// readThrough loads a session another instance on a shared store started
// and this one has not synced yet, so that a browser the load balancer moves
// between instances stays signed in. Only a cookie signed with this
// gateway's key gets here. A session this instance ended lately is not
// read again, and a miss (or a store that does not answer) is remembered
// until the next sync but one, so a stale cookie costs at most one read a
// second.
func (svc *Service) readThrough(k session.Key, now time.Time) *session.Session {
	if svc.Sessions.Gone(k) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), readThroughTimeout)
	defer cancel()
	var rec storage.Session
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = tx.Session(k.String())
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		svc.logger.Error("read a session from the shared store", zap.Error(err))
	}
	var s *session.Session
	if err == nil {
		s, err = svc.fromRecord(rec)
	}
	svc.undeletedMu.Lock()
	_, refused := svc.undeleted[k.String()]
	svc.undeletedMu.Unlock()
	if err != nil || refused || (!s.ExpiresAt.IsZero() && now.After(s.ExpiresAt)) {
		svc.Sessions.MarkGone(k)
		return nil
	}
	if !svc.Sessions.Revive(s) {
		return svc.Sessions.Get(k) // a concurrent request revived it first
	}
	return s
}

// readThroughTimeout bounds a request's wait for a shared store.
const readThroughTimeout = 2 * time.Second

// CookieValue is the signed gateway cookie value naming s under id, with
// the idle deadline in force from now.
func (r *Realm) CookieValue(id session.ID, s *session.Session, now time.Time) string {
	return r.svc.codec.Encode(session.Claims{ID: id, AAL: s.AAL, User: s.User, IdleDeadline: now.Add(r.IdleTimeout()).Unix()})
}

// Start stores s under a fresh id in place of old (nil: none) and returns
// the id for the cookie: the id rotates at every change of privilege.
// Anonymous sessions stay in memory.
func (r *Realm) Start(ctx context.Context, old, s *session.Session, now time.Time) (session.ID, error) {
	id, err := session.NewID(r.svc.rand)
	if err != nil {
		return id, err
	}
	s.Key = id.Key()
	s.Scope = r.cfg.Scope
	s.SetLastSeen(now)
	if err := r.svc.saveSession(ctx, s, old); err != nil {
		return id, err
	}
	r.svc.Sessions.Replace(old, s)
	return id, nil
}

// Rebind records the app cookies set and deleted during s (a refresh by
// the app, or cookies it may have authenticated in place being unbound).
func (r *Realm) Rebind(ctx context.Context, s *session.Session, set []session.Binding, deleted []string) {
	if !s.UpdateBindings(set, deleted) || s.State == session.Anonymous {
		return
	}
	if err := r.svc.updateSession(ctx, s); err != nil {
		r.log.Error("save session bindings", zap.Error(err))
	}
}

// SignOut ends s because the app signed its user out.
func (r *Realm) SignOut(ctx context.Context, a Actor, s *session.Session) {
	if err := r.svc.end(s); err != nil {
		r.log.Error("sign-out not stored: the session is ended here, but a restart would bring it back", zap.String("user", s.User), zap.Error(err))
	}
	r.decision(a, "signed out", zap.String("user", s.User))
	r.record(a, audit.TypeSignOut, s.User, nil)
}

// Abandon ends a sign-in that the gateway holds back, waiting for the
// second factor or blocked until setup, at its user's word: "Not you? Sign
// out" on the challenge, or the app's own sign-out. The app's cookies held
// for it are dropped with it; an error reports a deletion the store did not
// take (the session is ended here at once either way).
func (r *Realm) Abandon(ctx context.Context, a Actor, s *session.Session) error {
	if s.State != session.Pending && !s.MustEnrol {
		return ErrNotHeld
	}
	stage := "challenge"
	if s.State != session.Pending {
		stage = "setup"
	}
	err := r.svc.end(s)
	r.decision(a, "held sign-in abandoned", zap.String("user", s.User), zap.String("stage", stage))
	r.record(a, audit.TypeSignInAbandoned, s.User, map[string]string{"stage": stage})
	if err != nil {
		return fmt.Errorf("mfa: abandon sign-in: the session is ended, but the store did not take it: %w", err)
	}
	return nil
}

// rotated returns a copy of s under a fresh id, and that id for the cookie.
func (r *Realm) rotated(s *session.Session, mutate func(*session.Session)) (*session.Session, session.ID, error) {
	id, err := session.NewID(r.svc.rand)
	if err != nil {
		return nil, id, err
	}
	n := s.Clone(id.Key())
	mutate(n)
	return n, id, nil
}

// activate turns a pending session into an active AAL2 one under a new id,
// binding the held app cookies.
func (r *Realm) activate(s *session.Session, mustEnrol bool) (*session.Session, session.ID, error) {
	now := r.svc.now()
	return r.rotated(s, func(n *session.Session) {
		n.State, n.AAL, n.MustEnrol = session.Active, 2, mustEnrol
		n.ExpiresAt = n.AuthAt.Add(r.cfg.MaxLifetime)
		var set []session.Binding
		for _, line := range n.Held {
			if name, value, deleted, ok := r.cfg.Classify(line, now); ok && !deleted {
				set = append(set, session.Binding{Name: name, Hash: session.HashValue(value)})
			}
		}
		n.UpdateBindings(set, nil)
		n.Held = nil
	})
}

// Changed is a session an operation replaced: the browser gets a cookie
// for it, and the app's held cookies when a sign-in completed.
type Changed struct {
	Session *session.Session
	ID      session.ID
	Held    []string // the app's Set-Cookie lines, released to the browser
	// Device is a remembered browser's new token, for its cookie (the token
	// rotates at every use); ForgetDevice asks the browser to drop a token
	// that no longer works.
	Device       string
	DeviceMaxAge time.Duration
	ForgetDevice bool
}

// end revokes s now (memory) and deletes it from the store.
//
// The session stops working at once (it leaves the table), whatever the
// store says; the error reports a deletion the store did not take, after
// which a restart would bring the session back.
func (svc *Service) end(s *session.Session) error {
	if s == nil {
		return nil
	}
	s.Revoke() // even if the table no longer holds it
	svc.Sessions.Remove(s.Key)
	return svc.deleteSessions([]*session.Session{s})
}
