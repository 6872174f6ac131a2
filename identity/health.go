package identity

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Health states, as Summary.State.
const (
	StateNone    = "none"    // nothing verified or failed in the window
	StateHealthy = "healthy" // verified requests and no failure
	StateWarning = "warning" // failures, but fewer than verified requests
	StateFailing = "failing" // failures, at least as many as verified requests
)

// Window is how far back Health looks: the product's "last 24 hours".
const Window = 24 * time.Hour

const windowHours = 24

// Health counts identity checks over a rolling 24-hour window: verified
// requests, failures per Cause, and the time of the last verified request.
// Safe for concurrent use; build it with NewHealth.
//
// # Counting
//
// Count is on every widget request, so it takes no lock and, in the common
// case, writes no cache line another CPU is writing: counters are atomics in
// shards (four per CPU), and each call picks a shard at random (the
// runtime's per-thread generator). Readers (Summary, MarshalJSON) add the
// shards up; they are rare.
//
// # Window
//
// Each shard has 24 hourly buckets indexed by hour number mod 24 and
// stamped with the hour they hold. A bucket is reset lazily, by the first
// Count of a new hour that lands on it (under the shard's mutex, once an
// hour), and readers only add buckets stamped within the last 24 hours, so
// nothing ever sweeps. The window is therefore the current hour plus the 23
// before it: between 23 and 24 hours, never more.
//
// The time of the last verified request is kept to the second (written at
// most once a second per shard, so that the word does not bounce between
// CPUs; truncated, so that the shard a request lands on makes no
// difference).
//
// # Persistence
//
// The counts are two layers: a base (what the store held, as of the last
// restore or flush; immutable, swapped atomically) and the live shards
// (counted since then). Every reader sees base + live. Service flushes by
// adding the live counts to whatever the store holds now, in one
// transaction, and then moving them from live to base (see
// Service.Flush). Adding rather than overwriting is what keeps a config
// reload (the new instance opens before the old one has flushed its last
// counts) and several instances on one store from losing counts.
//
// MarshalJSON snapshots base + live; UnmarshalJSON replaces both with a
// snapshot.
type Health struct {
	now    func() time.Time
	shards []healthShard
	mask   uint32
	base   atomic.Pointer[baseCounts]
}

// baseCounts is an immutable set of counts per hour number.
type baseCounts struct {
	hours map[int64]hourCounts
	last  int64 // Unix seconds of the last verified request; 0 if none
}

type healthShard struct {
	mu           sync.Mutex   // taken only to reset a bucket for a new hour
	lastVerified atomic.Int64 // Unix seconds of the last verified request
	buckets      [windowHours]bucket
	_            [64]byte // keep the next shard's hot words off this line
}

type bucket struct {
	hour     atomic.Int64 // hour number (Unix seconds / 3600) these counts belong to
	verified atomic.Uint64
	fail     [numCauses]atomic.Uint64
}

// NewHealth returns an empty Health reading the clock now (nil means
// time.Now).
func NewHealth(now func() time.Time) *Health {
	if now == nil {
		now = time.Now
	}
	n := 8
	for n < 4*runtime.GOMAXPROCS(0) && n < 256 {
		n *= 2
	}
	h := &Health{now: now, shards: make([]healthShard, n), mask: uint32(n - 1)}
	h.base.Store(&baseCounts{})
	return h
}

func hourOf(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s < 0 && s%3600 != 0 {
		h-- // floor, for clocks before 1970 (tests)
	}
	return h
}

func slot(hour int64) int {
	return int(((hour % windowHours) + windowHours) % windowHours)
}

// Count records one identity check. Verified counts as verified;
// Unverified with a known Cause counts as a failure of that cause;
// Anonymous, and Unverified without a cause (mode Off), are not counted.
func (h *Health) Count(v Verdict, c Cause) {
	if idx, ok := countIndex(v, c); ok {
		h.countAt(h.now(), idx)
	}
}

// countIndex is the counter for (v, c): -1 for verified, the cause's index
// for a failure; false when not counted.
func countIndex(v Verdict, c Cause) (int, bool) {
	switch v {
	case Verified:
		return -1, true
	case Unverified:
		return c.index()
	}
	return 0, false
}

// countAt counts at now: a verified request for idx < 0, else a failure of
// causeList()[idx]. The Service reads the clock once per request and passes
// it here and to the Verifier.
func (h *Health) countAt(now time.Time, idx int) {
	hour := hourOf(now)
	s := &h.shards[rand.Uint32()&h.mask]
	b := &s.buckets[slot(hour)]
	if b.hour.Load() != hour && !s.turn(b, hour) {
		return
	}
	if idx >= 0 {
		b.fail[idx].Add(1)
		return
	}
	b.verified.Add(1)
	// Written once a second at most; the load is a shared read.
	if sec := now.Unix(); sec > s.lastVerified.Load() {
		s.lastVerified.Store(sec)
	}
}

// turn resets b for hour. It returns false when b already holds a later
// hour (this caller's clock reading is a day stale): the count is dropped
// rather than wiping newer counts.
func (s *healthShard) turn(b *bucket, hour int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cur := b.hour.Load(); {
	case cur == hour:
		return true
	case cur > hour:
		return false
	}
	// Zero first, stamp last: a concurrent Count that sees the new stamp
	// adds to zeroed counters, and one that sees the old stamp waits here.
	b.verified.Store(0)
	for i := range b.fail {
		b.fail[i].Store(0)
	}
	b.hour.Store(hour)
	return true
}
