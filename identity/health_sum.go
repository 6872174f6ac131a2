package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Summary is the health of the last 24 hours, for the admin page and API.
type Summary struct {
	// State is StateNone, StateHealthy, StateWarning or StateFailing:
	//   none:    no verified request and no failure in the window;
	//   healthy: verified > 0 and no failure;
	//   warning: failures > 0 and verified > failures;
	//   failing: failures > 0 and verified <= failures.
	State    string `json:"state"`
	Verified uint64 `json:"verified"`
	// Failures has the non-zero counts per cause (never nil).
	Failures     map[Cause]uint64 `json:"failures"`
	FailureTotal uint64           `json:"failure_total"`
	// TopCause is the most common failure (ties go to the earlier cause in
	// Causes()); empty without failures. TopCauseWords is its Words().
	TopCause      Cause  `json:"top_cause,omitempty"`
	TopCauseWords string `json:"top_cause_words,omitempty"`
	// LastVerified is the last verified request, truncated to the second,
	// even if it
	// is older than the window (it survives restarts); zero if none.
	LastVerified time.Time `json:"last_verified,omitzero"`
}

type hourCounts struct {
	verified uint64
	fail     [numCauses]uint64
}

func (c *hourCounts) add(o *hourCounts) {
	c.verified += o.verified
	for k := range c.fail {
		c.fail[k] += o.fail[k]
	}
}

func (c *hourCounts) empty() bool { return *c == hourCounts{} }

func inWindow(hour, cur int64) bool { return hour > cur-windowHours && hour <= cur }

// counts adds base and live within the window ending at now.
func (h *Health) counts(now time.Time) (hours map[int64]hourCounts, last int64) {
	cur := hourOf(now)
	base := h.base.Load()
	hours = make(map[int64]hourCounts, windowHours)
	for hr, hc := range base.hours {
		if inWindow(hr, cur) {
			hours[hr] = hc
		}
	}
	last = base.last
	for i := range h.shards {
		s := &h.shards[i]
		last = max(last, s.lastVerified.Load())
		for j := range s.buckets {
			b := &s.buckets[j]
			hr := b.hour.Load()
			if !inWindow(hr, cur) {
				continue
			}
			hc := hours[hr]
			hc.verified += b.verified.Load()
			for k := range b.fail {
				hc.fail[k] += b.fail[k].Load()
			}
			hours[hr] = hc
		}
	}
	return hours, last
}

// Summary adds up the window.
func (h *Health) Summary() Summary {
	return summarize(h.counts(h.now()))
}

// summarize adds up hourly counts (already within the window).
func summarize(hours map[int64]hourCounts, last int64) Summary {
	var total hourCounts
	for _, hc := range hours {
		total.add(&hc)
	}
	sum := Summary{Verified: total.verified, Failures: make(map[Cause]uint64)}
	if last != 0 {
		sum.LastVerified = time.Unix(last, 0).UTC()
	}
	var top uint64
	list := causeList()
	for k, n := range total.fail {
		if n == 0 {
			continue
		}
		sum.Failures[list[k]] = n
		sum.FailureTotal += n
		if n > top {
			top, sum.TopCause = n, list[k]
		}
	}
	sum.TopCauseWords = sum.TopCause.Words()
	switch {
	case sum.FailureTotal == 0 && sum.Verified == 0:
		sum.State = StateNone
	case sum.FailureTotal == 0:
		sum.State = StateHealthy
	case sum.Verified > sum.FailureTotal:
		sum.State = StateWarning
	default:
		sum.State = StateFailing
	}
	return sum
}

// healthSnapshot is the stored form (setting "identity/health").
type healthSnapshot struct {
	Version      int            `json:"v"`
	Hours        []hourSnapshot `json:"hours"`
	LastVerified time.Time      `json:"last_verified,omitzero"`
}

type hourSnapshot struct {
	Start    time.Time        `json:"start"` // the hour's first second, UTC
	Verified uint64           `json:"verified,omitempty"`
	Failures map[Cause]uint64 `json:"failures,omitempty"`
}

const healthSnapshotVersion = 1

var errUnknownVersion = errors.New("unknown version")

func encodeCounts(hours map[int64]hourCounts, last int64) ([]byte, error) {
	snap := healthSnapshot{Version: healthSnapshotVersion, Hours: []hourSnapshot{}}
	if last != 0 {
		snap.LastVerified = time.Unix(last, 0).UTC()
	}
	list := causeList()
	for hr, hc := range hours {
		if hc.empty() {
			continue
		}
		hs := hourSnapshot{Start: time.Unix(hr*3600, 0).UTC(), Verified: hc.verified}
		for k, n := range hc.fail {
			if n == 0 {
				continue
			}
			if hs.Failures == nil {
				hs.Failures = make(map[Cause]uint64)
			}
			hs.Failures[list[k]] = n
		}
		snap.Hours = append(snap.Hours, hs)
	}
	sort.Slice(snap.Hours, func(i, j int) bool { return snap.Hours[i].Start.Before(snap.Hours[j].Start) })
	return json.Marshal(snap)
}

// decodeCounts parses a snapshot, keeping the hours within the window
// ending at hour cur and the causes this version knows.
func decodeCounts(data []byte, cur int64) (*baseCounts, error) {
	var snap healthSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("identity: health snapshot: %w", err)
	}
	if snap.Version != healthSnapshotVersion {
		return nil, fmt.Errorf("identity: health snapshot: %w %d", errUnknownVersion, snap.Version)
	}
	bc := &baseCounts{hours: make(map[int64]hourCounts)}
	if !snap.LastVerified.IsZero() {
		bc.last = snap.LastVerified.Unix()
	}
	for _, hs := range snap.Hours {
		hr := hourOf(hs.Start)
		if !inWindow(hr, cur) {
			continue
		}
		hc := bc.hours[hr]
		hc.verified += hs.Verified
		for c, n := range hs.Failures {
			if k, ok := c.index(); ok {
				hc.fail[k] += n
			}
		}
		bc.hours[hr] = hc
	}
	return bc, nil
}

// MarshalJSON snapshots the window: the non-empty hours, oldest first, and
// the time of the last verified request.
func (h *Health) MarshalJSON() ([]byte, error) {
	return encodeCounts(h.counts(h.now()))
}

// UnmarshalJSON replaces every count with the snapshot in data, dropping
// hours outside the window (as of now) and causes this version does not
// know. Counts made concurrently may be lost: restore before traffic.
// On a zero Health it sets itself up with time.Now.
func (h *Health) UnmarshalJSON(data []byte) error {
	if h.shards == nil {
		fresh := NewHealth(nil)
		h.now, h.shards, h.mask = fresh.now, fresh.shards, fresh.mask
	}
	bc, err := decodeCounts(data, hourOf(h.now()))
	if err != nil {
		return err
	}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		s.lastVerified.Store(0)
		for j := range s.buckets {
			b := &s.buckets[j]
			b.hour.Store(0)
			b.verified.Store(0)
			for k := range b.fail {
				b.fail[k].Store(0)
			}
		}
		s.mu.Unlock()
	}
	h.base.Store(bc)
	return nil
}

// liveCount is one live bucket's counts, as read by pending.
type liveCount struct {
	shard, slot int
	hour        int64
	counts      hourCounts
}

// drain is the live counts at one moment, to be added to the store.
type drain struct {
	items []liveCount
	last  int64
}

func (d *drain) empty() bool { return len(d.items) == 0 }

// failures sums the drained failures per cause.
func (d *drain) failures() (total uint64, per [numCauses]uint64) {
	for i := range d.items {
		for k, n := range d.items[i].counts.fail {
			per[k] += n
			total += n
		}
	}
	return total, per
}

// pending reads the live counts (within the window) without changing them.
func (h *Health) pending() drain {
	cur := hourOf(h.now())
	var d drain
	for i := range h.shards {
		s := &h.shards[i]
		d.last = max(d.last, s.lastVerified.Load())
		for j := range s.buckets {
			b := &s.buckets[j]
			hr := b.hour.Load()
			if !inWindow(hr, cur) {
				continue
			}
			lc := liveCount{shard: i, slot: j, hour: hr}
			lc.counts.verified = b.verified.Load()
			for k := range b.fail {
				lc.counts.fail[k] = b.fail[k].Load()
			}
			if !lc.counts.empty() {
				d.items = append(d.items, lc)
			}
		}
	}
	return d
}

// mergeInto adds d to stored (which may be nil) for the window ending at
// hour cur, returning a new baseCounts.
func (d *drain) mergeInto(stored *baseCounts, cur int64) *baseCounts {
	out := &baseCounts{hours: make(map[int64]hourCounts, windowHours)}
	if stored != nil {
		out.last = stored.last
		for hr, hc := range stored.hours {
			if inWindow(hr, cur) {
				out.hours[hr] = hc
			}
		}
	}
	out.last = max(out.last, d.last)
	for i := range d.items {
		lc := &d.items[i]
		if !inWindow(lc.hour, cur) {
			continue
		}
		hc := out.hours[lc.hour]
		hc.add(&lc.counts)
		out.hours[lc.hour] = hc
	}
	return out
}

// settle makes merged the base and takes d's counts out of the live
// shards, leaving whatever was counted since pending. The base is swapped
// first, so a reader in between sees some counts twice, never none: for the
// enforce gate an extra failure is safe and a missing one is not.
func (h *Health) settle(d drain, merged *baseCounts) {
	h.base.Store(merged)
	for i := range d.items {
		lc := &d.items[i]
		s := &h.shards[lc.shard]
		b := &s.buckets[lc.slot]
		s.mu.Lock() // against turn resetting the bucket meanwhile
		if b.hour.Load() == lc.hour {
			b.verified.Add(-lc.counts.verified)
			for k, n := range lc.counts.fail {
				b.fail[k].Add(-n)
			}
		}
		s.mu.Unlock()
	}
}
