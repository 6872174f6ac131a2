package mfa

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// SignIn is a sign-in the app accepted, as the request guard saw it.
type SignIn struct {
	User    string            // who the app signed in
	Source  string            // which identity source named them (for the log)
	Email   string            // their address, when a source gave one
	Role    string            // their role, when a source gave one
	Next    string            // where to go once the sign-in is complete
	Held    []string          // the app's Set-Cookie lines for its session
	Set     []session.Binding // the cookies those lines set
	Carried []session.Binding // app cookies the browser sent, which an app that does not rotate its session has just authenticated in place
	Old     *session.Session  // the session the browser came with, replaced
	Matched bool              // the configured sign-in matcher matched (else a sign-in from any URL)
	Device  string            // the browser's remembered-device token, "" if none
}

// Outcome is what a sign-in needs next.
type Outcome uint8

const (
	SecondFactor Outcome = iota // pending: the app's cookies are held until the challenge
	MustEnrol                   // active, but the app is blocked until 2FA is set up
	SignedIn                    // active without a second factor (none required)
)

// SignIn starts the gateway session for a sign-in the app accepted: pending
// when the user has a factor (the app's cookies are held back), else active,
// blocked until enrolment when the team requires 2FA.
func (r *Realm) SignIn(ctx context.Context, a Actor, in SignIn) (Changed, Outcome, error) {
	ch, out, err := r.signIn(ctx, a, in)
	r.svc.stats.signIn(signInResultOf(out, err))
	return ch, out, err
}

func signInResultOf(out Outcome, err error) signInResult {
	switch {
	case err != nil:
		return signInError
	case out == SecondFactor:
		return signInChallenged
	case out == MustEnrol:
		return signInMustEnrol
	}
	return signInNoFactor
}

func (r *Realm) signIn(ctx context.Context, a Actor, in SignIn) (Changed, Outcome, error) {
	now := r.svc.now()
	u, err := r.svc.User(ctx, in.User)
	if err != nil {
		return Changed{}, 0, fmt.Errorf("mfa: load user at sign-in: %w", err)
	}
	s := &session.Session{
		User: in.User, Role: in.Role, AAL: 1, CreatedAt: now, AuthAt: now,
		RemoteAddr: a.Address, UserAgent: truncate(a.Agent, 256), Next: in.Next,
	}
	enrolled := HasFactor(u)
	fields := []zap.Field{zap.String("user", in.User), zap.String("identity_source", in.Source), zap.Bool("enrolled", enrolled), zap.Bool("matched_sign_in", in.Matched)}
	forget := false // a remembered-browser token that does not work here
	if enrolled && in.Device != "" && r.RememberAllowed() {
		rs := &session.Session{
			User: in.User, Role: in.Role, State: session.Active, AAL: 2, CreatedAt: now, AuthAt: now,
			ExpiresAt: now.Add(r.cfg.MaxLifetime), RemoteAddr: a.Address, UserAgent: truncate(a.Agent, 256), Next: in.Next,
		}
		rs.SetBindings(append(append([]session.Binding(nil), in.Carried...), in.Set...))
		ch, ok, err := r.signInRemembered(ctx, a, in, rs)
		if err != nil {
			return Changed{}, 0, fmt.Errorf("mfa: remembered browser: %w", err)
		}
		if ok {
			r.decision(a, "second factor skipped: remembered browser", fields...)
			r.record(a, audit.TypeSignIn, in.User, map[string]string{"second_factor": "remembered browser"})
			return ch, SignedIn, nil
		}
		forget = true
	} else if in.Device != "" && enrolled {
		forget = true // remembering is off here: the token is of no use
	}
	if why := r.skipReason(u, a); enrolled && why != "" {
		s := &session.Session{
			User: in.User, Role: in.Role, AAL: 1, State: session.Active, CreatedAt: now, AuthAt: now,
			ExpiresAt: now.Add(r.cfg.MaxLifetime), RemoteAddr: a.Address, UserAgent: truncate(a.Agent, 256), Next: in.Next,
		}
		s.SetBindings(append(append([]session.Binding(nil), in.Carried...), in.Set...))
		id, err := r.Start(ctx, in.Old, s, now)
		if err != nil {
			return Changed{}, 0, fmt.Errorf("mfa: save session: %w", err)
		}
		r.touchSignIn(ctx, in.User, in.Email, now, true)
		r.decision(a, "second factor skipped: "+why, fields...)
		r.record(a, audit.TypeSignIn, in.User, map[string]string{"second_factor": "skipped: " + why})
		return Changed{Session: s, ID: id, Held: in.Held, ForgetDevice: forget}, SignedIn, nil
	}
	if enrolled {
		if u.CreatedAt.IsZero() || (in.Email != "" && in.Email != u.Email) {
			r.touchSignIn(ctx, in.User, in.Email, now, false)
		}
		s.State, s.ExpiresAt, s.Held = session.Pending, now.Add(r.cfg.PendingTTL), in.Held
		s.SetBindings(in.Carried)
		id, err := r.Start(ctx, in.Old, s, now)
		if err != nil {
			return Changed{}, 0, fmt.Errorf("mfa: save pending session: %w", err)
		}
		r.svc.trimPending(s)
		r.decision(a, "second factor required", fields...)
		r.record(a, audit.TypeSignIn, in.User, map[string]string{"second_factor": "required"})
		return Changed{Session: s, ID: id, ForgetDevice: forget}, SecondFactor, nil
	}
	s.State, s.ExpiresAt, s.MustEnrol = session.Active, now.Add(r.cfg.MaxLifetime), r.Require2FA()
	s.SetBindings(append(append([]session.Binding(nil), in.Carried...), in.Set...))
	id, err := r.Start(ctx, in.Old, s, now)
	if err != nil {
		return Changed{}, 0, fmt.Errorf("mfa: save session: %w", err)
	}
	r.touchSignIn(ctx, in.User, in.Email, now, true)
	if s.MustEnrol {
		r.decision(a, "enrolment required", fields...)
		r.record(a, audit.TypeSignIn, in.User, map[string]string{"second_factor": "enrolment required"})
		return Changed{Session: s, ID: id}, MustEnrol, nil
	}
	r.decision(a, "signed in without second factor", fields...)
	r.record(a, audit.TypeSignIn, in.User, map[string]string{"second_factor": "none"})
	return Changed{Session: s, ID: id}, SignedIn, nil
}

// MaxPendingPerUser bounds the sign-ins one user may leave waiting at the
// challenge: a client with a valid password cannot fill the store with them.
// A newer sign-in ends the oldest.
const MaxPendingPerUser = 10

// trimPending ends the oldest of s's user's pending sign-ins beyond
// MaxPendingPerUser.
func (svc *Service) trimPending(s *session.Session) {
	ss := svc.Sessions.Snapshot(func(p *session.Session) bool {
		return p.User == s.User && p.State == session.Pending && !p.Revoked()
	})
	if len(ss) <= MaxPendingPerUser {
		return
	}
	slices.SortFunc(ss, func(a, b *session.Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
	old := ss[:len(ss)-MaxPendingPerUser]
	for _, p := range old {
		svc.Sessions.Remove(p.Key) // revokes it
	}
	_ = svc.deleteSessions(old) // logged, and retried until the store takes it
}

// BindAnonymous binds app cookies set before anyone signed in (a login
// form's session) to an anonymous gateway session, so that exactly this
// browser may send them back. It returns a new session when one had to be
// started for the browser.
func (r *Realm) BindAnonymous(ctx context.Context, a Actor, cur *session.Session, set []session.Binding) (Changed, error) {
	if len(set) == 0 {
		return Changed{}, nil
	}
	if cur != nil && cur.State == session.Anonymous {
		cur.UpdateBindings(set, nil)
		return Changed{}, nil
	}
	now := r.svc.now()
	s := &session.Session{State: session.Anonymous, CreatedAt: now, RemoteAddr: a.Address}
	s.SetBindings(set)
	id, err := r.Start(ctx, cur, s, now)
	if err != nil {
		return Changed{}, fmt.Errorf("mfa: start anonymous session: %w", err)
	}
	return Changed{Session: s, ID: id}, nil
}

// RefuseSignIn records a sign-in the gateway could not attribute, and
// unbinds the app cookies the browser sent (the app may have authenticated
// them in place), so nothing of that session reaches the app again.
func (r *Realm) RefuseSignIn(ctx context.Context, a Actor, cur *session.Session, forwarded []string, path, why string) {
	r.svc.stats.signIn(signInRefused)
	r.record(a, audit.TypeSignInRefused, "", map[string]string{"reason": why, "path": truncate(path, 128)})
	r.log.Warn("sign-in refused", zap.String("reason", why), zap.String("path", path), zap.String("remote_ip", a.Address))
	if cur != nil && len(forwarded) > 0 {
		r.Rebind(ctx, cur, nil, forwarded)
	}
}

// BindingMismatch reports an app session cookie that came with s but is not
// bound to it (stripped before the app): another session's cookie, stolen or
// left over. Audited once per session, so a browser that keeps sending it
// does not flood the log.
func (r *Realm) BindingMismatch(a Actor, s *session.Session, names []string) {
	if !s.FirstMismatch() {
		return
	}
	r.record(a, audit.TypeBindingMismatch, s.User, map[string]string{"cookies": truncate(strings.Join(names, ","), 128)})
	r.log.Warn("app cookie not bound to the session stripped", zap.String("user", s.User), zap.Strings("cookies", names), zap.String("remote_ip", a.Address))
}

// touchSignIn records the user as seen by the gateway, so admins see them
// in the member list: with their email address when a source gave one, and
// the sign-in time when the sign-in is complete.
func (r *Realm) touchSignIn(ctx context.Context, id, email string, now time.Time, complete bool) {
	err := r.svc.Store.Batch(ctx, func(tx storage.Tx) error {
		u, err := tx.User(id)
		if errors.Is(err, storage.ErrNotFound) {
			u = storage.User{ID: id, CreatedAt: now}
		} else if err != nil {
			return err
		}
		if complete {
			u.LastSignInAt = now
		}
		if email != "" {
			u.Email = email
		}
		return tx.PutUser(u)
	})
	if err != nil {
		r.log.Error("record sign-in", zap.String("user", id), zap.Error(err))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
