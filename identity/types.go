package identity

import (
	"fmt"
	"strings"
)

// Mode is how widget identity claims are treated.
type Mode string

const (
	// Off: no checks; claimed ids reach the upstream as "unverified".
	Off Mode = "off"
	// Monitor: verify tokens when present, count and log failures, let every
	// request through. Where a new secret starts.
	Monitor Mode = "monitor"
	// Enforce: a request that claims a user id without a valid token is
	// refused (the gateway answers 403 with the cause).
	Enforce Mode = "enforce"
)

// ParseMode reads "off", "monitor" or "enforce" (case and surrounding space
// ignored).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Off, Monitor, Enforce:
		return m, nil
	}
	return "", fmt.Errorf("identity: unknown mode %q (want off, monitor or enforce)", s)
}

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool { return m == Off || m == Monitor || m == Enforce }

// Cause is why a claimed identity was not verified. The string is the
// machine code used in the 403 body ({"error": "<cause>"}), in the health
// counters and in the stored snapshot; keep the values stable.
type Cause string

// The causes. The first six are the ones the product names; the last two
// are split out because they point at different fixes than "malformed":
// a token too large for the gateway's limit, and a token whose nbf or iat is
// in the future beyond the leeway (the minting server's clock is ahead).
const (
	CauseMissingToken      Cause = "missing_token"
	CauseExpiredToken      Cause = "expired_token"
	CauseSignatureMismatch Cause = "signature_mismatch"
	CauseUserMismatch      Cause = "user_mismatch"
	CauseMalformedToken    Cause = "malformed_token"
	CauseAlgorithm         Cause = "algorithm_not_allowed"
	CauseTokenTooLarge     Cause = "token_too_large"
	CauseNotYetValid       Cause = "token_not_yet_valid"
)

const numCauses = 8

// causeList is every Cause in a fixed order: the index is the counter slot
// in Health (see Cause.index), and the order breaks ties when choosing the
// most common cause. A function returning an array value, so that there is
// no package-level table anyone could modify.
func causeList() [numCauses]Cause {
	return [numCauses]Cause{
		CauseMissingToken,
		CauseExpiredToken,
		CauseSignatureMismatch,
		CauseUserMismatch,
		CauseMalformedToken,
		CauseAlgorithm,
		CauseTokenTooLarge,
		CauseNotYetValid,
	}
}

// Causes returns every cause, in a stable order.
func Causes() []Cause {
	l := causeList()
	return l[:]
}

// index returns c's slot in causeList.
func (c Cause) index() (int, bool) {
	switch c {
	case CauseMissingToken:
		return 0, true
	case CauseExpiredToken:
		return 1, true
	case CauseSignatureMismatch:
		return 2, true
	case CauseUserMismatch:
		return 3, true
	case CauseMalformedToken:
		return 4, true
	case CauseAlgorithm:
		return 5, true
	case CauseTokenTooLarge:
		return 6, true
	case CauseNotYetValid:
		return 7, true
	}
	return 0, false
}

// Words is the cause as the admin page and the 403 message say it:
// "missing token", "expired token", "signature mismatch", "user mismatch",
// "malformed token", "algorithm not allowed", "token too large",
// "token not yet valid". Empty for the empty Cause.
func (c Cause) Words() string {
	switch c {
	case "":
		return ""
	case CauseMissingToken:
		return "missing token"
	case CauseExpiredToken:
		return "expired token"
	case CauseSignatureMismatch:
		return "signature mismatch"
	case CauseUserMismatch:
		return "user mismatch"
	case CauseMalformedToken:
		return "malformed token"
	case CauseAlgorithm:
		return "algorithm not allowed"
	case CauseTokenTooLarge:
		return "token too large"
	case CauseNotYetValid:
		return "token not yet valid"
	}
	return strings.ReplaceAll(string(c), "_", " ")
}

// Verdict is the outcome for one request, sent to the upstream in
// X-Widget-Identity.
//
// The zero value is Unverified, so a verdict that was never set fails
// closed.
type Verdict uint8

const (
	// Unverified: the request claims a user id that the gateway did not
	// prove (a failed check, or mode Off).
	Unverified Verdict = iota
	// Anonymous: the request claims no user id.
	Anonymous
	// Verified: a valid token proves the claimed user id.
	Verified
)

// String returns "unverified", "anonymous" or "verified".
func (v Verdict) String() string {
	switch v {
	case Unverified:
		return "unverified"
	case Anonymous:
		return "anonymous"
	case Verified:
		return "verified"
	}
	return "unverified" // never widen trust for an unknown value
}
