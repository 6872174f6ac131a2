package identity

import (
	"testing"
	"time"
)

// event is one count at an offset from t0 (12:00).
type event struct {
	at    time.Duration
	cause Cause // "" counts a verified request
	n     int
}

func TestGateOpensWhenTheNewestFailureLeavesTheWindow(t *testing.T) {
	tests := []struct {
		name          string
		events        []event
		now           time.Duration // when the gate is read, from t0
		allowed       bool
		opensAt       time.Duration // from t0; -1 means zero
		needsVerified bool
	}{
		{"no traffic", nil, 0, false, -1, true},
		{"healthy", []event{{0, "", 3}}, time.Hour, true, -1, false},
		{"one failure at 12:10 holds it until 12:00 the next day",
			[]event{{0, "", 5}, {10 * time.Minute, CauseExpiredToken, 1}, {80 * time.Minute, "", 5}},
			90 * time.Minute, false, 24 * time.Hour, false},
		{"the newest failure decides",
			[]event{{10 * time.Minute, CauseMissingToken, 2}, {3*time.Hour + 59*time.Minute, CauseSignatureMismatch, 1}, {5 * time.Hour, "", 1}},
			6 * time.Hour, false, 27 * time.Hour, false},
		{"verified only before the failure: a verified request is still needed",
			[]event{{0, "", 9}, {2 * time.Hour, CauseUserMismatch, 1}},
			3 * time.Hour, false, 26 * time.Hour, true},
		{"verified in the failure's own hour leaves with it",
			[]event{{2*time.Hour + 5*time.Minute, CauseExpiredToken, 1}, {2*time.Hour + 30*time.Minute, "", 4}},
			2*time.Hour + 40*time.Minute, false, 26 * time.Hour, true},
		{"failures only", []event{{0, CauseMalformedToken, 3}}, time.Minute, false, 24 * time.Hour, true},
		{"a failure that aged out no longer holds it",
			[]event{{0, CauseExpiredToken, 1}, {23 * time.Hour, "", 1}},
			24 * time.Hour, true, -1, false},
		{"an hour before the failure ages out it still holds",
			[]event{{0, CauseExpiredToken, 1}, {23 * time.Hour, "", 1}},
			23*time.Hour + 59*time.Minute, false, 24 * time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(t0)
			h := NewHealth(clk.Now)
			for _, ev := range tc.events {
				clk.t = t0.Add(ev.at)
				if ev.cause == "" {
					countN(h, ev.n, Verified, "")
				} else {
					countN(h, ev.n, Unverified, ev.cause)
				}
			}
			clk.t = t0.Add(tc.now)
			sum, g := h.state()
			if g.Allowed() != tc.allowed {
				t.Fatalf("allowed = %v (reason %q), want %v", g.Allowed(), g.Reason, tc.allowed)
			}
			if g.Reason != gateReason(sum) {
				t.Errorf("reason %q differs from gateReason %q", g.Reason, gateReason(sum))
			}
			var want time.Time
			if tc.opensAt >= 0 {
				want = t0.Add(tc.opensAt)
			}
			if !g.OpensAt.Equal(want) {
				t.Errorf("opens at %v, want %v", g.OpensAt, want)
			}
			if g.NeedsVerified != tc.needsVerified {
				t.Errorf("needs verified = %v, want %v", g.NeedsVerified, tc.needsVerified)
			}
			// At the time it names, the failures are gone from the window.
			if !g.OpensAt.IsZero() {
				clk.t = g.OpensAt
				if s := h.Summary(); s.FailureTotal != 0 {
					t.Errorf("at %v the window still holds %d failures", g.OpensAt, s.FailureTotal)
				}
				clk.t = g.OpensAt.Add(-time.Second)
				if s := h.Summary(); s.FailureTotal == 0 {
					t.Errorf("a second before %v the window holds no failure: the gate opened earlier than said", g.OpensAt)
				}
			}
		})
	}
}

func TestStatusNamesWhenEnforceOpens(t *testing.T) {
	clk := newClock(t0)
	h := NewHealth(clk.Now)
	h.Count(Verified, "")
	clk.t = t0.Add(90 * time.Minute)
	h.Count(Unverified, CauseExpiredToken)
	h.Count(Unverified, CauseExpiredToken)
	h.Count(Unverified, CauseMissingToken)
	sum, g := h.state()
	if want := t0.Add(25 * time.Hour); !g.OpensAt.Equal(want) || sum.Failures[CauseExpiredToken] != 2 || sum.Failures[CauseMissingToken] != 1 {
		t.Fatalf("gate %+v, failures %v; want it to open at %v, held by 2 expired and 1 missing", g, sum.Failures, want)
	}
}
