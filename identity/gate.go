package identity

import "time"

// Gate is the enforce gate as of one reading of the health counts: whether
// Enforce may be switched on, why not, and when that changes by itself.
type Gate struct {
	Reason string // why Enforce is refused, "" when it is allowed; see gateReason
	// OpensAt is when the newest failure in the window leaves it: the
	// start of the hour 24 hours after the hour it was counted in (the
	// window is whole hours). Zero when no failure holds the gate.
	OpensAt time.Time
	// NeedsVerified: by OpensAt (or now, without failures) no verified
	// request will be left in the window, so the gate opens only at the
	// first verified request after that.
	NeedsVerified bool
}

// Allowed reports whether Enforce may be switched on.
func (g Gate) Allowed() bool { return g.Reason == "" }

// gateOf computes the gate from the hourly counts of the window ending at
// hour cur and their summary. The summary decides (gateReason, the one
// rule); the hours say when the failures age out.
func gateOf(hours map[int64]hourCounts, cur int64, sum Summary) Gate {
	g := Gate{Reason: gateReason(sum)}
	newest := int64(-1 << 62)
	for hr, hc := range hours {
		if inWindow(hr, cur) && hc.failed() && hr > newest {
			newest = hr
		}
	}
	if sum.FailureTotal == 0 {
		g.NeedsVerified = sum.Verified == 0
		return g
	}
	g.OpensAt = time.Unix((newest+windowHours)*3600, 0).UTC()
	var after uint64
	for hr, hc := range hours {
		if inWindow(hr, cur) && hr > newest {
			after += hc.verified
		}
	}
	g.NeedsVerified = after == 0
	return g
}

func (c *hourCounts) failed() bool {
	for _, n := range c.fail {
		if n > 0 {
			return true
		}
	}
	return false
}

// state reads the counts once and returns their summary and the gate.
func (h *Health) state() (Summary, Gate) {
	now := h.now()
	hours, last := h.counts(now)
	sum := summarize(hours, last)
	return sum, gateOf(hours, hourOf(now), sum)
}
