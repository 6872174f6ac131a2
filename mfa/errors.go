package mfa

import (
	"errors"
	"fmt"
	"time"
)

// The domain's errors. Operations return these (possibly wrapped); the web
// surface maps each to a public error code in one table. Any other error is
// a fault (the store, the clock, randomness) and is never shown as-is.
var (
	ErrMalformedCode     = errors.New("malformed code")
	ErrMalformedRecovery = errors.New("malformed recovery code")
	ErrWrongCode         = errors.New("wrong code")
	ErrWrongRecovery     = errors.New("wrong recovery code")
	ErrNotAcknowledged   = errors.New("recovery codes not acknowledged")
	ErrAlreadyEnrolled   = errors.New("already enrolled")
	ErrNotEnrolled       = errors.New("not enrolled")
	ErrNoSetup           = errors.New("no pending setup")
	ErrNoPendingCodes    = errors.New("no pending recovery codes")
	ErrUseRecovery       = errors.New("authenticator removed: use a recovery code")
	ErrEnrolmentRequired = errors.New("enrolment required")
	ErrAAL2Required      = errors.New("aal2 required")
	ErrPolicyRequires    = errors.New("policy requires 2fa")
	ErrUnknownUser       = errors.New("unknown user")
	ErrNoUserNamed       = errors.New("no user named")
	ErrUnknownSession    = errors.New("unknown session")
	ErrCurrentSession    = errors.New("that is the current session")
	ErrBadTimeout        = errors.New("session timeout out of range")
	ErrBadMode           = errors.New("bad identity mode")
	ErrFactorLocked      = errors.New("authenticator locked after too many wrong codes")
	ErrCodeUsed          = errors.New("code already used")
	ErrProofRequired     = errors.New("a current code is required")
	ErrNotHeld           = errors.New("no sign-in held by the gateway")
	ErrMethodUnavailable = errors.New("method not available here")
	ErrMethodNotSetUp    = errors.New("method not set up")
	ErrBadDestination    = errors.New("bad destination")
	ErrCodeExpired       = errors.New("code expired or replaced")
	ErrNotSent           = errors.New("the code could not be sent")
	ErrEmailProofNeeded  = errors.New("prove the email address first")
	ErrNoProofNeeded     = errors.New("no email proof is needed")
)

// LockedError is a refused code while the user or the address is locked out.
type LockedError struct {
	RetryAfter time.Duration
	// Recovery is set when recovery codes are what is locked out; a lock on
	// authenticator codes leaves recovery codes usable.
	Recovery bool
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("locked out: retry after %v", e.RetryAfter.Round(time.Second))
}

// kindError is an error of a known kind with its own words.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func fmtErr(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
