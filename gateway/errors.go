package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// apiError is an error a client sees: a status, a machine code and words.
// Users get one message per kind of failure; the log gets the reason.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// with returns a copy with another message.
func (e *apiError) with(msg string) *apiError {
	c := *e
	c.Message = msg
	return &c
}

var (
	errBadRequest        = &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: "The request could not be read."}
	errMalformedCode     = &apiError{Status: http.StatusBadRequest, Code: "malformed_code", Message: "Enter the 6-digit code from your authenticator app."}
	errMalformedRecovery = &apiError{Status: http.StatusBadRequest, Code: "malformed_recovery_code", Message: "Enter one of your recovery codes, like abcdef-234567."}
	errNotAcknowledged   = &apiError{Status: http.StatusBadRequest, Code: "not_acknowledged", Message: "Confirm that you have saved your recovery codes."}
	errNoSession         = &apiError{Status: http.StatusUnauthorized, Code: "no_session", Message: "Sign in to the app first."}
	errWrongCode         = &apiError{Status: http.StatusUnauthorized, Code: "invalid_code", Message: "That code is not valid. Check your authenticator app and try again."}
	errWrongRecovery     = &apiError{Status: http.StatusUnauthorized, Code: "invalid_recovery_code", Message: "That recovery code is not valid or was already used."}
	errMFARequired       = &apiError{Status: http.StatusUnauthorized, Code: "mfa_required", Message: "Finish two-factor sign-in first."}
	errCSRF              = &apiError{Status: http.StatusForbidden, Code: "csrf_failed", Message: "The form expired or came from another site. Reload the page and try again."}
	errSignInUnverified  = &apiError{Status: http.StatusForbidden, Code: "sign_in_unverified", Message: "The sign-in was stopped because the gateway could not tell who signed in. Use the app's sign-in form, or ask your administrator."}
	errCrossOrigin       = &apiError{Status: http.StatusForbidden, Code: "cross_origin", Message: "Requests must come from this site."}
	errAAL2Required      = &apiError{Status: http.StatusForbidden, Code: "aal2_required", Message: "Sign in again with your authenticator app to do this."}
	errEnrolmentRequired = &apiError{Status: http.StatusForbidden, Code: "enrolment_required", Message: "Set up two-factor authentication to continue."}
	errPolicyRequires    = &apiError{Status: http.StatusForbidden, Code: "policy_requires_2fa", Message: "Your team requires two-factor authentication, so it cannot be disabled."}
	errNotAdmin          = &apiError{Status: http.StatusForbidden, Code: "not_admin", Message: "Only team admins can do this."}
	errUnknownUser       = &apiError{Status: http.StatusNotFound, Code: "unknown_user", Message: "No such user."}
	errUnknownSession    = &apiError{Status: http.StatusNotFound, Code: "unknown_session", Message: "No such session."}
	errNotFound          = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "No such page."}
	errMethod            = &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "Method not allowed."}
	errAlreadyEnrolled   = &apiError{Status: http.StatusConflict, Code: "already_enrolled", Message: "Two-factor authentication is already on."}
	errNotEnrolled       = &apiError{Status: http.StatusConflict, Code: "not_enrolled", Message: "Two-factor authentication is not on."}
	errNoSetup           = &apiError{Status: http.StatusConflict, Code: "no_pending_setup", Message: "Start the setup first."}
	errNoPendingCodes    = &apiError{Status: http.StatusConflict, Code: "no_pending_codes", Message: "There are no recovery codes waiting to be confirmed."}
	errUseRecovery       = &apiError{Status: http.StatusConflict, Code: "use_recovery_code", Message: "Your authenticator was removed. Use one of your recovery codes."}
	errNotPending        = &apiError{Status: http.StatusConflict, Code: "no_challenge", Message: "There is no sign-in waiting for a second factor."}
	errTooLarge          = &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "The request is too large."}
	errRateLimited       = &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "Too many wrong codes. Wait a while and try again."}
	errInternal          = &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "Something went wrong on our side. Try again in a moment."}
)

func (g *Gateway) writeJSONError(w http.ResponseWriter, e *apiError) error {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	writeJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
