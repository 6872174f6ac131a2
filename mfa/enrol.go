package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/recovery"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/totp"
)

// Enrolment: setting up an authenticator, its recovery codes, and turning
// 2FA off again.

func totpAAD(user string) []byte  { return []byte("totp:" + user) }
func codesAAD(user string) []byte { return []byte("codes:" + user) }

// abort carries a domain error out of a store transaction unchanged.
type abort struct{ err error }

func (e abort) Error() string { return e.err.Error() }
func (e abort) Unwrap() error { return e.err }

// commit runs fn on the user's record and, in the same transaction, replaces
// old with s (when s is not nil): a TOTP step is consumed atomically with the
// session it creates. The in-memory table changes only after the commit.
func (r *Realm) commit(ctx context.Context, userID string, fn func(*storage.User) error, old, s *session.Session) error {
	svc := r.svc
	var rec storage.Session
	if s != nil {
		var err error
		if rec, err = svc.toRecord(s); err != nil {
			return err
		}
	}
	err := svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(userID)
		if errors.Is(err, storage.ErrNotFound) {
			u = storage.User{ID: userID, CreatedAt: svc.now()}
		} else if err != nil {
			return err
		}
		if fn != nil {
			if err := fn(&u); err != nil {
				return err
			}
		}
		u.UpdatedAt = svc.now()
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
		var a abort
		if errors.As(err, &a) {
			return a.err
		}
		return fmt.Errorf("mfa: store: %w", err)
	}
	if s != nil {
		svc.Sessions.Replace(old, s)
	}
	return nil
}

// User reads a user's record; a user the store does not know is a new one.
func (svc *Service) User(ctx context.Context, id string) (storage.User, error) {
	u, err := svc.user(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{ID: id}, nil
	}
	return u, err
}

// removeAuthenticator deletes u's authenticator, a replacement waiting to
// be confirmed, and whatever its lock held.
func removeAuthenticator(u *storage.User) {
	u.TOTPSecret, u.TOTPConfirmed, u.TOTPLastStep, u.NextTOTPSecret = nil, false, 0, nil
	u.Devices = nil // a change of factors forgets every remembered browser
	u.FailedCodes, u.FactorLockedAt = 0, time.Time{}
}

// HasFactor reports whether u must pass a second factor at sign-in: an
// authenticator, or recovery codes left after the authenticator was lost
// (until a new one is set up, the codes are the factor: a password alone
// must not be enough to enrol an attacker's authenticator).
func HasFactor(u storage.User) bool {
	return len(Methods(u)) > 0 || len(u.RecoveryHashes) > 0
}

// issueCodes makes a fresh set of recovery codes for u: hashes to keep, and
// the plaintext sealed until the user confirms they saved them.
func (svc *Service) issueCodes(u *storage.User) ([]string, error) {
	codes, err := recovery.Generate(svc.rand, recovery.Count)
	if err != nil {
		return nil, err
	}
	u.RecoveryHashes = u.RecoveryHashes[:0:0]
	for _, code := range codes {
		n, err := recovery.Normalize(code)
		if err != nil {
			return nil, err
		}
		u.RecoveryHashes = append(u.RecoveryHashes, recovery.Hash(svc.recoveryKey, n))
	}
	plain, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	if u.PendingCodes, err = svc.box.Seal(plain, codesAAD(u.ID)); err != nil {
		return nil, err
	}
	return codes, nil
}

// PendingCodes returns the codes the user has not yet confirmed saving.
func (svc *Service) PendingCodes(u storage.User) []string {
	if len(u.PendingCodes) == 0 {
		return nil
	}
	plain, err := svc.box.Open(u.PendingCodes, codesAAD(u.ID))
	var codes []string
	if err != nil || json.Unmarshal(plain, &codes) != nil {
		svc.logger.Error("open pending recovery codes", zap.String("user", u.ID), zap.Error(err))
		return nil
	}
	return codes
}

// Setup is an authenticator waiting for its confirmation code.
type Setup struct {
	Secret string // base32, grouped for typing by hand
	URI    string // otpauth:// for phones
	QR     string // data: URI of the QR code
}

// Setup returns the user's unconfirmed authenticator, creating one when
// create is set.
func (r *Realm) Setup(ctx context.Context, a Actor, user string, create bool) (*Setup, error) {
	svc := r.svc
	u, err := svc.User(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("mfa: load user: %w", err)
	}
	if u.TOTPConfirmed {
		return nil, ErrAlreadyEnrolled
	}
	var secret []byte
	if len(u.TOTPSecret) > 0 {
		if secret, err = svc.box.Open(u.TOTPSecret, totpAAD(user)); err != nil {
			r.log.Error("open totp secret", zap.String("user", user), zap.Error(err))
			secret = nil
		}
	}
	if secret == nil {
		if !create {
			return nil, ErrNoSetup
		}
		if secret, err = totp.GenerateSecret(svc.rand); err != nil {
			return nil, fmt.Errorf("mfa: generate secret: %w", err)
		}
		sealed, err := svc.box.Seal(secret, totpAAD(user))
		if err != nil {
			return nil, fmt.Errorf("mfa: seal secret: %w", err)
		}
		err = r.commit(ctx, user, func(u *storage.User) error {
			if u.TOTPConfirmed {
				return abort{ErrAlreadyEnrolled}
			}
			// A new key starts its own replay window: the old key's last
			// step says nothing about the new key's codes.
			u.TOTPSecret, u.TOTPConfirmed, u.TOTPLastStep = sealed, false, 0
			return nil
		}, nil, nil)
		if err != nil {
			return nil, err
		}
		r.decision(a, "enrolment started", zap.String("user", user))
		r.record(a, audit.TypeEnrolStarted, user, nil)
	}
	return r.setupOf(user, secret)
}

// setupOf is what an authenticator app needs to take secret.
func (r *Realm) setupOf(user string, secret []byte) (*Setup, error) {
	uri := totp.KeyURI(r.cfg.Issuer, user, secret)
	qr, err := totp.QRCodeDataURI(uri, 240)
	if err != nil {
		return nil, fmt.Errorf("mfa: qr code: %w", err)
	}
	return &Setup{Secret: totp.EncodeSecret(secret), URI: uri, QR: qr}, nil
}

// ConfirmSetup checks the first code from a new authenticator, turns 2FA on,
// lifts the session to AAL2 under a new id and returns the recovery codes to
// show once.
func (r *Realm) ConfirmSetup(ctx context.Context, a Actor, s *session.Session, code string) (Changed, []string, error) {
	now := r.svc.now()
	if err := r.checkLimits(a, s.User, kindTOTP, now); err != nil {
		return Changed{}, nil, err
	}
	ns, id, err := r.rotated(s, func(n *session.Session) { n.AAL = 2 })
	if err != nil {
		return Changed{}, nil, fmt.Errorf("mfa: session id: %w", err)
	}
	var codes []string
	err = r.commit(ctx, s.User, func(u *storage.User) error {
		codes = nil
		if u.TOTPConfirmed {
			return abort{ErrAlreadyEnrolled}
		}
		if len(u.TOTPSecret) == 0 {
			return abort{ErrNoSetup}
		}
		// Adding an authenticator beside another method takes a session
		// that passed it: a stolen password must not add a way in.
		first := len(Methods(*u)) == 0
		if !first && s.AAL < 2 {
			return abort{ErrAAL2Required}
		}
		if first && r.needsProof(*u, s, now) {
			return abort{ErrEmailProofNeeded}
		}
		// The confirmation code is consumed too: it cannot be replayed at the
		// challenge a moment later.
		if err := r.checkTOTP(u, code, now); err != nil {
			return err
		}
		u.TOTPConfirmed, u.EnrolledAt = true, now
		u.FailedCodes, u.FactorLockedAt = 0, time.Time{}
		u.Devices = nil
		if !first {
			return nil // the recovery codes the user has stay
		}
		var err error
		codes, err = r.svc.issueCodes(u)
		return err
	}, s, ns)
	if err != nil {
		return Changed{}, nil, r.failed(ctx, a, s.User, kindTOTP, err, now)
	}
	r.svc.attempts.reset(userKey(kindTOTP, s.User))
	r.decision(a, "2fa enabled", zap.String("user", s.User))
	r.record(a, audit.Type2FAEnabled, s.User, map[string]string{"method": "totp"})
	return Changed{Session: ns, ID: id}, codes, nil
}

// StartChange begins moving the user's authenticator to a new app (a new
// phone): it returns a new secret, kept beside the current one, which goes
// on working until ConfirmChange. Asking again returns the same new secret.
// The session must have passed a second factor (AAL2).
func (r *Realm) StartChange(ctx context.Context, a Actor, s *session.Session) (*Setup, error) {
	if s.AAL < 2 {
		return nil, ErrAAL2Required
	}
	svc := r.svc
	u, err := svc.User(ctx, s.User)
	if err != nil {
		return nil, fmt.Errorf("mfa: load user: %w", err)
	}
	if !u.TOTPConfirmed {
		return nil, ErrNotEnrolled
	}
	var secret []byte
	if len(u.NextTOTPSecret) > 0 {
		if secret, err = svc.box.Open(u.NextTOTPSecret, totpAAD(s.User)); err != nil {
			r.log.Error("open new totp secret", zap.String("user", s.User), zap.Error(err))
			secret = nil
		}
	}
	if secret == nil {
		if secret, err = totp.GenerateSecret(svc.rand); err != nil {
			return nil, fmt.Errorf("mfa: generate secret: %w", err)
		}
		sealed, err := svc.box.Seal(secret, totpAAD(s.User))
		if err != nil {
			return nil, fmt.Errorf("mfa: seal secret: %w", err)
		}
		err = r.commit(ctx, s.User, func(u *storage.User) error {
			if !u.TOTPConfirmed {
				return abort{ErrNotEnrolled}
			}
			u.NextTOTPSecret = sealed
			return nil
		}, nil, nil)
		if err != nil {
			return nil, err
		}
		r.decision(a, "authenticator change started", zap.String("user", s.User))
	}
	return r.setupOf(s.User, secret)
}

// ConfirmChange checks the first code from the new app and makes it the
// user's authenticator; the old one stops working. Recovery codes stay.
func (r *Realm) ConfirmChange(ctx context.Context, a Actor, s *session.Session, code string) error {
	if s.AAL < 2 {
		return ErrAAL2Required
	}
	now := r.svc.now()
	if err := r.checkLimits(a, s.User, kindTOTP, now); err != nil {
		return err
	}
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		if !u.TOTPConfirmed {
			return abort{ErrNotEnrolled}
		}
		if len(u.NextTOTPSecret) == 0 {
			return abort{ErrNoSetup}
		}
		// A new key starts its own replay window.
		step, err := r.validate(u.ID, u.NextTOTPSecret, code, now, 0)
		if err != nil {
			return err
		}
		u.TOTPSecret, u.TOTPLastStep, u.NextTOTPSecret = u.NextTOTPSecret, step, nil
		u.Devices = nil
		u.FailedCodes, u.FactorLockedAt = 0, time.Time{}
		return nil
	}, nil, nil)
	if err != nil {
		// Not counted towards the authenticator's lock: the code was for
		// the new app, and the old one is not being guessed.
		if errors.Is(err, ErrWrongCode) || errors.Is(err, ErrCodeUsed) {
			r.svc.attempts.fail(userKey(kindTOTP, s.User), r.cfg.AttemptWindow, now)
			r.svc.attempts.fail("a:"+a.Address, r.cfg.AttemptWindow, now)
		}
		return err
	}
	r.svc.attempts.reset(userKey(kindTOTP, s.User))
	r.decision(a, "authenticator changed", zap.String("user", s.User))
	r.record(a, audit.TypeAuthenticatorChanged, s.User, nil)
	return nil
}

// AcknowledgeCodes records that the user saved their codes; a user who had
// to enrol may now reach the app. It returns the session in force after.
func (r *Realm) AcknowledgeCodes(ctx context.Context, a Actor, s *session.Session, saved bool) (*session.Session, error) {
	if !saved {
		return s, ErrNotAcknowledged
	}
	var ns *session.Session
	if s.MustEnrol {
		ns = s.Clone(s.Key)
		ns.MustEnrol = false
	}
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		if len(u.PendingCodes) == 0 {
			return abort{ErrNoPendingCodes}
		}
		if ns != nil && len(Methods(*u)) == 0 {
			return abort{ErrEnrolmentRequired}
		}
		u.PendingCodes = nil
		return nil
	}, s, ns)
	if err != nil {
		return s, err
	}
	r.decision(a, "recovery codes saved", zap.String("user", s.User))
	r.record(a, audit.TypeCodesAcknowledged, s.User, nil)
	if ns != nil {
		return ns, nil
	}
	return s, nil
}

// RegenerateCodes replaces the user's recovery codes. It asks for fresh
// proof, a current authenticator or recovery code, besides an AAL2 session:
// a session left open on a shared computer must not be enough.
func (r *Realm) RegenerateCodes(ctx context.Context, a Actor, s *session.Session, proof string) ([]string, error) {
	var codes []string
	err := r.stepUp(ctx, a, s, proof, "regenerate codes", func(u *storage.User) error {
		if len(Methods(*u)) == 0 {
			return abort{ErrNotEnrolled}
		}
		var err error
		codes, err = r.svc.issueCodes(u)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.decision(a, "recovery codes regenerated", zap.String("user", s.User))
	r.record(a, audit.TypeCodesRegenerated, s.User, nil)
	return codes, nil
}

// Disable deletes the authenticator and the remaining codes. Like
// RegenerateCodes it needs an AAL2 session and fresh proof, so neither a
// stolen password nor an unattended session can quietly turn 2FA off.
func (r *Realm) Disable(ctx context.Context, a Actor, s *session.Session, proof string) error {
	if r.Require2FA() {
		return ErrPolicyRequires
	}
	err := r.stepUp(ctx, a, s, proof, "disable", func(u *storage.User) error {
		if !HasFactor(*u) {
			return abort{ErrNotEnrolled}
		}
		removeFactors(u)
		return nil
	})
	if err != nil {
		return err
	}
	r.decision(a, "2fa disabled", zap.String("user", s.User))
	r.record(a, audit.Type2FADisabled, s.User, nil)
	return nil
}

// stepUp runs change on the user's record in the transaction that checks
// proof, a current code: an authenticator code (its step is consumed) or a
// recovery code (it is spent). A wrong one counts like a wrong code at the
// challenge, towards the same lock-outs.
func (r *Realm) stepUp(ctx context.Context, a Actor, s *session.Session, proof, op string, change func(*storage.User) error) error {
	if s.AAL < 2 {
		r.decision(a, op+" refused: aal2 required", zap.String("user", s.User))
		return ErrAAL2Required
	}
	proof = strings.TrimSpace(proof)
	if proof == "" {
		return ErrProofRequired
	}
	kind := proofKind(proof)
	now := r.svc.now()
	if err := r.checkLimits(a, s.User, kind, now); err != nil {
		return err
	}
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		if err := r.prove(u, proof, kind, now); err != nil {
			return err
		}
		return change(u)
	}, nil, nil)
	if err != nil {
		return r.failed(ctx, a, s.User, kind, err, now)
	}
	r.svc.attempts.reset(userKey(kind, s.User))
	return nil
}

// proofKind tells an authenticator code (six digits, spaces allowed) from
// a recovery code.
func proofKind(proof string) string {
	digits := 0
	for _, c := range proof {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c != ' ':
			return kindRecovery
		}
	}
	if digits == totp.Digits {
		return kindTOTP
	}
	return kindRecovery
}

// prove checks proof, of kind, against u inside the transaction it guards:
// an authenticator code's step is consumed, a recovery code is spent.
func (r *Realm) prove(u *storage.User, proof, kind string, now time.Time) error {
	if !HasFactor(*u) {
		return abort{ErrNotEnrolled}
	}
	if kind == kindRecovery {
		i, err := recovery.Match(r.svc.recoveryKey, u.RecoveryHashes, proof)
		if err != nil || i < 0 {
			return abort{fmt.Errorf("%w (%v)", ErrWrongRecovery, err)}
		}
		u.RecoveryHashes = recovery.Remove(u.RecoveryHashes, i)
		return nil
	}
	// Six digits: a code sent to confirm this change, or the authenticator's.
	if code, err := digits(proof); err == nil {
		for _, m := range []string{MethodEmail, MethodSMS} {
			if ok, _, _ := r.svc.checkSent(u, purposeConfirm, m, code, now); ok {
				return nil
			}
		}
	}
	switch {
	case !u.TOTPConfirmed && len(Methods(*u)) > 0:
		return abort{ErrWrongCode} // no authenticator: only a sent code would do
	case !u.TOTPConfirmed:
		return abort{ErrUseRecovery}
	case !u.FactorLockedAt.IsZero():
		return abort{ErrFactorLocked}
	}
	return r.checkTOTP(u, proof, now)
}

// removeFactors deletes every second factor of u: its methods, the codes
// waiting to be entered, and the recovery codes.
func removeFactors(u *storage.User) {
	removeAuthenticator(u)
	u.EmailOTP, u.PhoneOTP, u.Primary, u.Codes = "", "", "", nil
	u.RecoveryHashes, u.PendingCodes = nil, nil
	u.NewIPOnly, u.KnownIPs = false, nil
}

// Status is a signed-in user's 2FA state, as the JSON API shows it.
type Status struct {
	User              string            `json:"user"`
	AAL               int               `json:"aal"`
	State             string            `json:"state"`
	Enrolled          bool              `json:"enrolled"`
	Methods           []string          `json:"methods"` // primary first, then "recovery_code" when codes are left
	Primary           string            `json:"primary,omitempty"`
	Destinations      map[string]string `json:"destinations,omitempty"` // method: masked address or number
	Required          bool              `json:"required"`
	MustEnrol         bool              `json:"must_enrol"`
	RecoveryRemaining int               `json:"recovery_codes_remaining"`
	CodesPending      bool              `json:"recovery_codes_unacknowledged"`
	IdleDeadline      time.Time         `json:"idle_deadline"`
	ExpiresAt         time.Time         `json:"expires_at"`
}

// Status reports the state of s and its user.
func (r *Realm) Status(ctx context.Context, s *session.Session) (Status, error) {
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return Status{}, fmt.Errorf("mfa: status: %w", err)
	}
	st := Status{
		User: s.User, AAL: int(s.AAL), State: s.State.String(), Enrolled: len(Methods(u)) > 0,
		Methods: Methods(u), Primary: PrimaryOf(u), Required: r.Require2FA(), MustEnrol: s.MustEnrol,
		RecoveryRemaining: len(u.RecoveryHashes), CodesPending: len(u.PendingCodes) > 0,
		IdleDeadline: s.LastSeen().Add(r.IdleTimeout()).UTC().Truncate(time.Second),
		ExpiresAt:    s.ExpiresAt.UTC().Truncate(time.Second),
	}
	if st.Methods == nil {
		st.Methods = []string{}
	}
	for _, m := range []string{MethodEmail, MethodSMS} {
		if holds(u, m) {
			if st.Destinations == nil {
				st.Destinations = map[string]string{}
			}
			st.Destinations[m] = Mask(m, destOf(u, m))
		}
	}
	if len(u.RecoveryHashes) > 0 {
		st.Methods = append(st.Methods, "recovery_code")
	}
	return st, nil
}
