package identity

import (
	"fmt"
	"time"
)

// GateError is SetMode's refusal to switch to Enforce. errors.Is(err,
// ErrEnforceGate) holds; Reason says why in words for the admin page, as in
// "no verified request in the last 24 hours" or "3 failures recorded in the
// last 24 hours, most common: expired token".
type GateError struct {
	Reason  string
	Summary Summary
	OpensAt time.Time // Gate.OpensAt: when the failures that hold it have aged out
}

func (e *GateError) Error() string { return "identity: cannot switch to enforce: " + e.Reason }

// Unwrap makes errors.Is(err, ErrEnforceGate) true.
func (e *GateError) Unwrap() error { return ErrEnforceGate }

// gateReason is why Enforce is refused for sum, or "" when it is allowed:
// at least one verified request and no failure in the window (seed 000,
// "Production health and enforce gate").
func gateReason(sum Summary) string {
	failures := ""
	if sum.FailureTotal > 0 {
		noun := "failures"
		if sum.FailureTotal == 1 {
			noun = "failure"
		}
		failures = fmt.Sprintf("%d %s recorded in the last 24 hours, most common: %s",
			sum.FailureTotal, noun, sum.TopCauseWords)
	}
	switch {
	case sum.Verified == 0 && failures == "":
		return "no verified request in the last 24 hours"
	case sum.Verified == 0:
		return "no verified request in the last 24 hours, and " + failures
	default:
		return failures
	}
}

// Status is what the admin page and API show. It never holds a secret.
type Status struct {
	Mode          Mode      `json:"mode"`
	HasSecret     bool      `json:"has_secret"`
	SecretCreated time.Time `json:"secret_created,omitzero"`
	// PrevUntil is when the previous secret stops working; zero when there
	// is none (or its window has passed).
	PrevUntil time.Time `json:"previous_valid_until,omitzero"`
	// WidgetKey is public: it goes in the page's install snippet.
	WidgetKey string  `json:"widget_key"`
	Health    Summary `json:"health"`
	// EnforceAllowed is whether SetMode(Enforce) would pass now (computed
	// the same way in Enforce, so the page can warn when health degrades);
	// EnforceReason says why not.
	EnforceAllowed bool   `json:"enforce_allowed"`
	EnforceReason  string `json:"enforce_reason,omitempty"`
	// EnforceOpensAt is when the failures now in the window have left it
	// (Gate.OpensAt); zero when no failure holds the gate. The failures
	// that hold it are Health.Failures. EnforceNeedsVerified: a verified
	// request is still needed then (Gate.NeedsVerified).
	EnforceOpensAt       time.Time `json:"enforce_opens_at,omitzero"`
	EnforceNeedsVerified bool      `json:"enforce_needs_verified,omitempty"`
	// Problem is set when the stored secret is unusable.
	Problem string `json:"problem,omitempty"`
}

// Status reports the current state.
func (s *Service) Status() Status {
	s.mu.Lock()
	st := Status{
		Mode:          s.st.Mode,
		HasSecret:     s.cur != nil,
		SecretCreated: s.st.SecretCreated,
		WidgetKey:     s.st.WidgetKey,
		Problem:       s.problem,
	}
	if s.prev != nil && s.now().Before(s.st.PrevUntil) {
		st.PrevUntil = s.st.PrevUntil
	}
	s.mu.Unlock()
	var gate Gate
	st.Health, gate = s.health.state()
	if !st.HasSecret {
		st.EnforceReason = "no identity secret: generate one first"
	} else {
		st.EnforceReason, st.EnforceOpensAt, st.EnforceNeedsVerified = gate.Reason, gate.OpensAt, gate.NeedsVerified
	}
	st.EnforceAllowed = st.EnforceReason == ""
	return st
}
