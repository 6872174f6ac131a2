package mfa

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/recovery"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/totp"
)

// The challenge: a pending sign-in passes its second factor.

// The kinds of code a user answers with. Each has its own count of wrong
// answers per user, so that someone trying authenticator codes with a
// stolen password cannot lock the owner out of their recovery codes (which
// are too long to guess); the address count is shared.
const (
	kindTOTP     = "totp"
	kindRecovery = "recovery"
)

func userKey(kind, user string) string {
	if kind == kindRecovery {
		return "r:" + user
	}
	return "u:" + user
}

// checkLimits refuses a code of kind while the user or the address is
// locked out.
func (r *Realm) checkLimits(a Actor, user, kind string, now time.Time) error {
	win := r.cfg.AttemptWindow
	ra := max(
		r.svc.attempts.retryAfter(userKey(kind, user), r.cfg.MaxAttempts, win, now),
		r.svc.attempts.retryAfter("a:"+a.Address, 4*r.cfg.MaxAttempts, win, now),
	)
	if ra <= 0 {
		return nil
	}
	r.decision(a, "code refused: locked out", zap.String("user", user), zap.String("kind", kind), zap.Duration("retry_after", ra))
	// The lock's end, not the time left: the same for every refusal in the
	// lock, so a client hammering a locked account folds into one record.
	r.record(a, audit.TypeLockout, user, map[string]string{"until": now.Add(ra).UTC().Truncate(time.Second).Format(time.RFC3339), "kind": kind})
	return &LockedError{RetryAfter: ra, Recovery: kind == kindRecovery}
}

// DefaultMaxFailedCodes caps wrong authenticator codes in a row, however
// slowly they come (NIST SP 800-63B §5.2.2 allows at most 100).
const DefaultMaxFailedCodes = 100

func (r *Realm) maxFailedCodes() int {
	if r.cfg.MaxFailedCodes > 0 {
		return r.cfg.MaxFailedCodes
	}
	return DefaultMaxFailedCodes
}

// failed counts a wrong code against the user and the address, after the
// transaction that found it wrong: callbacks have no side effects. A wrong
// authenticator code also counts towards the lock on the authenticator.
func (r *Realm) failed(ctx context.Context, a Actor, user, kind string, err error, now time.Time) error {
	if !errors.Is(err, ErrWrongCode) && !errors.Is(err, ErrWrongRecovery) && !errors.Is(err, ErrCodeUsed) {
		return err
	}
	if kind == kindTOTP {
		if lerr := r.countFailedCode(ctx, a, user); lerr != nil {
			return lerr
		}
	}
	n := r.svc.attempts.fail(userKey(kind, user), r.cfg.AttemptWindow, now)
	if r.svc.attempts.fail("a:"+a.Address, r.cfg.AttemptWindow, now) == 4*r.cfg.MaxAttempts {
		r.svc.stats.lockout(lockAddressAttempts)
	}
	typ := audit.TypeChallengeFailed
	if kind == kindRecovery {
		typ = audit.TypeRecoveryFailed
	}
	r.record(a, typ, user, map[string]string{"kind": kind, "failures": strconv.Itoa(n)})
	r.decision(a, "wrong code", zap.String("user", user), zap.String("kind", kind), zap.NamedError("reason", err), zap.Int("failures", n))
	if n == r.cfg.MaxAttempts {
		r.svc.stats.lockout(lockUserAttempts)
		r.log.Warn("user locked out", zap.String("user", user), zap.Duration("for", r.cfg.AttemptWindow))
	}
	return err
}

// countFailedCode adds a wrong authenticator code to the user's run of
// them. The run reaching the cap locks the authenticator: audited, logged and
// emailed once. A store that cannot count fails the code closed.
func (r *Realm) countFailedCode(ctx context.Context, a Actor, user string) error {
	var n int
	locked := false
	err := r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(user)
		if err != nil {
			return err
		}
		if !u.TOTPConfirmed {
			return nil // a setup's confirmation code: nothing to lock yet
		}
		u.FailedCodes++
		n = u.FailedCodes
		locked = n >= r.maxFailedCodes() && u.FactorLockedAt.IsZero()
		if locked {
			u.FactorLockedAt = r.svc.now()
		}
		return tx.PutUser(u)
	})
	if err != nil {
		return fmt.Errorf("mfa: count wrong code: %w", err)
	}
	if !locked {
		return nil
	}
	r.svc.stats.lockout(lockAuthenticator)
	r.log.Warn("authenticator locked", zap.String("user", user), zap.Int("wrong_codes", n))
	r.record(a, audit.TypeFactorLocked, user, map[string]string{"wrong_codes": strconv.Itoa(n)})
	if u, err := r.svc.User(ctx, user); err == nil {
		r.notify(u, mail.FactorLockedNotice(r.cfg.Issuer, user, n))
	}
	return nil
}

// checkTOTP validates code for u inside a transaction and consumes its step.
func (r *Realm) checkTOTP(u *storage.User, code string, now time.Time) error {
	step, err := r.validate(u.ID, u.TOTPSecret, code, now, u.TOTPLastStep)
	if err != nil {
		return err
	}
	u.TOTPLastStep = step
	return nil
}

// validate checks code against a sealed secret of user and returns the
// step it matched, mapping the totp package's errors to the domain's.
func (r *Realm) validate(user string, sealed []byte, code string, now time.Time, lastStep int64) (int64, error) {
	secret, err := r.svc.box.Open(sealed, totpAAD(user))
	if err != nil {
		return 0, fmt.Errorf("open totp secret: %w", err)
	}
	step, err := totp.Validate(secret, code, now, lastStep)
	switch {
	case errors.Is(err, totp.ErrMalformed):
		return 0, abort{ErrMalformedCode}
	case errors.Is(err, totp.ErrReplayed):
		// Most often the same code entered in a second tab: its own words.
		return 0, abort{fmt.Errorf("%w (%w)", ErrCodeUsed, err)}
	case errors.Is(err, totp.ErrInvalid):
		return 0, abort{fmt.Errorf("%w (%w)", ErrWrongCode, err)}
	case err != nil:
		return 0, err
	}
	return step, nil
}

// PassChallenge checks a TOTP code for a pending sign-in and, on success,
// makes the session active at AAL2 and returns the app's held cookies.
func (r *Realm) PassChallenge(ctx context.Context, a Actor, s *session.Session, code string) (Changed, error) {
	ch, err := r.passChallenge(ctx, a, s, code)
	r.svc.stats.challenge(methodTOTP, challengeResultOf(err))
	return ch, err
}

// challengeResultOf classifies a challenge answer's error for the stats.
func challengeResultOf(err error) challengeResult {
	var locked *LockedError
	switch {
	case err == nil:
		return challengeOK
	case errors.As(err, &locked), errors.Is(err, ErrFactorLocked):
		return challengeLocked
	case errors.Is(err, totp.ErrReplayed):
		return challengeReplayed
	case errors.Is(err, ErrWrongCode), errors.Is(err, ErrWrongRecovery), errors.Is(err, ErrCodeUsed):
		return challengeWrong
	case errors.Is(err, ErrMalformedCode), errors.Is(err, ErrMalformedRecovery):
		return challengeMalformed
	case errors.Is(err, ErrUseRecovery):
		return challengeNoAuthenticator
	}
	return challengeError
}

func (r *Realm) passChallenge(ctx context.Context, a Actor, s *session.Session, code string) (Changed, error) {
	now := r.svc.now()
	if err := r.checkLimits(a, s.User, kindTOTP, now); err != nil {
		return Changed{}, err
	}
	ns, id, err := r.activate(s, false)
	if err != nil {
		return Changed{}, fmt.Errorf("mfa: session id: %w", err)
	}
	err = r.commit(ctx, s.User, func(u *storage.User) error {
		if !u.TOTPConfirmed {
			return abort{ErrUseRecovery}
		}
		if !u.FactorLockedAt.IsZero() {
			return abort{ErrFactorLocked}
		}
		if err := r.checkTOTP(u, code, now); err != nil {
			return err
		}
		u.FailedCodes = 0
		u.LastSignInAt = now
		learnAddress(u, r.cfg.Scope, a.Address, now)
		return nil
	}, s, ns)
	if err != nil {
		if errors.Is(err, ErrFactorLocked) {
			r.decision(a, "code refused: authenticator locked", zap.String("user", s.User))
			r.record(a, audit.TypeLockout, s.User, map[string]string{"authenticator": "locked"})
		}
		return Changed{}, r.failed(ctx, a, s.User, kindTOTP, err, now)
	}
	r.svc.attempts.reset(userKey(kindTOTP, s.User))
	r.decision(a, "challenge passed", zap.String("user", s.User), zap.String("method", "totp"))
	r.record(a, audit.TypeChallengePassed, s.User, map[string]string{"method": "totp"})
	return Changed{Session: ns, ID: id, Held: s.Held}, nil
}

// UseRecoveryCode spends one recovery code for a pending sign-in. As users
// know it, it also disables the authenticator (a stolen device's secret dies
// as soon as the owner signs in this way). The user is signed in: someone
// without their phone can work, and is asked to set up a new authenticator
// (the security page opens on setup, and every later sign-in reminds them).
// Only a team that requires 2FA, with no recovery code left either, blocks
// the app until setup is done.
func (r *Realm) UseRecoveryCode(ctx context.Context, a Actor, s *session.Session, input string) (Changed, error) {
	ch, err := r.useRecoveryCode(ctx, a, s, input)
	r.svc.stats.challenge(methodRecovery, challengeResultOf(err))
	return ch, err
}

func (r *Realm) useRecoveryCode(ctx context.Context, a Actor, s *session.Session, input string) (Changed, error) {
	now := r.svc.now()
	if _, err := recovery.Normalize(input); err != nil {
		return Changed{}, ErrMalformedRecovery
	}
	if err := r.checkLimits(a, s.User, kindRecovery, now); err != nil {
		return Changed{}, err
	}
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return Changed{}, fmt.Errorf("mfa: load user: %w", err)
	}
	// Whether this code is the user's last is judged on what the
	// transaction reads; the session it stamps is made before, so the
	// transaction refuses to go on if another sign-in spent a code between.
	last := len(u.RecoveryHashes) <= 1
	ns, id, err := r.activate(s, last && r.Require2FA())
	if err != nil {
		return Changed{}, fmt.Errorf("mfa: session id: %w", err)
	}
	err = r.commit(ctx, s.User, func(u *storage.User) error {
		i, err := recovery.Match(r.svc.recoveryKey, u.RecoveryHashes, input)
		if err != nil || i < 0 {
			return abort{fmt.Errorf("%w (%v)", ErrWrongRecovery, err)}
		}
		if (len(u.RecoveryHashes) <= 1) != last {
			return errCodesChanged
		}
		u.RecoveryHashes = recovery.Remove(u.RecoveryHashes, i)
		removeAuthenticator(u)
		u.LastSignInAt = now
		learnAddress(u, r.cfg.Scope, a.Address, now)
		return nil
	}, s, ns)
	if err != nil {
		return Changed{}, r.failed(ctx, a, s.User, kindRecovery, err, now)
	}
	// Both counts start over: the authenticator whose codes were being
	// guessed is gone, and a new one must be confirmable at once.
	r.svc.attempts.reset(userKey(kindRecovery, s.User))
	r.svc.attempts.reset(userKey(kindTOTP, s.User))
	r.decision(a, "recovery code used", zap.String("user", s.User), zap.Bool("must_enrol", ns.MustEnrol))
	r.record(a, audit.TypeRecoveryUsed, s.User, map[string]string{"authenticator": "removed"})
	return Changed{Session: ns, ID: id, Held: s.Held}, nil
}

// errCodesChanged: the user's recovery codes changed while a code was being
// used; the sign-in is refused (and may be tried again) rather than judged
// on a stale count.
var errCodesChanged = errors.New("mfa: recovery codes changed meanwhile")
