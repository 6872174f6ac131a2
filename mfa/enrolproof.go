package mfa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// The first factor of a user held at the setup: when the team requires 2FA
// and the app reported the user's email address, a stolen password must not
// be enough to enrol the attacker's own authenticator. So the setup first
// asks for a code sent to that address (purpose "enrol-proof"); the proof
// holds for this sign-in session for enrolProofTTL.

const (
	purposeEnrolProof = "enrol-proof"
	enrolProofTTL     = 30 * time.Minute
)

// needsProof reports whether s must prove u's email address before a
// first factor is confirmed, and has not.
func (r *Realm) needsProof(u storage.User, s *session.Session, now time.Time) bool {
	if !r.cfg.EnrolEmailProof || r.cfg.Mailer == nil || !s.MustEnrol || u.Email == "" || HasFactor(u) {
		return false
	}
	return u.EnrolProof != s.Key.String() || !now.Before(u.EnrolProofUntil)
}

// EnrolProof reports, for the security page, whether s must prove its
// user's email address before setting up a first factor, and where the
// code goes (masked).
func (r *Realm) EnrolProof(ctx context.Context, s *session.Session) (needed bool, sentTo string, err error) {
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return false, "", fmt.Errorf("mfa: load user: %w", err)
	}
	if !r.needsProof(u, s, r.svc.now()) {
		return false, "", nil
	}
	return true, Mask(MethodEmail, u.Email), nil
}

// SendEnrolProof sends the code that proves the email address the app
// reported.
func (r *Realm) SendEnrolProof(ctx context.Context, a Actor, s *session.Session) (string, error) {
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return "", fmt.Errorf("mfa: load user: %w", err)
	}
	now := r.svc.now()
	if !r.needsProof(u, s, now) {
		return "", ErrNoProofNeeded
	}
	return r.send(ctx, a, s.User, purposeEnrolProof, MethodEmail, u.Email)
}

// EnsureEnrolProof sends the proof code unless one is waiting, for the page
// that asks for it; sent reports a new send.
func (r *Realm) EnsureEnrolProof(ctx context.Context, a Actor, s *session.Session) (sent bool, err error) {
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return false, fmt.Errorf("mfa: load user: %w", err)
	}
	now := r.svc.now()
	if !r.needsProof(u, s, now) {
		return false, nil
	}
	for _, c := range u.Codes {
		if c.Purpose == purposeEnrolProof && now.Before(c.Expires) {
			return false, nil
		}
	}
	_, err = r.send(ctx, a, s.User, purposeEnrolProof, MethodEmail, u.Email)
	return err == nil, err
}

// ConfirmEnrolProof checks the code sent to the reported address; the
// setup of a first factor may go on in this session.
func (r *Realm) ConfirmEnrolProof(ctx context.Context, a Actor, s *session.Session, code string) error {
	now := r.svc.now()
	code, err := digits(code)
	if err != nil {
		return err
	}
	if err := r.checkLimits(a, s.User, kindSent, now); err != nil {
		return err
	}
	var ok bool
	err = r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(s.User)
		if err != nil {
			return err
		}
		if ok, _, err = r.svc.checkSent(&u, purposeEnrolProof, MethodEmail, code, now); err != nil {
			return abort{err}
		}
		if ok {
			u.EnrolProof, u.EnrolProofUntil = s.Key.String(), now.Add(enrolProofTTL)
		}
		u.UpdatedAt = now
		return tx.PutUser(u)
	})
	var a2 abort
	if errors.As(err, &a2) {
		return a2.err
	}
	if err != nil {
		return fmt.Errorf("mfa: store: %w", err)
	}
	if !ok {
		return r.failed(ctx, a, s.User, kindSent, ErrWrongCode, now)
	}
	r.svc.attempts.reset(userKey(kindSent, s.User))
	r.decision(a, "email proved before the first factor", zap.String("user", s.User))
	return nil
}
