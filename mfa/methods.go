package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/contact"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Second-factor methods a user may hold, several at once; one is primary.
const (
	MethodTOTP  = "totp"  // an authenticator app
	MethodEmail = "email" // a code sent by email
	MethodSMS   = "sms"   // a code sent by text message
)

// Rules for codes sent by email or text message. Sends cost the operator
// money and reputation, so they are limited for each user and purpose
// (signing in, setting up a method, confirming a change) and for each
// destination, whoever asks.
const (
	SentCodeTTL   = 5 * time.Minute  // how long a sent code works
	SentCodeTries = 5                // wrong entries that retire a code
	ResendAfter   = 30 * time.Second // the least time between two sends
	SendWindow    = 5 * time.Minute
	MaxSends      = 3 // sends per SendWindow per user and purpose, and per destination
)

// Why a code is sent.
const (
	purposeSignIn  = "sign-in" // the challenge of a pending sign-in
	purposeEnrol   = "enrol"   // proving a new destination
	purposeConfirm = "confirm" // fresh proof before a change (step-up)
)

// kindSent counts wrong sent codes, apart from authenticator and recovery
// codes.
const kindSent = "sent"

// Texter sends text messages without blocking; false means the message
// could not be queued.
type Texter interface {
	Queue(to, body string) bool
}

// SendLimitError is a send refused by the limits, with when one may go.
type SendLimitError struct {
	RetryAfter time.Duration
}

func (e *SendLimitError) Error() string {
	return fmt.Sprintf("send limit: retry after %v", e.RetryAfter.Round(time.Second))
}

// Methods lists the methods u holds, the primary first, then in the order
// totp, email, sms.
func Methods(u storage.User) []string {
	var out []string
	for _, m := range []string{MethodTOTP, MethodEmail, MethodSMS} {
		if holds(u, m) {
			out = append(out, m)
		}
	}
	if p := u.Primary; p != "" && slices.Contains(out, p) {
		i := slices.Index(out, p)
		out = append([]string{p}, slices.Delete(out, i, i+1)...)
	}
	return out
}

// PrimaryOf is the method the challenge asks for first; "" when u holds
// none (recovery codes only).
func PrimaryOf(u storage.User) string {
	if ms := Methods(u); len(ms) > 0 {
		return ms[0]
	}
	return ""
}

func holds(u storage.User, method string) bool {
	switch method {
	case MethodTOTP:
		return u.TOTPConfirmed
	case MethodEmail:
		return u.EmailOTP != ""
	case MethodSMS:
		return u.PhoneOTP != ""
	}
	return false
}

// destOf is where a method held by u sends its codes.
func destOf(u storage.User, method string) string {
	if method == MethodEmail {
		return u.EmailOTP
	}
	return u.PhoneOTP
}

// Mask shows a destination of method without giving it away.
func Mask(method, dest string) string {
	if method == MethodEmail {
		return contact.MaskEmail(dest)
	}
	return contact.MaskPhone(dest)
}

// MethodAllowed reports whether this block lets users enrol method and
// answer with it: the operator allows it, and for sent codes, email or text
// messages are configured.
func (r *Realm) MethodAllowed(method string) bool {
	if len(r.cfg.Methods) > 0 && !slices.Contains(r.cfg.Methods, method) {
		return false
	}
	switch method {
	case MethodTOTP:
		return true
	case MethodEmail:
		return r.cfg.Mailer != nil
	case MethodSMS:
		return r.cfg.Texter != nil
	}
	return false
}

// codeHash binds a sent code to its user, purpose, method and destination.
func (svc *Service) codeHash(user, purpose, method, dest, code string) []byte {
	m := hmac.New(sha256.New, svc.sentKey)
	for _, s := range []string{user, purpose, method, dest, code} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// newCode is six random digits.
func newCode(rand io.Reader) (string, error) {
	var b [4]byte
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return "", err
		}
		// Reject the top of the range: every code equally likely.
		if n := binary.BigEndian.Uint32(b[:]); n < 4_294_000_000 {
			return fmt.Sprintf("%06d", n%1_000_000), nil
		}
	}
}

// digits returns the six digits of a typed code (spaces and a dash
// allowed), or ErrMalformedCode.
func digits(code string) (string, error) {
	var b strings.Builder
	for _, c := range strings.TrimSpace(code) {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '-':
		default:
			return "", ErrMalformedCode
		}
	}
	if b.Len() != 6 {
		return "", ErrMalformedCode
	}
	return b.String(), nil
}

// send makes a code for user's method at dest and delivers it, within the
// send limits; the code's hash replaces any earlier one for the same
// purpose and method. It returns the masked destination.
func (r *Realm) send(ctx context.Context, a Actor, user, purpose, method, dest string) (string, error) {
	svc := r.svc
	now := svc.now()
	userKey := "send-u:" + purpose + ":" + user
	ra := max(
		svc.attempts.retryAfter(userKey, MaxSends, SendWindow, now),
		svc.attempts.retryAfter("send-d:"+dest, MaxSends, SendWindow, now),
	)
	code, err := newCode(svc.rand)
	if err != nil {
		return "", fmt.Errorf("mfa: make code: %w", err)
	}
	sc := storage.SentCode{Purpose: purpose, Method: method, Dest: dest, Hash: svc.codeHash(user, purpose, method, dest, code),
		SentAt: now, Expires: now.Add(SentCodeTTL)}
	err = svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(user)
		if errors.Is(err, storage.ErrNotFound) {
			u = storage.User{ID: user, CreatedAt: now}
		} else if err != nil {
			return err
		}
		for _, c := range u.Codes {
			if c.Purpose == purpose && c.Method == method && now.Sub(c.SentAt) < ResendAfter {
				ra = max(ra, c.SentAt.Add(ResendAfter).Sub(now))
			}
		}
		if ra > 0 {
			return abort{&SendLimitError{RetryAfter: ra}}
		}
		u.Codes = append(liveCodes(u.Codes, now, func(c storage.SentCode) bool {
			return c.Purpose == purpose && c.Method == method
		}), sc)
		u.UpdatedAt = now
		return tx.PutUser(u)
	})
	var a2 abort
	if errors.As(err, &a2) {
		r.decision(a, "code send refused: limit", zap.String("user", user), zap.String("method", method))
		return "", a2.err
	}
	if err != nil {
		return "", fmt.Errorf("mfa: store sent code: %w", err)
	}
	if !r.deliver(user, purpose, method, dest, code) {
		return "", ErrNotSent
	}
	svc.attempts.fail(userKey, SendWindow, now)
	svc.attempts.fail("send-d:"+dest, SendWindow, now)
	masked := Mask(method, dest)
	r.decision(a, "code sent", zap.String("user", user), zap.String("method", method), zap.String("purpose", purpose), zap.String("to", masked))
	r.record(a, audit.TypeCodeSent, user, map[string]string{"method": method, "purpose": purpose, "to": masked})
	return masked, nil
}

// liveCodes keeps the codes that have not expired and that drop does not
// match.
func liveCodes(cs []storage.SentCode, now time.Time, drop func(storage.SentCode) bool) []storage.SentCode {
	var out []storage.SentCode
	for _, c := range cs {
		if now.Before(c.Expires) && !drop(c) {
			out = append(out, c)
		}
	}
	return out
}

// deliver hands a code to email or the text-message sender.
func (r *Realm) deliver(user, purpose, method, dest, code string) bool {
	issuer := r.cfg.Issuer
	if method == MethodEmail {
		if r.cfg.Mailer == nil {
			return false
		}
		m := mail.CodeMessage(issuer, user, code, purpose == purposeEnrol, SentCodeTTL)
		m.To = dest
		return r.cfg.Mailer.Queue(m)
	}
	if r.cfg.Texter == nil {
		return false
	}
	name := "your account"
	if issuer != "" {
		name = issuer
	}
	return r.cfg.Texter.Queue(dest, fmt.Sprintf("%s is your %s code. It expires in %d minutes. Never share it.", code, name, int(SentCodeTTL/time.Minute)))
}

// checkSent finds u's code for purpose and method and compares code with
// it in constant time. A wrong code counts a try, and retires the code at
// SentCodeTries; a right one is spent. ok reports a match; err is
// ErrCodeExpired when there is no live code. u is changed either way and
// must be stored.
func (svc *Service) checkSent(u *storage.User, purpose, method, code string, now time.Time) (ok bool, dest string, err error) {
	i := slices.IndexFunc(u.Codes, func(c storage.SentCode) bool {
		return c.Purpose == purpose && c.Method == method && now.Before(c.Expires)
	})
	if i < 0 {
		return false, "", ErrCodeExpired
	}
	c := &u.Codes[i]
	if hmac.Equal(c.Hash, svc.codeHash(u.ID, purpose, method, c.Dest, code)) {
		dest = c.Dest
		u.Codes = slices.Delete(u.Codes, i, i+1)
		return true, dest, nil
	}
	c.Tries++
	if c.Tries >= SentCodeTries {
		u.Codes = slices.Delete(u.Codes, i, i+1)
	}
	return false, "", nil
}

// SendSignInCode sends a code for a pending sign-in by a method the user
// holds ("Send a new code", "Use a different method").
func (r *Realm) SendSignInCode(ctx context.Context, a Actor, s *session.Session, method string) (string, error) {
	if method != MethodEmail && method != MethodSMS {
		return "", ErrMethodUnavailable
	}
	if !r.MethodAllowed(method) {
		return "", ErrMethodUnavailable
	}
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return "", fmt.Errorf("mfa: load user: %w", err)
	}
	if !holds(u, method) {
		return "", ErrMethodNotSetUp
	}
	return r.send(ctx, a, s.User, purposeSignIn, method, destOf(u, method))
}

// PassSentCode checks a code sent by email or text message for a pending
// sign-in and, when it is right, makes the session active at AAL2, as
// PassChallenge does for an authenticator code.
func (r *Realm) PassSentCode(ctx context.Context, a Actor, s *session.Session, method, code string) (Changed, error) {
	ch, err := r.passSentCode(ctx, a, s, method, code)
	r.svc.stats.challenge(statsMethod(method), challengeResultOf(err))
	return ch, err
}

func (r *Realm) passSentCode(ctx context.Context, a Actor, s *session.Session, method, code string) (Changed, error) {
	now := r.svc.now()
	code, err := digits(code)
	if err != nil {
		return Changed{}, err
	}
	if err := r.checkLimits(a, s.User, kindSent, now); err != nil {
		return Changed{}, err
	}
	ns, id, err := r.activate(s, false)
	if err != nil {
		return Changed{}, fmt.Errorf("mfa: session id: %w", err)
	}
	rec, err := r.svc.toRecord(ns)
	if err != nil {
		return Changed{}, err
	}
	var ok bool
	err = r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(s.User)
		if err != nil {
			return err
		}
		if !holds(u, method) {
			return abort{ErrMethodNotSetUp}
		}
		ok, _, err = r.svc.checkSent(&u, purposeSignIn, method, code, now)
		if err != nil {
			return abort{err}
		}
		if ok {
			u.LastSignInAt = now
			learnAddress(&u, r.cfg.Scope, a.Address, now)
		}
		u.UpdatedAt = now
		if err := tx.PutUser(u); err != nil || !ok {
			return err
		}
		if err := tx.DeleteSession(s.Key.String()); err != nil {
			return err
		}
		return tx.PutSession(rec)
	})
	if err != nil {
		var a2 abort
		if errors.As(err, &a2) {
			return Changed{}, a2.err
		}
		return Changed{}, fmt.Errorf("mfa: store: %w", err)
	}
	if !ok {
		return Changed{}, r.failed(ctx, a, s.User, kindSent, ErrWrongCode, now)
	}
	r.svc.Sessions.Replace(s, ns)
	r.svc.attempts.reset(userKey(kindSent, s.User))
	r.decision(a, "challenge passed", zap.String("user", s.User), zap.String("method", method))
	r.record(a, audit.TypeChallengePassed, s.User, map[string]string{"method": method})
	return Changed{Session: ns, ID: id, Held: s.Held}, nil
}

// StartMethod sends a code to prove a new destination for email or text
// message codes. A user who already has a second factor must have passed
// it in this sign-in (AAL2): a stolen password must not add a way in.
func (r *Realm) StartMethod(ctx context.Context, a Actor, s *session.Session, method, rawDest string) (string, error) {
	if (method != MethodEmail && method != MethodSMS) || !r.MethodAllowed(method) {
		return "", ErrMethodUnavailable
	}
	var dest string
	var err error
	if method == MethodEmail {
		dest, err = contact.Email(rawDest)
	} else {
		dest, err = contact.Phone(rawDest)
	}
	if err != nil {
		return "", fmtErr(ErrBadDestination, "%s", destinationHelp(method))
	}
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return "", fmt.Errorf("mfa: load user: %w", err)
	}
	if HasFactor(u) && s.AAL < 2 {
		return "", ErrAAL2Required
	}
	return r.send(ctx, a, s.User, purposeEnrol, method, dest)
}

func destinationHelp(method string) string {
	if method == MethodEmail {
		return "Enter one email address, like name@example.com."
	}
	return "Enter a mobile number with + and the country code, like +44 7700 900123."
}

// ConfirmMethod checks the code sent to a new destination and adds the
// method. The user's first method turns 2FA on: recovery codes are issued
// (returned to show once). The session moves to AAL2 under a new id.
func (r *Realm) ConfirmMethod(ctx context.Context, a Actor, s *session.Session, method, code string) (Changed, []string, error) {
	now := r.svc.now()
	code, err := digits(code)
	if err != nil {
		return Changed{}, nil, err
	}
	if err := r.checkLimits(a, s.User, kindSent, now); err != nil {
		return Changed{}, nil, err
	}
	ns, id, err := r.rotated(s, func(n *session.Session) { n.AAL = 2 })
	if err != nil {
		return Changed{}, nil, fmt.Errorf("mfa: session id: %w", err)
	}
	var ok, first bool
	var codes []string
	var dest string
	err = r.commit(ctx, s.User, func(u *storage.User) error {
		ok, first, codes = false, false, nil
		if HasFactor(*u) && s.AAL < 2 {
			return abort{ErrAAL2Required}
		}
		var err error
		if ok, dest, err = r.svc.checkSent(u, purposeEnrol, method, code, now); err != nil {
			return abort{err}
		}
		if !ok {
			return abort{&errWrongSent{u: *u}}
		}
		first = !HasFactor(*u)
		if first && r.needsProof(*u, s, now) && !(method == MethodEmail && dest == u.Email) {
			return abort{ErrEmailProofNeeded} // proving the reported address itself would do
		}
		u.Devices = nil
		if method == MethodEmail {
			u.EmailOTP = dest
		} else {
			u.PhoneOTP = dest
		}
		if first {
			u.EnrolledAt = now
			if codes, err = r.svc.issueCodes(u); err != nil {
				return err
			}
		}
		return nil
	}, s, ns)
	var wrong *errWrongSent
	if errors.As(err, &wrong) {
		// Keep the try count: the transaction that found the code wrong
		// was rolled back with it.
		r.saveTries(ctx, wrong.u)
		return Changed{}, nil, r.failed(ctx, a, s.User, kindSent, ErrWrongCode, now)
	}
	if err != nil {
		return Changed{}, nil, err
	}
	r.svc.attempts.reset(userKey(kindSent, s.User))
	masked := Mask(method, dest)
	r.decision(a, "method added", zap.String("user", s.User), zap.String("method", method), zap.String("to", masked))
	r.record(a, audit.TypeMethodAdded, s.User, map[string]string{"method": method, "to": masked})
	if first {
		r.record(a, audit.Type2FAEnabled, s.User, map[string]string{"method": method})
	}
	return Changed{Session: ns, ID: id}, codes, nil
}

// errWrongSent carries the user record with its counted try out of a
// rolled-back transaction. A pointer: errors are compared, and a record
// holds slices.
type errWrongSent struct{ u storage.User }

func (*errWrongSent) Error() string { return "wrong sent code" }

// saveTries stores the try counts of u's sent codes.
func (r *Realm) saveTries(ctx context.Context, counted storage.User) {
	err := r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(counted.ID)
		if err != nil {
			return err
		}
		for i := range u.Codes {
			for _, c := range counted.Codes {
				if hmac.Equal(u.Codes[i].Hash, c.Hash) {
					u.Codes[i].Tries = max(u.Codes[i].Tries, c.Tries)
				}
			}
		}
		// A code that reached its tries is gone from counted: retire it.
		u.Codes = slices.DeleteFunc(u.Codes, func(c storage.SentCode) bool {
			return !slices.ContainsFunc(counted.Codes, func(k storage.SentCode) bool { return hmac.Equal(k.Hash, c.Hash) })
		})
		return tx.PutUser(u)
	})
	if err != nil {
		r.log.Error("store a wrong code's try", zap.String("user", counted.ID), zap.Error(err))
	}
}

// SetPrimary makes method, which the user holds, the one the challenge
// asks for first.
func (r *Realm) SetPrimary(ctx context.Context, a Actor, s *session.Session, method string) error {
	if s.AAL < 2 {
		return ErrAAL2Required
	}
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		if !holds(*u, method) {
			return abort{ErrMethodNotSetUp}
		}
		u.Primary = method
		return nil
	}, nil, nil)
	if err != nil {
		return err
	}
	r.decision(a, "primary method changed", zap.String("user", s.User), zap.String("method", method))
	r.record(a, audit.TypePrimaryChanged, s.User, map[string]string{"method": method})
	return nil
}

// RemoveMethod removes one of the user's methods, with fresh proof
// (StepUp rules). Removing the last one is turning 2FA off: refused while
// the team requires it, and the recovery codes go too.
func (r *Realm) RemoveMethod(ctx context.Context, a Actor, s *session.Session, method, proof string) error {
	var last bool
	err := r.stepUp(ctx, a, s, proof, "remove method", func(u *storage.User) error {
		if !holds(*u, method) {
			return abort{ErrMethodNotSetUp}
		}
		dropMethod(u, method)
		last = len(Methods(*u)) == 0
		if last {
			if r.Require2FA() {
				return abort{ErrPolicyRequires}
			}
			u.RecoveryHashes, u.PendingCodes = nil, nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.decision(a, "method removed", zap.String("user", s.User), zap.String("method", method), zap.Bool("last", last))
	r.record(a, audit.TypeMethodRemoved, s.User, map[string]string{"method": method, "by": "user"})
	if last {
		r.record(a, audit.Type2FADisabled, s.User, nil)
	}
	return nil
}

// dropMethod deletes method from u, with its codes waiting to be entered.
func dropMethod(u *storage.User, method string) {
	switch method {
	case MethodTOTP:
		removeAuthenticator(u)
	case MethodEmail:
		u.EmailOTP = ""
	case MethodSMS:
		u.PhoneOTP = ""
	}
	u.Codes = slices.DeleteFunc(u.Codes, func(c storage.SentCode) bool { return c.Method == method })
	u.Devices = nil
	if u.Primary == method {
		u.Primary = ""
	}
}

// SendConfirmCode sends a code to confirm a change (step-up) for a user
// whose methods are sent codes only, or who prefers one.
func (r *Realm) SendConfirmCode(ctx context.Context, a Actor, s *session.Session, method string) (string, error) {
	if s.AAL < 2 {
		return "", ErrAAL2Required
	}
	if (method != MethodEmail && method != MethodSMS) || !r.MethodAllowed(method) {
		return "", ErrMethodUnavailable
	}
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return "", fmt.Errorf("mfa: load user: %w", err)
	}
	if !holds(u, method) {
		return "", ErrMethodNotSetUp
	}
	return r.send(ctx, a, s.User, purposeConfirm, method, destOf(u, method))
}

// SignInCode is what the challenge page shows for a sent-code method: where
// the code went, sending one now unless a live one is waiting (the page
// opened again, or another tab). err is a send refused by the limits or not
// delivered; the page says so and offers to send again.
func (r *Realm) SignInCode(ctx context.Context, a Actor, s *session.Session, method string) (sentTo string, sent bool, err error) {
	if (method != MethodEmail && method != MethodSMS) || !r.MethodAllowed(method) {
		return "", false, ErrMethodUnavailable
	}
	u, err := r.svc.User(ctx, s.User)
	if err != nil {
		return "", false, fmt.Errorf("mfa: load user: %w", err)
	}
	if !holds(u, method) {
		return "", false, ErrMethodNotSetUp
	}
	now := r.svc.now()
	if slices.ContainsFunc(u.Codes, func(c storage.SentCode) bool {
		return c.Purpose == purposeSignIn && c.Method == method && now.Before(c.Expires)
	}) {
		return Mask(method, destOf(u, method)), false, nil
	}
	masked, err := r.send(ctx, a, s.User, purposeSignIn, method, destOf(u, method))
	if err != nil {
		return Mask(method, destOf(u, method)), false, err
	}
	return masked, true, nil
}

// SentTo is the masked destination of a sent-code method u holds, "" for
// any other.
func SentTo(u storage.User, method string) string {
	if (method != MethodEmail && method != MethodSMS) || !holds(u, method) {
		return ""
	}
	return Mask(method, destOf(u, method))
}
