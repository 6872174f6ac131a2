package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/recovery"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/totp"
)

// call is one request to the gateway's own pages or API.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	cur current
	now time.Time
}

func (c *call) ctx() context.Context { return c.r.Context() }

// user is the session's user; pending sessions have one too.
func (c *call) sess() *session.Session { return c.cur.sess }

func totpAAD(user string) []byte  { return []byte("totp:" + user) }
func codesAAD(user string) []byte { return []byte("codes:" + user) }

// errAbort carries an apiError out of a store transaction.
type errAbort struct{ e *apiError }

func (e errAbort) Error() string { return e.e.Error() }

// commit runs fn on the user's record and, in the same transaction, replaces
// old with s (when s is not nil): a TOTP step is consumed atomically with the
// session it creates. The in-memory table changes only after the commit.
func (g *Gateway) commit(ctx context.Context, userID string, fn func(*storage.User) error, old, s *session.Session) error {
	var rec storage.Session
	if s != nil {
		var err error
		if rec, err = g.rt.toRecord(s); err != nil {
			return err
		}
	}
	err := g.rt.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(userID)
		if errors.Is(err, storage.ErrNotFound) {
			u = storage.User{ID: userID, CreatedAt: g.rt.now()}
		} else if err != nil {
			return err
		}
		if fn != nil {
			if err := fn(&u); err != nil {
				return err
			}
		}
		u.UpdatedAt = g.rt.now()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if s == nil {
			return nil
		}
		if old != nil && old.State != session.Anonymous {
			if err := tx.DeleteSession(old.Key.String()); err != nil {
				return err
			}
		}
		return tx.PutSession(rec)
	})
	if err != nil {
		return err
	}
	if s != nil {
		g.rt.Sessions.Replace(old, s)
	}
	return nil
}

// asAPIError turns a commit error into what the client sees.
func (g *Gateway) asAPIError(err error, op string) *apiError {
	var a errAbort
	if errors.As(err, &a) {
		return a.e
	}
	g.log.Error("store", zap.String("op", op), zap.Error(err))
	return errInternal
}

// rotated returns a copy of s under a fresh id, and that id for the cookie.
func (g *Gateway) rotated(s *session.Session, mutate func(*session.Session)) (*session.Session, session.ID, error) {
	id, err := g.newSessionID()
	if err != nil {
		return nil, id, err
	}
	n := s.Clone(id.Key())
	mutate(n)
	return n, id, nil
}

// checkLimits refuses a code while the user or the address is locked out.
func (g *Gateway) checkLimits(c *call, user string) *apiError {
	win := g.cfg.AttemptWindow
	ra := max(
		g.rt.attempts.retryAfter("u:"+user, g.cfg.MaxAttempts, win, c.now),
		g.rt.attempts.retryAfter("a:"+clientIP(c.r), 4*g.cfg.MaxAttempts, win, c.now),
	)
	if ra <= 0 {
		return nil
	}
	e := *errRateLimited
	e.RetryAfter = ra
	g.logDecision(c.r, "code refused: locked out", zap.String("user", user), zap.Duration("retry_after", ra))
	g.audit(c.r, audit.TypeLockout, user, user, map[string]string{"retry_after": ra.Round(time.Second).String()})
	return &e
}

// countFailure records a wrong code against the user and the address.
func (g *Gateway) countFailure(c *call, user, kind string, reason error) {
	n := g.rt.attempts.fail("u:"+user, g.cfg.AttemptWindow, c.now)
	g.rt.attempts.fail("a:"+clientIP(c.r), g.cfg.AttemptWindow, c.now)
	typ := audit.TypeChallengeFailed
	if kind == "recovery" {
		typ = audit.TypeRecoveryFailed
	}
	g.audit(c.r, typ, user, user, map[string]string{"kind": kind, "failures": itoa(n)})
	g.logDecision(c.r, "wrong code", zap.String("user", user), zap.String("kind", kind),
		zap.NamedError("reason", reason), zap.Int("failures", n))
	if n == g.cfg.MaxAttempts {
		g.log.Warn("user locked out", zap.String("user", user), zap.Duration("for", g.cfg.AttemptWindow))
	}
}

// checkTOTP validates code for u inside a transaction and consumes its step.
func (g *Gateway) checkTOTP(c *call, u *storage.User, code string) error {
	secret, err := g.rt.box.Open(u.TOTPSecret, totpAAD(u.ID))
	if err != nil {
		return fmt.Errorf("open totp secret: %w", err)
	}
	step, err := totp.Validate(secret, code, c.now, u.TOTPLastStep)
	switch {
	case errors.Is(err, totp.ErrMalformed):
		return errAbort{errMalformedCode}
	case errors.Is(err, totp.ErrInvalid), errors.Is(err, totp.ErrReplayed):
		g.countFailure(c, u.ID, "totp", err)
		return errAbort{errWrongCode}
	case err != nil:
		return err
	}
	u.TOTPLastStep = step
	return nil
}

// issueCodes makes a fresh set of recovery codes for u: hashes to keep, and
// the plaintext sealed until the user confirms they saved them.
func (g *Gateway) issueCodes(u *storage.User) ([]string, error) {
	codes, err := recovery.Generate(g.rt.rand, recovery.Count)
	if err != nil {
		return nil, err
	}
	u.RecoveryHashes = u.RecoveryHashes[:0:0]
	for _, code := range codes {
		n, err := recovery.Normalize(code)
		if err != nil {
			return nil, err
		}
		u.RecoveryHashes = append(u.RecoveryHashes, recovery.Hash(g.rt.recoveryKey, n))
	}
	plain, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	if u.PendingCodes, err = g.rt.box.Seal(plain, codesAAD(u.ID)); err != nil {
		return nil, err
	}
	return codes, nil
}

// pendingCodes returns the codes the user has not yet confirmed saving.
func (g *Gateway) pendingCodes(u storage.User) []string {
	if len(u.PendingCodes) == 0 {
		return nil
	}
	plain, err := g.rt.box.Open(u.PendingCodes, codesAAD(u.ID))
	var codes []string
	if err != nil || json.Unmarshal(plain, &codes) != nil {
		g.log.Error("open pending recovery codes", zap.String("user", u.ID), zap.Error(err))
		return nil
	}
	return codes
}

// setup is an authenticator waiting for its confirmation code.
type setup struct {
	Secret, URI, QR string
}

// setupFor returns the user's unconfirmed authenticator, creating one when
// create is set.
func (g *Gateway) setupFor(c *call, user string, create bool) (*setup, *apiError) {
	u, err := g.loadUser(c.ctx(), user)
	if err != nil {
		return nil, g.asAPIError(err, "load user")
	}
	if u.TOTPConfirmed {
		return nil, errAlreadyEnrolled
	}
	var secret []byte
	if len(u.TOTPSecret) > 0 {
		if secret, err = g.rt.box.Open(u.TOTPSecret, totpAAD(user)); err != nil {
			g.log.Error("open totp secret", zap.String("user", user), zap.Error(err))
			secret = nil
		}
	}
	if secret == nil {
		if !create {
			return nil, errNoSetup
		}
		if secret, err = totp.GenerateSecret(g.rt.rand); err != nil {
			return nil, g.asAPIError(err, "generate secret")
		}
		sealed, err := g.rt.box.Seal(secret, totpAAD(user))
		if err != nil {
			return nil, g.asAPIError(err, "seal secret")
		}
		err = g.commit(c.ctx(), user, func(u *storage.User) error {
			if u.TOTPConfirmed {
				return errAbort{errAlreadyEnrolled}
			}
			// A new key starts its own replay window: the old key's last
			// step says nothing about the new key's codes.
			u.TOTPSecret, u.TOTPConfirmed, u.TOTPLastStep = sealed, false, 0
			return nil
		}, nil, nil)
		if err != nil {
			return nil, g.asAPIError(err, "store secret")
		}
		g.logDecision(c.r, "enrolment started", zap.String("user", user))
		g.audit(c.r, audit.TypeEnrolStarted, user, user, nil)
	}
	uri := totp.KeyURI(g.cfg.Issuer, user, secret)
	qr, err := totp.QRCodeDataURI(uri, 240)
	if err != nil {
		return nil, g.asAPIError(err, "qr code")
	}
	return &setup{Secret: totp.EncodeSecret(secret), URI: uri, QR: qr}, nil
}

// confirmSetup checks the first code from a new authenticator, turns 2FA on,
// lifts the session to AAL2 and returns the recovery codes to show once.
func (g *Gateway) confirmSetup(c *call, code string) ([]string, *apiError) {
	s := c.sess()
	if e := g.checkLimits(c, s.User); e != nil {
		return nil, e
	}
	ns, id, err := g.rotated(s, func(n *session.Session) { n.AAL = 2 })
	if err != nil {
		return nil, g.asAPIError(err, "session id")
	}
	var codes []string
	err = g.commit(c.ctx(), s.User, func(u *storage.User) error {
		if u.TOTPConfirmed {
			return errAbort{errAlreadyEnrolled}
		}
		if len(u.TOTPSecret) == 0 {
			return errAbort{errNoSetup}
		}
		// The confirmation code is consumed too: it cannot be replayed at the
		// challenge a moment later.
		if err := g.checkTOTP(c, u, code); err != nil {
			return err
		}
		u.TOTPConfirmed, u.EnrolledAt = true, c.now
		var err error
		codes, err = g.issueCodes(u)
		return err
	}, s, ns)
	if err != nil {
		return nil, g.asAPIError(err, "confirm setup")
	}
	g.rt.attempts.reset("u:" + s.User)
	g.setGatewayCookie(c.w.Header(), c.r, id, ns, c.now)
	c.cur.sess, c.cur.id = ns, id
	g.logDecision(c.r, "2fa enabled", zap.String("user", s.User))
	g.audit(c.r, audit.Type2FAEnabled, s.User, s.User, map[string]string{"method": "totp"})
	return codes, nil
}

// acknowledgeCodes records that the user saved their codes; a user who had
// to enrol may now reach the app.
func (g *Gateway) acknowledgeCodes(c *call, saved bool) *apiError {
	s := c.sess()
	if !saved {
		return errNotAcknowledged
	}
	var ns *session.Session
	if s.MustEnrol {
		ns = s.Clone(s.Key)
		ns.MustEnrol = false
	}
	err := g.commit(c.ctx(), s.User, func(u *storage.User) error {
		if len(u.PendingCodes) == 0 {
			return errAbort{errNoPendingCodes}
		}
		if ns != nil && !u.TOTPConfirmed {
			return errAbort{errEnrolmentRequired}
		}
		u.PendingCodes = nil
		return nil
	}, s, ns)
	if err != nil {
		return g.asAPIError(err, "acknowledge codes")
	}
	if ns != nil {
		c.cur.sess = ns
	}
	g.logDecision(c.r, "recovery codes saved", zap.String("user", s.User))
	g.audit(c.r, audit.TypeCodesAcknowledged, s.User, s.User, nil)
	return nil
}

// passChallenge checks a TOTP code for a pending sign-in and, on success,
// makes the session active at AAL2 and releases the app's held cookies.
func (g *Gateway) passChallenge(c *call, code string) (string, *apiError) {
	s := c.sess()
	if e := g.checkLimits(c, s.User); e != nil {
		return "", e
	}
	ns, id, err := g.activate(s, false)
	if err != nil {
		return "", g.asAPIError(err, "session id")
	}
	err = g.commit(c.ctx(), s.User, func(u *storage.User) error {
		if !u.TOTPConfirmed {
			return errAbort{errUseRecovery}
		}
		if err := g.checkTOTP(c, u, code); err != nil {
			return err
		}
		u.LastSignInAt = c.now
		return nil
	}, s, ns)
	if err != nil {
		return "", g.asAPIError(err, "challenge")
	}
	g.rt.attempts.reset("u:" + s.User)
	g.release(c, s, ns, id)
	g.logDecision(c.r, "challenge passed", zap.String("user", s.User), zap.String("method", "totp"))
	g.audit(c.r, audit.TypeChallengePassed, s.User, s.User, map[string]string{"method": "totp"})
	return ns.Next, nil
}

// useRecoveryCode spends one recovery code for a pending sign-in. As the
// seeds' users know it, it also disables the authenticator (a stolen
// device's secret dies as soon as the owner signs in this way) and sends the
// user to set up a new one.
func (g *Gateway) useRecoveryCode(c *call, input string) (string, *apiError) {
	s := c.sess()
	if _, err := recovery.Normalize(input); err != nil {
		return "", errMalformedRecovery
	}
	if e := g.checkLimits(c, s.User); e != nil {
		return "", e
	}
	ns, id, err := g.activate(s, true)
	if err != nil {
		return "", g.asAPIError(err, "session id")
	}
	err = g.commit(c.ctx(), s.User, func(u *storage.User) error {
		i, err := recovery.Match(g.rt.recoveryKey, u.RecoveryHashes, input)
		if err != nil || i < 0 {
			g.countFailure(c, u.ID, "recovery", err)
			return errAbort{errWrongRecovery}
		}
		u.RecoveryHashes = recovery.Remove(u.RecoveryHashes, i)
		u.TOTPSecret, u.TOTPConfirmed = nil, false
		u.LastSignInAt = c.now
		return nil
	}, s, ns)
	if err != nil {
		return "", g.asAPIError(err, "recovery")
	}
	g.rt.attempts.reset("u:" + s.User)
	g.release(c, s, ns, id)
	g.logDecision(c.r, "recovery code used", zap.String("user", s.User))
	g.audit(c.r, audit.TypeRecoveryUsed, s.User, s.User, map[string]string{"authenticator": "removed"})
	return g.cfg.Prefix + "security?setup=1", nil
}

// activate turns a pending session into an active AAL2 one under a new id,
// binding the held app cookies.
func (g *Gateway) activate(s *session.Session, mustEnrol bool) (*session.Session, session.ID, error) {
	return g.rotated(s, func(n *session.Session) {
		n.State, n.AAL, n.MustEnrol = session.Active, 2, mustEnrol
		n.ExpiresAt = n.AuthAt.Add(g.cfg.MaxLifetime)
		var set []session.Binding
		for _, line := range n.Held {
			if ck, err := http.ParseSetCookie(line); err == nil && ck.Value != "" && ck.MaxAge >= 0 {
				set = append(set, session.Binding{Name: ck.Name, Hash: session.HashValue(ck.Value)})
			}
		}
		n.UpdateBindings(set, nil)
		n.Held = nil
	})
}

// release hands the browser the app's held cookies and the new gateway cookie.
func (g *Gateway) release(c *call, old, ns *session.Session, id session.ID) {
	h := c.w.Header()
	for _, line := range old.Held {
		h.Add("Set-Cookie", line)
	}
	g.setGatewayCookie(h, c.r, id, ns, c.now)
	c.cur.sess, c.cur.id = ns, id
}

// regenerateCodes replaces the user's recovery codes (AAL2 only).
func (g *Gateway) regenerateCodes(c *call) ([]string, *apiError) {
	s := c.sess()
	if s.AAL < 2 {
		return nil, errAAL2Required
	}
	var codes []string
	err := g.commit(c.ctx(), s.User, func(u *storage.User) error {
		if !u.TOTPConfirmed {
			return errAbort{errNotEnrolled}
		}
		var err error
		codes, err = g.issueCodes(u)
		return err
	}, nil, nil)
	if err != nil {
		return nil, g.asAPIError(err, "regenerate codes")
	}
	g.logDecision(c.r, "recovery codes regenerated", zap.String("user", s.User))
	g.audit(c.r, audit.TypeCodesRegenerated, s.User, s.User, nil)
	return codes, nil
}

// disable2FA deletes the factor and the remaining codes (AAL2 only, so a
// stolen password cannot quietly turn 2FA off).
func (g *Gateway) disable2FA(c *call) *apiError {
	s := c.sess()
	if s.AAL < 2 {
		g.logDecision(c.r, "disable refused: aal2 required", zap.String("user", s.User))
		return errAAL2Required
	}
	if g.require2FA() {
		return errPolicyRequires
	}
	err := g.commit(c.ctx(), s.User, func(u *storage.User) error {
		if !u.TOTPConfirmed {
			return errAbort{errNotEnrolled}
		}
		u.TOTPSecret, u.TOTPConfirmed, u.RecoveryHashes, u.PendingCodes = nil, false, nil, nil
		return nil
	}, nil, nil)
	if err != nil {
		return g.asAPIError(err, "disable")
	}
	g.logDecision(c.r, "2fa disabled", zap.String("user", s.User))
	g.audit(c.r, audit.Type2FADisabled, s.User, s.User, nil)
	return nil
}

// hasFactor reports whether u must pass a second factor at sign-in: an
// authenticator, or recovery codes left after the authenticator was lost
// (until a new one is set up, the codes are the factor: a password alone
// must not be enough to enrol an attacker's authenticator).
func hasFactor(u storage.User) bool {
	return u.TOTPConfirmed || len(u.RecoveryHashes) > 0
}

// status is the JSON shape of GET status.
type status struct {
	User              string    `json:"user"`
	AAL               int       `json:"aal"`
	State             string    `json:"state"`
	Enrolled          bool      `json:"enrolled"`
	Methods           []string  `json:"methods"`
	Required          bool      `json:"required"`
	MustEnrol         bool      `json:"must_enrol"`
	RecoveryRemaining int       `json:"recovery_codes_remaining"`
	CodesPending      bool      `json:"recovery_codes_unacknowledged"`
	IdleDeadline      time.Time `json:"idle_deadline"`
	ExpiresAt         time.Time `json:"expires_at"`
}

func (g *Gateway) statusOf(c *call) (status, *apiError) {
	s := c.sess()
	u, err := g.loadUser(c.ctx(), s.User)
	if err != nil {
		return status{}, g.asAPIError(err, "status")
	}
	st := status{
		User: s.User, AAL: int(s.AAL), State: s.State.String(), Enrolled: u.TOTPConfirmed,
		Methods: []string{}, Required: g.require2FA(), MustEnrol: s.MustEnrol,
		RecoveryRemaining: len(u.RecoveryHashes), CodesPending: len(u.PendingCodes) > 0,
		IdleDeadline: s.LastSeen().Add(g.idleTimeout()).UTC().Truncate(time.Second),
		ExpiresAt:    s.ExpiresAt.UTC().Truncate(time.Second),
	}
	if u.TOTPConfirmed {
		st.Methods = append(st.Methods, "totp")
	}
	if len(u.RecoveryHashes) > 0 {
		st.Methods = append(st.Methods, "recovery_code")
	}
	return st, nil
}
