package identity

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

func countN(h *Health, n int, v Verdict, c Cause) {
	for range n {
		h.Count(v, c)
	}
}

func TestHealthSummaryStates(t *testing.T) {
	tests := []struct {
		name     string
		verified int
		failures map[Cause]int
		state    string
		top      Cause
	}{
		{"nothing", 0, nil, StateNone, ""},
		{"healthy", 5, nil, StateHealthy, ""},
		{"warning", 5, map[Cause]int{CauseExpiredToken: 2}, StateWarning, CauseExpiredToken},
		{"failing at equality", 3, map[Cause]int{CauseExpiredToken: 2, CauseMissingToken: 1}, StateFailing, CauseExpiredToken},
		{"failing without verified", 0, map[Cause]int{CauseSignatureMismatch: 1}, StateFailing, CauseSignatureMismatch},
		{"tie goes to the earlier cause", 10, map[Cause]int{CauseUserMismatch: 2, CauseMissingToken: 2}, StateWarning, CauseMissingToken},
		{"most common wins", 1, map[Cause]int{CauseMissingToken: 1, CauseMalformedToken: 3, CauseAlgorithm: 2}, StateFailing, CauseMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHealth(newClock(t0).Now)
			countN(h, tc.verified, Verified, "")
			var total uint64
			for c, n := range tc.failures {
				countN(h, n, Unverified, c)
				total += uint64(n)
			}
			// Not counted: anonymous, Off-mode unverified, unknown causes.
			h.Count(Anonymous, "")
			h.Count(Unverified, "")
			h.Count(Unverified, "bogus")
			s := h.Summary()
			if s.State != tc.state || s.Verified != uint64(tc.verified) || s.FailureTotal != total || s.TopCause != tc.top || s.TopCauseWords != tc.top.Words() {
				t.Fatalf("summary %+v; want state %s, verified %d, failures %d, top %q", s, tc.state, tc.verified, total, tc.top)
			}
			if len(s.Failures) != len(tc.failures) {
				t.Fatalf("failures %v, want %v", s.Failures, tc.failures)
			}
			for c, n := range tc.failures {
				if s.Failures[c] != uint64(n) {
					t.Fatalf("failures[%s] = %d, want %d", c, s.Failures[c], n)
				}
			}
			if s.Failures == nil {
				t.Fatal("nil Failures map")
			}
		})
	}
}

func TestHealthRollingWindow(t *testing.T) {
	clk := newClock(t0.Add(30 * time.Minute)) // 12:30
	h := NewHealth(clk.Now)
	h.Count(Verified, "")
	h.Count(Unverified, CauseExpiredToken)
	clk.Advance(10 * time.Hour) // 22:30
	h.Count(Unverified, CauseMissingToken)

	clk.Advance(13 * time.Hour) // 11:30 next day: 12:00 is the oldest hour of the window
	if s := h.Summary(); s.Verified != 1 || s.FailureTotal != 2 {
		t.Fatalf("after 23h: %+v", s)
	}
	clk.Advance(time.Hour) // 12:30: the first hour has left the window
	if s := h.Summary(); s.Verified != 0 || s.FailureTotal != 1 || s.TopCause != CauseMissingToken {
		t.Fatalf("after 24h: %+v", s)
	}
	// The bucket of 12:00 is reused for today's 12:00 and starts from zero.
	h.Count(Verified, "")
	if s := h.Summary(); s.Verified != 1 || s.Failures[CauseExpiredToken] != 0 {
		t.Fatalf("reused bucket: %+v", s)
	}
	clk.Advance(25 * time.Hour)
	s := h.Summary()
	if s.State != StateNone || s.Verified != 0 || s.FailureTotal != 0 {
		t.Fatalf("after 25h more: %+v", s)
	}
	// The last verified time outlives the window.
	if want := t0.Add(24*time.Hour + 30*time.Minute); !s.LastVerified.Equal(want) {
		t.Fatalf("LastVerified %v, want %v", s.LastVerified, want)
	}
}

func TestHealthLastVerified(t *testing.T) {
	clk := newClock(t0)
	h := NewHealth(clk.Now)
	if !h.Summary().LastVerified.IsZero() {
		t.Fatal("LastVerified set without traffic")
	}
	h.Count(Verified, "")
	clk.Advance(500 * time.Millisecond)
	h.Count(Verified, "") // within the second: not rewritten
	h.Count(Unverified, CauseExpiredToken)
	if got := h.Summary().LastVerified; !got.Equal(t0) {
		t.Fatalf("LastVerified %v, want %v", got, t0)
	}
	clk.Advance(2 * time.Second)
	h.Count(Unverified, CauseExpiredToken)
	if got := h.Summary().LastVerified; !got.Equal(t0) {
		t.Fatalf("failure moved LastVerified to %v", got)
	}
	h.Count(Verified, "")
	if got, want := h.Summary().LastVerified, clk.Now().Truncate(time.Second); !got.Equal(want) {
		t.Fatalf("LastVerified %v, want %v", got, want)
	}
}

func TestHealthJSONRoundTrip(t *testing.T) {
	clk := newClock(t0)
	h := NewHealth(clk.Now)
	countN(h, 7, Verified, "")
	countN(h, 2, Unverified, CauseExpiredToken)
	clk.Advance(3 * time.Hour)
	countN(h, 1, Unverified, CauseUserMismatch)
	countN(h, 4, Verified, "")
	want := h.Summary()

	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	h2 := NewHealth(clk.Now)
	h2.Count(Unverified, CauseMalformedToken) // replaced by the restore
	if err := json.Unmarshal(data, h2); err != nil {
		t.Fatal(err)
	}
	if got := h2.Summary(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v\nwant     %+v", got, want)
	}
	// Counting continues on top of the restored counts.
	h2.Count(Verified, "")
	if got := h2.Summary().Verified; got != want.Verified+1 {
		t.Fatalf("verified %d after one more", got)
	}
	// And the snapshot is stable.
	data2, _ := json.Marshal(h2)
	var h3 Health // a zero Health sets itself up, with the real clock
	if err := json.Unmarshal(data2, &h3); err != nil {
		t.Fatal(err)
	}
	if got := h3.Summary().LastVerified; !got.Equal(want.LastVerified) {
		t.Fatalf("zero Health restored LastVerified %v", got)
	}

	// Restoring a day later drops the hours outside the window.
	clk.Advance(22*time.Hour + 30*time.Minute) // the first hour is now 25.5h old
	h4 := NewHealth(clk.Now)
	if err := h4.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	if s := h4.Summary(); s.Verified != 4 || s.FailureTotal != 1 || !s.LastVerified.Equal(want.LastVerified) {
		t.Fatalf("restored a day later: %+v", s)
	}
}

func TestHealthUnmarshalErrors(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`{"v":2,"hours":[]}`,
		`{"hours":[]}`,
		`{"v":1,"hours":[{"start":"yesterday"}]}`,
	} {
		h := NewHealth(nil)
		if err := h.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%s) succeeded", in)
		}
	}
	// Unknown causes from a newer version are ignored.
	h := NewHealth(newClock(t0).Now)
	in := `{"v":1,"hours":[{"start":"2025-06-02T12:00:00Z","verified":3,"failures":{"future_cause":9,"expired_token":1}}]}`
	if err := h.UnmarshalJSON([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if s := h.Summary(); s.Verified != 3 || s.FailureTotal != 1 {
		t.Fatalf("%+v", s)
	}
	var bad *GateError
	if errors.As(h.UnmarshalJSON([]byte(`{"v":2}`)), &bad) {
		t.Fatal("unexpected error type")
	}
}

func TestHealthConcurrent(t *testing.T) {
	clk := newClock(t0)
	h := NewHealth(clk.Now)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if (w+i)%4 == 0 {
					h.Count(Unverified, CauseExpiredToken)
				} else {
					h.Count(Verified, "")
				}
				if i%500 == 0 {
					h.Summary()
				}
			}
		}()
	}
	wg.Wait()
	s := h.Summary()
	if s.Verified+s.FailureTotal != workers*each || s.FailureTotal != workers*each/4 {
		t.Fatalf("%+v", s)
	}
}

// pending + settle move counts from live to base without losing what is
// counted in between.
func TestHealthDrain(t *testing.T) {
	clk := newClock(t0)
	h := NewHealth(clk.Now)
	countN(h, 5, Verified, "")
	countN(h, 2, Unverified, CauseMissingToken)
	d := h.pending()
	if d.empty() {
		t.Fatal("nothing pending")
	}
	if total, per := d.failures(); total != 2 || per[0] != 2 {
		t.Fatalf("failures %d %v", total, per)
	}
	countN(h, 3, Verified, "") // after pending, before settle
	stored := &baseCounts{hours: map[int64]hourCounts{hourOf(t0) - 1: {verified: 10}}}
	merged := d.mergeInto(stored, hourOf(t0))
	h.settle(d, merged)
	if s := h.Summary(); s.Verified != 18 || s.FailureTotal != 2 {
		t.Fatalf("after settle: %+v", s)
	}
	d2 := h.pending()
	if total, _ := d2.failures(); total != 0 {
		t.Fatalf("failures pending twice: %d", total)
	}
	var verified uint64
	for _, it := range d2.items {
		verified += it.counts.verified
	}
	if verified != 3 {
		t.Fatalf("%d verified pending, want the 3 counted meanwhile", verified)
	}
}
