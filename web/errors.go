package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/identity"
	"github.com/mfagate/mfagate/mfa"
)

// Error is an error a client sees: a status, a machine code and words.
// Users get one message per kind of failure; the log gets the reason.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// with returns a copy with another message.
func (e *Error) with(msg string) *Error {
	c := *e
	c.Message = msg
	return &c
}

// With returns a copy with another message.
func (e *Error) With(msg string) *Error { return e.with(msg) }

// The public error codes.
var (
	ErrBadRequest        = &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "The request could not be read."}
	errMalformedCode     = &Error{Status: http.StatusBadRequest, Code: "malformed_code", Message: "Enter the 6-digit code from your authenticator app."}
	errMalformedRecovery = &Error{Status: http.StatusBadRequest, Code: "malformed_recovery_code", Message: "Enter one of your recovery codes, like abcdef-234567."}
	errNotAcknowledged   = &Error{Status: http.StatusBadRequest, Code: "not_acknowledged", Message: "Confirm that you have saved your recovery codes."}
	errBadMode           = &Error{Status: http.StatusBadRequest, Code: "bad_mode", Message: "The mode must be off, monitor or enforce."}
	errNoSession         = &Error{Status: http.StatusUnauthorized, Code: "no_session", Message: "Sign in to the app first."}
	errWrongCode         = &Error{Status: http.StatusUnauthorized, Code: "invalid_code", Message: "That code is not valid. Check your authenticator app and try again."}
	errWrongRecovery     = &Error{Status: http.StatusUnauthorized, Code: "invalid_recovery_code", Message: "That recovery code is not valid or was already used."}
	ErrMFARequired       = &Error{Status: http.StatusUnauthorized, Code: "mfa_required", Message: "Finish two-factor sign-in first."}
	errCSRF              = &Error{Status: http.StatusForbidden, Code: "csrf_failed", Message: "The form expired or came from another site. Reload the page and try again."}
	ErrSignInUnverified  = &Error{Status: http.StatusForbidden, Code: "sign_in_unverified", Message: "The sign-in was stopped because the gateway could not tell who signed in. Use the app's sign-in form, or ask your administrator."}
	errCrossOrigin       = &Error{Status: http.StatusForbidden, Code: "cross_origin", Message: "Requests must come from this site."}
	errAAL2Required      = &Error{Status: http.StatusForbidden, Code: "aal2_required", Message: "Sign in again with your authenticator app to do this."}
	ErrEnrolmentRequired = &Error{Status: http.StatusForbidden, Code: "enrolment_required", Message: "Set up two-factor authentication to continue."}
	errPolicyRequires    = &Error{Status: http.StatusForbidden, Code: "policy_requires_2fa", Message: "Your team requires two-factor authentication, so it cannot be disabled."}
	errNotAdmin          = &Error{Status: http.StatusForbidden, Code: "not_admin", Message: "Only team admins can do this."}
	errUnknownUser       = &Error{Status: http.StatusNotFound, Code: "unknown_user", Message: "No such user."}
	errUnknownSession    = &Error{Status: http.StatusNotFound, Code: "unknown_session", Message: "No such session."}
	errNotFound          = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "No such page."}
	errMethod            = &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "Method not allowed."}
	ErrSignInInProgress  = &Error{Status: http.StatusConflict, Code: "sign_in_in_progress", Message: "Another sign-in is in progress in this browser. Wait for it to finish, then try again."}
	errAlreadyEnrolled   = &Error{Status: http.StatusConflict, Code: "already_enrolled", Message: "Two-factor authentication is already on."}
	errNotEnrolled       = &Error{Status: http.StatusConflict, Code: "not_enrolled", Message: "Two-factor authentication is not on."}
	errNoSetup           = &Error{Status: http.StatusConflict, Code: "no_pending_setup", Message: "Start the setup first."}
	errNoPendingCodes    = &Error{Status: http.StatusConflict, Code: "no_pending_codes", Message: "There are no recovery codes waiting to be confirmed."}
	errFactorLocked      = &Error{Status: http.StatusForbidden, Code: "factor_locked", Message: "Your authenticator is locked after too many wrong codes. Use one of your recovery codes, or ask your administrator to unlock it."}
	errUseRecovery       = &Error{Status: http.StatusConflict, Code: "use_recovery_code", Message: "Your authenticator was removed. Use one of your recovery codes."}
	errNotPending        = &Error{Status: http.StatusConflict, Code: "no_challenge", Message: "There is no sign-in waiting for a second factor."}
	errEnforceGate       = &Error{Status: http.StatusConflict, Code: "enforce_gate", Message: "Enforce is not allowed yet."}
	errNoSecret          = &Error{Status: http.StatusConflict, Code: "no_secret", Message: "Generate an identity secret first."}
	ErrTooLarge          = &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "The request is too large."}
	errRateLimited       = &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "Too many wrong codes. Wait a while and try again."}
	errCodeUsed          = &Error{Status: http.StatusUnauthorized, Code: "code_used", Message: "That code was already used. Wait for your authenticator app to show a new code, then enter it."}
	errProofRequired     = &Error{Status: http.StatusBadRequest, Code: "code_required", Message: "To confirm, enter a current code from your authenticator app, or one of your recovery codes."}
	errNotHeld           = &Error{Status: http.StatusConflict, Code: "not_held", Message: "There is no unfinished sign-in to end here. Sign out through the app."}
	errSignInExpired     = &Error{Status: http.StatusUnauthorized, Code: "sign_in_expired", Message: "This sign-in has expired or was ended. Sign in to the app again."}
	errMethodUnavailable = &Error{Status: http.StatusConflict, Code: "method_unavailable", Message: "That method is not available here."}
	errMethodNotSetUp    = &Error{Status: http.StatusConflict, Code: "method_not_set_up", Message: "That method is not set up for your account."}
	errBadDestination    = &Error{Status: http.StatusBadRequest, Code: "bad_destination", Message: "Enter an email address or a mobile number with its country code."}
	errCodeExpired       = &Error{Status: http.StatusUnauthorized, Code: "code_expired", Message: "That code has expired or a newer one was sent. Send a new code and enter that one."}
	errNotSent           = &Error{Status: http.StatusServiceUnavailable, Code: "not_sent", Message: "The code could not be sent. Try again in a moment, or use another method."}
	errSendLimited       = &Error{Status: http.StatusTooManyRequests, Code: "send_limited", Message: "A new code cannot be sent yet."}
	errUnknownDevice     = &Error{Status: http.StatusNotFound, Code: "unknown_device", Message: "No such remembered browser."}
	errUnknownAddress    = &Error{Status: http.StatusNotFound, Code: "unknown_address", Message: "That address is not one you signed in from."}
	errEmailProof        = &Error{Status: http.StatusForbidden, Code: "email_proof_required", Message: "First confirm it's you with the code we email to your address, then set up your second factor."}
	errNoProofNeeded     = &Error{Status: http.StatusConflict, Code: "no_proof_needed", Message: "No email confirmation is needed here."}
	errRememberOff       = &Error{Status: http.StatusConflict, Code: "remember_off", Message: "Remembering browsers is off here."}
	ErrUnavailable       = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "Something went wrong on our side. Try again in a moment."}
)

// domainErrors is the one table from the domain's errors to public ones.
var domainErrors = []struct {
	err error
	pub *Error
}{
	{mfa.ErrMalformedCode, errMalformedCode},
	{mfa.ErrMalformedRecovery, errMalformedRecovery},
	{mfa.ErrCodeUsed, errCodeUsed},
	{mfa.ErrWrongCode, errWrongCode},
	{mfa.ErrProofRequired, errProofRequired},
	{mfa.ErrNotHeld, errNotHeld},
	{mfa.ErrMethodUnavailable, errMethodUnavailable},
	{mfa.ErrMethodNotSetUp, errMethodNotSetUp},
	{mfa.ErrCodeExpired, errCodeExpired},
	{mfa.ErrUnknownDevice, errUnknownDevice},
	{mfa.ErrEmailProofNeeded, errEmailProof},
	{mfa.ErrNoProofNeeded, errNoProofNeeded},
	{mfa.ErrUnknownAddress, errUnknownAddress},
	{mfa.ErrRememberOff, errRememberOff},
	{mfa.ErrNotSent, errNotSent},
	{mfa.ErrWrongRecovery, errWrongRecovery},
	{mfa.ErrNotAcknowledged, errNotAcknowledged},
	{mfa.ErrAlreadyEnrolled, errAlreadyEnrolled},
	{mfa.ErrNotEnrolled, errNotEnrolled},
	{mfa.ErrNoSetup, errNoSetup},
	{mfa.ErrNoPendingCodes, errNoPendingCodes},
	{mfa.ErrUseRecovery, errUseRecovery},
	{mfa.ErrFactorLocked, errFactorLocked},
	{mfa.ErrEnrolmentRequired, ErrEnrolmentRequired},
	{mfa.ErrAAL2Required, errAAL2Required},
	{mfa.ErrPolicyRequires, errPolicyRequires},
	{mfa.ErrUnknownUser, errUnknownUser},
	{mfa.ErrNoUserNamed, ErrBadRequest.with("Name the user to reset or unlock.")},
	{mfa.ErrUnknownSession, errUnknownSession},
	{mfa.ErrCurrentSession, ErrBadRequest.with("That is this session: sign out of the app instead.")},
	{mfa.ErrBadMode, errBadMode},
	{identity.ErrNoSecret, errNoSecret},
}

// lockedMessage says how long a lock-out lasts and what else to do.
func lockedMessage(l *mfa.LockedError) string {
	wait := "Try again in " + waitWords(l.RetryAfter) + "."
	if l.Recovery {
		return "Too many wrong recovery codes. " + wait + " If you have none left that work, ask your administrator to reset your two-factor authentication."
	}
	return "Too many wrong codes. " + wait + " If you don't have your phone, use one of your recovery codes instead."
}

// waitWords is d for people, rounded up: "40 seconds", "1 minute", "15 minutes".
func waitWords(d time.Duration) string {
	if d < time.Minute {
		n := max(int((d+time.Second-1)/time.Second), 1)
		if n == 1 {
			return "1 second"
		}
		return strconv.Itoa(n) + " seconds"
	}
	n := int((d + time.Minute - 1) / time.Minute)
	if n == 1 {
		return "1 minute"
	}
	return strconv.Itoa(n) + " minutes"
}

// public maps a domain error to what the client sees. An error the table
// does not know is a fault: logged with op, shown as "unavailable".
func (site *Site) public(err error, op string) *Error {
	return publicError(site.log, err, op)
}

func publicError(log *zap.Logger, err error, op string) *Error {
	var locked *mfa.LockedError
	var limit *mfa.SendLimitError
	var gate *identity.GateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &locked):
		e := *errRateLimited
		e.RetryAfter = locked.RetryAfter
		e.Message = lockedMessage(locked)
		return &e
	case errors.As(err, &limit):
		e := *errSendLimited
		e.RetryAfter = limit.RetryAfter
		e.Message = "A new code cannot be sent yet. Try again in " + waitWords(limit.RetryAfter) + ", or use the code already sent."
		return &e
	case errors.Is(err, mfa.ErrBadDestination):
		return errBadDestination.with(err.Error())
	case errors.As(err, &gate):
		return errEnforceGate.with("Enforce is not allowed yet: " + gate.Reason + ".")
	case errors.Is(err, mfa.ErrBadTimeout):
		return ErrBadRequest.with(err.Error())
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return d.pub
		}
	}
	log.Error("gateway operation failed", zap.String("op", op), zap.Error(err))
	return ErrUnavailable
}

// WriteJSONError answers a script with e, an internal failure (5xx) too:
// the client learns that nothing was done and that it may try again.
func WriteJSONError(w http.ResponseWriter, e *Error) error {
	setRetryAfter(w, e)
	WriteJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
	return nil
}

// WriteJSON answers with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func setRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
}
