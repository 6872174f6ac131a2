package mfa

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// The operations behind the admin page, its API and the `caddy mfa`
// command. They work on a Service (one database) so the command line can
// reach them without an HTTP session.

// Member is a user the gateway has seen sign in.
type Member struct {
	User       string    `json:"user"`
	Email      string    `json:"email,omitempty"`
	Enrolled   bool      `json:"enrolled"`
	Method     string    `json:"method"`  // the primary method ("totp", "email", "sms"), "recovery_codes" or "none"
	Methods    []string  `json:"methods"` // every method held, the primary first
	LastSignIn time.Time `json:"last_sign_in,omitzero"`
	Sessions   int       `json:"sessions"`
	Locked     bool      `json:"locked"` // the authenticator is locked after too many wrong codes
}

// SessionInfo describes a live session for people and scripts.
type SessionInfo struct {
	ID         string    `json:"id"` // the session's key: enough to revoke it, useless as a cookie
	User       string    `json:"user"`
	State      string    `json:"state"`
	AAL        int       `json:"aal"`
	Address    string    `json:"remote_addr,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Started    time.Time `json:"started"`
	LastActive time.Time `json:"last_active"`
}

// methodOf is u's primary method, "recovery_codes" when only those are
// left, or "none".
func methodOf(u storage.User) string {
	switch {
	case PrimaryOf(u) != "":
		return PrimaryOf(u)
	case len(u.RecoveryHashes) > 0:
		return "recovery_codes"
	}
	return "none"
}

// Members lists every user in the store, with live session counts, sorted by id.
func (svc *Service) Members(ctx context.Context) ([]Member, error) {
	counts := map[string]int{}
	for _, s := range svc.Sessions.Snapshot(signedIn) {
		counts[s.User]++
	}
	var out []Member
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error {
			out = append(out, Member{
				User: u.ID, Email: u.Email, Enrolled: HasFactor(u), Method: methodOf(u), Methods: orNone(Methods(u)),
				LastSignIn: u.LastSignInAt, Sessions: counts[u.ID], Locked: !u.FactorLockedAt.IsZero(),
			})
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, err
}

// Members lists the realm's members: every user in the store and every
// admin the operator named who has never signed in (known, never
// enrolled: leaving them out would let the page say everyone has 2FA).
func (r *Realm) Members(ctx context.Context) ([]Member, error) {
	ms, err := r.svc.Members(ctx)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(ms))
	for _, m := range ms {
		known[m.User] = true
	}
	for _, id := range r.cfg.Admins {
		if id != "" && !known[id] {
			known[id] = true
			ms = append(ms, Member{User: id, Method: "none"})
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].User < ms[j].User })
	return ms, nil
}

// Unenrolled counts the members without a second factor.
func Unenrolled(ms []Member) int {
	n := 0
	for _, m := range ms {
		if !m.Enrolled {
			n++
		}
	}
	return n
}

func signedIn(s *session.Session) bool { return s.State != session.Anonymous && !s.Revoked() }

// SessionList returns live sessions, of one user or ("" ) of everyone,
// most recently active first.
func (svc *Service) SessionList(user string) []SessionInfo {
	ss := svc.Sessions.Snapshot(func(s *session.Session) bool {
		return signedIn(s) && (user == "" || s.User == user)
	})
	out := make([]SessionInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, SessionInfo{
			ID: s.Key.String(), User: s.User, State: s.State.String(), AAL: int(s.AAL),
			Address: s.RemoteAddr, UserAgent: s.UserAgent, Started: s.CreatedAt, LastActive: s.LastSeen(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastActive.After(out[j].LastActive) })
	return out
}

// RevokeSession ends the session with the given id. If owner is not "",
// the session must belong to that user (people revoke only their own); by
// says who for the audit log ("user", "admin" or "operator").
func (svc *Service) RevokeSession(ctx context.Context, a Actor, id, owner, by string) (SessionInfo, error) {
	k, err := session.ParseKey(id)
	if err != nil {
		return SessionInfo{}, ErrUnknownSession
	}
	s := svc.Sessions.Get(k)
	if s == nil || !signedIn(s) || (owner != "" && s.User != owner) {
		return SessionInfo{}, ErrUnknownSession
	}
	if err := svc.end(s); err != nil {
		return SessionInfo{}, fmt.Errorf("mfa: revoke: the session is ended, but the store did not take it: %w", err)
	}
	svc.logger.Info("session revoked", zap.String("by", by), zap.String("actor", a.User), zap.String("user", s.User))
	svc.Audit.Record(a.event(audit.TypeSessionRevoked, s.User, map[string]string{"by": by}))
	return SessionInfo{ID: id, User: s.User, State: s.State.String(), AAL: int(s.AAL), UserAgent: s.UserAgent}, nil
}

// RevokeOthers ends every session of the user of keep except keep itself.
func (svc *Service) RevokeOthers(ctx context.Context, a Actor, keep *session.Session) (int, error) {
	n, err := svc.endUserSessions(keep.User, keep)
	if err != nil {
		return n, fmt.Errorf("mfa: revoke others: the sessions are ended, but the store did not take it: %w", err)
	}
	svc.logger.Info("other sessions revoked", zap.String("user", keep.User), zap.Int("count", n))
	svc.Audit.Record(a.event(audit.TypeSessionRevoked, keep.User, map[string]string{"by": "user", "count": strconv.Itoa(n)}))
	return n, nil
}

// deleteUserSessions deletes every stored session of user, inside tx.
func deleteUserSessions(tx storage.Tx, user string) error {
	var ids []string
	err := tx.ForEachSession(func(s storage.Session) error {
		if s.User == user {
			ids = append(ids, s.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := tx.DeleteSession(id); err != nil {
			return err
		}
	}
	return nil
}

// endUserSessions ends every session of user except keep (may be nil), in
// memory and in the store; the error reports a deletion the store did not
// take (the sessions stop working here at once either way).
func (svc *Service) endUserSessions(user string, keep *session.Session) (int, error) {
	ss := svc.dropUserSessions(user, keep)
	return len(ss), svc.deleteSessions(ss)
}

// dropUserSessions revokes every session of user except keep (may be nil)
// in memory only, for a caller that deleted them from the store already.
func (svc *Service) dropUserSessions(user string, keep *session.Session) []*session.Session {
	ss := svc.Sessions.Snapshot(func(s *session.Session) bool { return s.User == user && s != keep && signedIn(s) })
	for _, s := range ss {
		svc.Sessions.Remove(s.Key) // revokes it
	}
	return ss
}

// ResetUser deletes the user's factor and recovery codes and ends their
// sessions: what an admin does for a user who lost their phone.
func (svc *Service) ResetUser(ctx context.Context, a Actor, user string) (storage.User, int, error) {
	var u storage.User
	if user == "" {
		return u, 0, ErrNoUserNamed
	}
	// The factor and the user's stored sessions go in one transaction: a
	// crash between the two would leave sessions made with the old factor
	// valid after a restart.
	err := svc.Store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if u, err = tx.User(user); errors.Is(err, storage.ErrNotFound) {
			return ErrUnknownUser
		} else if err != nil {
			return err
		}
		removeFactors(&u)
		u.UpdatedAt = svc.now()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return deleteUserSessions(tx, user)
	})
	if errors.Is(err, ErrUnknownUser) {
		return u, 0, ErrUnknownUser
	}
	if err != nil {
		return u, 0, fmt.Errorf("mfa: reset %q: %w", user, err)
	}
	ended := len(svc.dropUserSessions(user, nil)) // deleted from the store with the factor
	svc.logger.Info("2fa reset", zap.String("user", user), zap.String("by", a.User), zap.Int("sessions_ended", ended))
	svc.Audit.Record(a.event(audit.TypeAdminReset, user, map[string]string{"sessions_ended": strconv.Itoa(ended)}))
	return u, ended, nil
}

// OperatorReset is the operator's reset of a user's 2FA (`caddy mfa reset`
// through the admin endpoint): ResetUser, then the user is emailed as an
// admin's reset emails them, through a site block of the loaded config that
// has email configured. emailed says whether the notice was queued.
func (svc *Service) OperatorReset(ctx context.Context, user string) (ended int, emailed bool, err error) {
	u, ended, err := svc.ResetUser(ctx, Operator, user)
	if err != nil {
		return 0, false, err
	}
	if r := svc.mailingRealm(""); r != nil {
		emailed = r.notify(u, mail.ResetNotice(r.cfg.Issuer, user, ""))
	}
	return ended, emailed, nil
}

// UnlockUser clears a user's run of wrong authenticator codes, so a locked
// authenticator works again: what an admin or the operator does once the
// user confirms the attempts were theirs (or after a recovery, not needed:
// a recovery code clears it too).
func (svc *Service) UnlockUser(ctx context.Context, a Actor, user string) error {
	if user == "" {
		return ErrNoUserNamed
	}
	var was int
	err := svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(user)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrUnknownUser
		} else if err != nil {
			return err
		}
		was, u.FailedCodes, u.FactorLockedAt = u.FailedCodes, 0, time.Time{}
		u.UpdatedAt = svc.now()
		return tx.PutUser(u)
	})
	if errors.Is(err, ErrUnknownUser) {
		return err
	}
	if err != nil {
		return fmt.Errorf("mfa: unlock %q: %w", user, err)
	}
	svc.logger.Info("authenticator unlocked", zap.String("user", user), zap.String("by", a.User), zap.Int("wrong_codes", was))
	svc.Audit.Record(a.event(audit.TypeFactorUnlocked, user, map[string]string{"wrong_codes": strconv.Itoa(was)}))
	return nil
}

// Policy returns the scope's policy as this instance sees it.
func (svc *Service) Policy(scope string) (Policy, error) {
	pc, err := svc.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	return pc.get(svc), nil
}

// SetRequire2FA switches "require 2FA for everyone" for scope. Switching it
// on records when, so long-lived sessions can be logged out after the grace
// period; current sessions are left alone. changed reports a real switch.
func (svc *Service) SetRequire2FA(ctx context.Context, a Actor, scope string, on bool) (p Policy, changed bool, err error) {
	pc, err := svc.scopePolicy(scope)
	if err != nil {
		return Policy{}, false, err
	}
	p, err = pc.update(ctx, svc, func(p *Policy) error {
		// Judged on what the transaction reads, not on the cache: another
		// instance may have switched it since.
		was := merge(*pc.def.Load(), *p)
		changed = was.Require2FA != on
		switch {
		case changed && on:
			p.Since = svc.now()
		case on && p.Since.IsZero():
			p.Since = was.Since
		}
		p.RequireSet, p.Require2FA = true, on
		return nil
	})
	if err != nil {
		return p, false, err
	}
	if changed {
		svc.logger.Info("policy changed", zap.String("scope", scope), zap.Bool("require_2fa", on), zap.String("by", a.User))
		svc.Audit.Record(a.event(audit.TypePolicyChanged, "", map[string]string{"scope": scope, "require_2fa": strconv.FormatBool(on)}))
	}
	return p, changed, nil
}

// SetIdleMinutes sets the scope's session timeout (5–1440 minutes). It
// applies to existing sessions at once: the check reads it from memory.
func (svc *Service) SetIdleMinutes(ctx context.Context, a Actor, scope string, minutes int) (Policy, error) {
	if err := ValidateIdleTimeout(time.Duration(minutes) * time.Minute); err != nil {
		return Policy{}, fmtErr(ErrBadTimeout, "Session timeout must be 5 to 1440 minutes, not %d.", minutes)
	}
	pc, err := svc.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	p, err := pc.update(ctx, svc, func(p *Policy) error {
		p.IdleMinutes = minutes
		return nil
	})
	if err != nil {
		return p, err
	}
	svc.logger.Info("timeout changed", zap.String("scope", scope), zap.Int("minutes", minutes), zap.String("by", a.User))
	svc.Audit.Record(a.event(audit.TypeTimeoutChanged, "", map[string]string{"scope": scope, "minutes": strconv.Itoa(minutes)}))
	return p, nil
}

// orNone is ms, or an empty list rather than nil (for JSON).
func orNone(ms []string) []string {
	if ms == nil {
		return []string{}
	}
	return ms
}

// RemoveMemberMethod removes one method of a member: what an admin does
// for someone who lost access to it (their phone number changed, say). The
// member must set up their own replacement. Removing the member's last
// method is a reset: the recovery codes and the sessions end with it, in
// the same transaction.
func (svc *Service) RemoveMemberMethod(ctx context.Context, a Actor, user, method string) (u storage.User, last bool, err error) {
	if user == "" {
		return u, false, ErrNoUserNamed
	}
	err = svc.Store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if u, err = tx.User(user); errors.Is(err, storage.ErrNotFound) {
			return ErrUnknownUser
		} else if err != nil {
			return err
		}
		if !holds(u, method) {
			return ErrMethodNotSetUp
		}
		dropMethod(&u, method)
		last = len(Methods(u)) == 0
		if last {
			u.RecoveryHashes, u.PendingCodes = nil, nil
		}
		u.UpdatedAt = svc.now()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if last {
			return deleteUserSessions(tx, user)
		}
		return nil
	})
	if errors.Is(err, ErrUnknownUser) || errors.Is(err, ErrMethodNotSetUp) {
		return u, false, err
	}
	if err != nil {
		return u, false, fmt.Errorf("mfa: remove %s of %q: %w", method, user, err)
	}
	ended := 0
	if last {
		ended = len(svc.dropUserSessions(user, nil))
	}
	svc.logger.Info("method removed by admin", zap.String("user", user), zap.String("method", method), zap.String("by", a.User), zap.Bool("last", last))
	svc.Audit.Record(a.event(audit.TypeMethodRemoved, user, map[string]string{"method": method, "by": "admin", "sessions_ended": strconv.Itoa(ended)}))
	return u, last, nil
}

// RemoveMemberMethod is an admin's removal of a member's method; the member
// is emailed (emailed says whether the notice was queued).
func (r *Realm) RemoveMemberMethod(ctx context.Context, a Actor, user, method string) (emailed, last bool, err error) {
	u, last, err := r.svc.RemoveMemberMethod(ctx, a, user, method)
	if err != nil {
		return false, false, err
	}
	return r.notify(u, mail.MethodRemovedNotice(r.cfg.Issuer, user, a.User, methodWordsMail[method], last)), last, nil
}

var methodWordsMail = map[string]string{MethodTOTP: "the authenticator app", MethodEmail: "codes by email", MethodSMS: "codes by text message"}

// SetRememberAllowed lets the scope's users tick "remember this browser",
// or forbids it: then every sign-in asks for the second factor, remembered
// browsers included.
func (svc *Service) SetRememberAllowed(ctx context.Context, a Actor, scope string, allowed bool) (Policy, error) {
	pc, err := svc.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	p, err := pc.update(ctx, svc, func(p *Policy) error {
		p.NoRemember = !allowed
		return nil
	})
	if err != nil {
		return p, err
	}
	svc.logger.Info("policy changed", zap.String("scope", scope), zap.Bool("remember_browsers", allowed), zap.String("by", a.User))
	svc.Audit.Record(a.event(audit.TypePolicyChanged, "", map[string]string{"scope": scope, "remember_browsers": strconv.FormatBool(allowed)}))
	return p, nil
}

// SetRememberAllowed is SetRememberAllowed for the realm's scope.
func (r *Realm) SetRememberAllowed(ctx context.Context, a Actor, allowed bool) (Policy, error) {
	return r.svc.SetRememberAllowed(ctx, a, r.cfg.Scope, allowed)
}

// ResetUser is an admin's reset of a member's 2FA; the member is emailed
// when email is configured and an address is known: emailed says whether
// the notice was queued, so the admin knows to tell them otherwise.
func (r *Realm) ResetUser(ctx context.Context, a Actor, user string) (emailed bool, err error) {
	u, _, err := r.svc.ResetUser(ctx, a, user)
	if err != nil {
		return false, err
	}
	return r.notify(u, mail.ResetNotice(r.cfg.Issuer, user, a.User)), nil
}

// SetRequire2FA switches the realm's policy; switching it on emails every
// member without 2FA a link to securityURL.
func (r *Realm) SetRequire2FA(ctx context.Context, a Actor, on bool, securityURL string) (Policy, error) {
	p, changed, err := r.svc.SetRequire2FA(ctx, a, r.cfg.Scope, on)
	if err != nil || !changed || !on {
		return p, err
	}
	r.noticeUnenrolled(ctx, a, securityURL)
	return p, nil
}

// SetIdleMinutes sets the realm's session timeout.
func (r *Realm) SetIdleMinutes(ctx context.Context, a Actor, minutes int) (Policy, error) {
	return r.svc.SetIdleMinutes(ctx, a, r.cfg.Scope, minutes)
}

// noticeUnenrolled tells every member without 2FA that it is now required.
// The emails are queued after the read: no side effects inside a transaction.
func (r *Realm) noticeUnenrolled(ctx context.Context, a Actor, securityURL string) {
	var todo []storage.User
	err := r.svc.Store.View(ctx, func(tx storage.Tx) error {
		todo = todo[:0]
		return tx.ForEachUser(func(u storage.User) error {
			if !HasFactor(u) {
				todo = append(todo, u)
			}
			return nil
		})
	})
	if err != nil {
		r.log.Error("enforcement notices", zap.Error(err))
		return
	}
	sent := 0
	for _, u := range todo {
		if r.notify(u, mail.EnforcementNotice(r.cfg.Issuer, u.ID, securityURL)) {
			sent++
			r.record(System, audit.TypeEnforcementNoticeSent, u.ID, nil)
		}
	}
	r.decision(a, "enforcement notices queued", zap.Int("count", sent))
}

// user reads one user record (ErrNotFound passes through).
func (svc *Service) user(ctx context.Context, id string) (storage.User, error) {
	var u storage.User
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		u, err = tx.User(id)
		return err
	})
	return u, err
}
