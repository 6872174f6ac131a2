package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// command. They work on a Runtime (one database) so the command line can
// reach them without an HTTP session.

// Member is a user the gateway has seen sign in.
type Member struct {
	User       string    `json:"user"`
	Email      string    `json:"email,omitempty"`
	Enrolled   bool      `json:"enrolled"`
	Method     string    `json:"method"` // "totp", "recovery_codes" or "none"
	LastSignIn time.Time `json:"last_sign_in,omitzero"`
	Sessions   int       `json:"sessions"`
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

// ErrUnknownUser and ErrUnknownSession are returned for ids that name nothing.
var (
	ErrUnknownUser    = errors.New("unknown user")
	ErrUnknownSession = errors.New("unknown session")
)

func methodOf(u storage.User) string {
	switch {
	case u.TOTPConfirmed:
		return "totp"
	case len(u.RecoveryHashes) > 0:
		return "recovery_codes"
	}
	return "none"
}

// Members lists every user in the store, with live session counts, sorted by id.
func (rt *Runtime) Members(ctx context.Context) ([]Member, error) {
	counts := map[string]int{}
	for _, s := range rt.Sessions.Snapshot(signedIn) {
		counts[s.User]++
	}
	var out []Member
	err := rt.Store.View(ctx, func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error {
			out = append(out, Member{
				User: u.ID, Email: u.Email, Enrolled: hasFactor(u), Method: methodOf(u),
				LastSignIn: u.LastSignInAt, Sessions: counts[u.ID],
			})
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, err
}

func signedIn(s *session.Session) bool { return s.State != session.Anonymous && !s.Revoked() }

// SessionList returns live sessions, of one user or ("" ) of everyone,
// most recently active first.
func (rt *Runtime) SessionList(user string) []SessionInfo {
	ss := rt.Sessions.Snapshot(func(s *session.Session) bool {
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

// RevokeSession ends the session with the given id. If user is not "", the
// session must belong to that user (people revoke only their own).
func (rt *Runtime) RevokeSession(ctx context.Context, id, user string) (SessionInfo, error) {
	k, err := session.ParseKey(id)
	if err != nil {
		return SessionInfo{}, ErrUnknownSession
	}
	s := rt.Sessions.Get(k)
	if s == nil || !signedIn(s) || (user != "" && s.User != user) {
		return SessionInfo{}, ErrUnknownSession
	}
	rt.Sessions.Remove(k)
	rt.deleteSessions([]*session.Session{s})
	return SessionInfo{ID: id, User: s.User, State: s.State.String(), AAL: int(s.AAL)}, nil
}

// EndUserSessions ends every session of user except keep (may be nil).
func (rt *Runtime) EndUserSessions(user string, keep *session.Session) int {
	ss := rt.Sessions.Snapshot(func(s *session.Session) bool { return s.User == user && s != keep && signedIn(s) })
	for _, s := range ss {
		rt.Sessions.Remove(s.Key)
	}
	rt.deleteSessions(ss)
	return len(ss)
}

// ResetUser deletes the user's factor and recovery codes and ends their
// sessions: what an admin does for a user who lost their phone.
func (rt *Runtime) ResetUser(ctx context.Context, user string) (storage.User, int, error) {
	var u storage.User
	err := rt.Store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if u, err = tx.User(user); errors.Is(err, storage.ErrNotFound) {
			return ErrUnknownUser
		} else if err != nil {
			return err
		}
		u.TOTPSecret, u.TOTPConfirmed, u.TOTPLastStep = nil, false, 0
		u.RecoveryHashes, u.PendingCodes = nil, nil
		u.UpdatedAt = rt.now()
		return tx.PutUser(u)
	})
	if err != nil {
		return u, 0, err
	}
	return u, rt.EndUserSessions(user, nil), nil
}

// Policy returns the scope's policy as this instance sees it.
func (rt *Runtime) Policy(scope string) (Policy, error) {
	pc, err := rt.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	return pc.get(rt), nil
}

// SetRequire2FA switches "require 2FA for everyone" for scope. Switching it
// on records when, so long-lived sessions can be logged out after the grace
// period; current sessions are left alone.
func (rt *Runtime) SetRequire2FA(ctx context.Context, scope string, on bool) (Policy, bool, error) {
	pc, err := rt.scopePolicy(scope)
	if err != nil {
		return Policy{}, false, err
	}
	changed := false
	was := pc.get(rt).Require2FA
	p, err := pc.update(ctx, rt, func(p *Policy) error {
		changed = was != on
		if changed && on {
			p.Since = rt.now()
		} else if !changed && on && p.Since.IsZero() {
			p.Since = pc.get(rt).Since
		}
		p.RequireSet, p.Require2FA = true, on
		return nil
	})
	return p, changed, err
}

// SetIdleMinutes sets the scope's session timeout (5–1440 minutes). It
// applies to existing sessions at once: the check reads it from memory.
func (rt *Runtime) SetIdleMinutes(ctx context.Context, scope string, minutes int) (Policy, error) {
	if err := ValidateIdleTimeout(time.Duration(minutes) * time.Minute); err != nil {
		return Policy{}, err
	}
	pc, err := rt.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	return pc.update(ctx, rt, func(p *Policy) error {
		p.IdleMinutes = minutes
		return nil
	})
}

// user reads one user record (ErrNotFound passes through).
func (rt *Runtime) user(ctx context.Context, id string) (storage.User, error) {
	var u storage.User
	err := rt.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		u, err = tx.User(id)
		return err
	})
	return u, err
}

// isAdmin: an active session whose user the operator named an admin, or
// whose role (as the app reported it at sign-in) is an admin role.
func (g *Gateway) isAdmin(s *session.Session) bool {
	if s == nil || s.State != session.Active {
		return false
	}
	return slices.Contains(g.cfg.Admins, s.User) || (s.Role != "" && slices.Contains(g.cfg.AdminRoles, s.Role))
}

// unenrolled counts members without a second factor.
func unenrolled(ms []Member) int {
	n := 0
	for _, m := range ms {
		if !m.Enrolled {
			n++
		}
	}
	return n
}

// adminReset is the admin's reset of a user's 2FA, from the page or the API.
func (g *Gateway) adminReset(c *call, user string) *apiError {
	if user == "" {
		return errBadRequest.with("Name the user to reset.")
	}
	_, ended, err := g.rt.ResetUser(c.ctx(), user)
	if errors.Is(err, ErrUnknownUser) {
		return errUnknownUser
	}
	if err != nil {
		return g.asAPIError(err, "admin reset")
	}
	g.logDecision(c.r, "2fa reset by admin", zap.String("user", user), zap.String("admin", c.sess().User), zap.Int("sessions_ended", ended))
	g.audit(c.r, audit.TypeAdminReset, c.sess().User, user, map[string]string{"sessions_ended": itoa(ended)})
	if u, err := g.rt.user(c.ctx(), user); err == nil {
		g.notify(u, mail.ResetNotice(g.cfg.Issuer, user, c.sess().User))
	}
	return nil
}

func (g *Gateway) setPolicy(c *call, on bool) (Policy, *apiError) {
	p, changed, err := g.rt.SetRequire2FA(c.ctx(), g.cfg.Scope, on)
	if err != nil {
		return p, g.asAPIError(err, "set policy")
	}
	if changed {
		g.logDecision(c.r, "policy changed", zap.String("scope", g.cfg.Scope), zap.Bool("require_2fa", on), zap.String("admin", c.sess().User))
		g.audit(c.r, audit.TypePolicyChanged, c.sess().User, "", map[string]string{"scope": g.cfg.Scope, "require_2fa": strconv.FormatBool(on)})
		if on {
			g.noticeUnenrolled(c)
		}
	}
	return p, nil
}

func (g *Gateway) setTimeout(c *call, minutes int) (Policy, *apiError) {
	p, err := g.rt.SetIdleMinutes(c.ctx(), g.cfg.Scope, minutes)
	if err != nil {
		var e *apiError
		if errors.As(err, &e) {
			return p, e
		}
		if verr := ValidateIdleTimeout(time.Duration(minutes) * time.Minute); verr != nil {
			return p, errBadRequest.with(fmt.Sprintf("Session timeout must be 5 to 1440 minutes, not %d.", minutes))
		}
		return p, g.asAPIError(err, "set timeout")
	}
	g.logDecision(c.r, "timeout changed", zap.String("scope", g.cfg.Scope), zap.Int("minutes", minutes), zap.String("admin", c.sess().User))
	g.audit(c.r, audit.TypeTimeoutChanged, c.sess().User, "", map[string]string{"scope": g.cfg.Scope, "minutes": itoa(minutes)})
	return p, nil
}

// notify emails u when email is configured and an address is known (or
// can be made from the template). It never blocks.
func (g *Gateway) notify(u storage.User, m mail.Message) bool {
	if g.cfg.Mailer == nil {
		return false
	}
	addr, ok := mail.Address(u.Email, g.cfg.EmailTemplate, u.ID)
	if !ok {
		g.log.Info("no email address for notice", zap.String("user", u.ID), zap.String("subject", m.Subject))
		return false
	}
	m.To = addr
	return g.cfg.Mailer.Queue(m)
}

// noticeUnenrolled tells every member without 2FA that it is now required,
// as HappyFox does when an admin switches enforcement on.
func (g *Gateway) noticeUnenrolled(c *call) {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	securityURL := scheme + "://" + c.r.Host + g.cfg.Prefix + "security?setup=1"
	sent := 0
	err := g.rt.Store.View(c.ctx(), func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error {
			if !hasFactor(u) && g.notify(u, mail.EnforcementNotice(g.cfg.Issuer, u.ID, securityURL)) {
				sent++
				g.audit(c.r, audit.TypeEnforcementNoticeSent, audit.ActorSystem, u.ID, nil)
			}
			return nil
		})
	})
	if err != nil {
		g.log.Error("enforcement notices", zap.Error(err))
	}
	g.logDecision(c.r, "enforcement notices queued", zap.Int("count", sent))
}
