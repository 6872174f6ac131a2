package session

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mk := func(lastSeen time.Time, expires time.Time) *Session {
		s := &Session{State: Active, ExpiresAt: expires}
		s.SetLastSeen(lastSeen)
		return s
	}
	revoked := mk(now, now.Add(time.Hour))
	revoked.Revoke()
	cases := []struct {
		name string
		s    *Session
		want Reason
	}{
		{"fresh", mk(now.Add(-time.Minute), now.Add(time.Hour)), Valid},
		{"idle", mk(now.Add(-11*time.Minute), now.Add(time.Hour)), IdleExpired},
		{"lifetime", mk(now, now.Add(-time.Second)), LifetimeExpired},
		{"revoked", revoked, Revoked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.Check(now, 10*time.Minute); got != c.want {
				t.Fatalf("Check = %v, want %v", got, c.want)
			}
		})
	}
}

func TestBindings(t *testing.T) {
	s := &Session{}
	if s.Bound("sid", "x") {
		t.Fatal("empty session binds")
	}
	s.UpdateBindings([]Binding{{"sid", HashValue("one")}, {"remember", HashValue("r")}}, nil)
	if !s.Bound("sid", "one") || !s.Bound("remember", "r") {
		t.Fatal("set binding missing")
	}
	if s.Bound("sid", "two") || s.Bound("other", "one") {
		t.Fatal("unbound value accepted")
	}
	// The app refreshes its cookie: the binding follows it.
	s.UpdateBindings([]Binding{{"sid", HashValue("two")}}, nil)
	if s.Bound("sid", "one") || !s.Bound("sid", "two") {
		t.Fatal("binding did not follow the refreshed cookie")
	}
	if !s.UpdateBindings(nil, []string{"remember"}) || s.Bound("remember", "r") {
		t.Fatal("deleted cookie still bound")
	}
	if s.UpdateBindings(nil, []string{"absent"}) {
		t.Fatal("no-op update reported a change")
	}
}

func TestTableSweepAndActivity(t *testing.T) {
	tb := NewTable()
	now := time.Now()
	add := func(st State, seen time.Time) *Session {
		id, err := NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := &Session{Key: id.Key(), State: st, ExpiresAt: now.Add(time.Hour)}
		s.SetLastSeen(seen)
		tb.Put(s)
		return s
	}
	live := add(Active, now)
	old := add(Active, now.Add(-2*time.Hour))
	anon := add(Anonymous, now.Add(-20*time.Minute))
	gone := tb.Sweep(now, time.Hour, 15*time.Minute)
	if len(gone) != 2 || tb.Get(old.Key) != nil || tb.Get(anon.Key) != nil || tb.Get(live.Key) == nil {
		t.Fatalf("sweep removed %d, table has %d", len(gone), tb.Len())
	}
	if a := tb.TakeActivity(); len(a) != 0 {
		t.Fatalf("no activity yet, got %d", len(a))
	}
	live.Touch(now.Add(5 * time.Second))
	if a := tb.TakeActivity(); len(a) != 1 || a[0].Session != live {
		t.Fatalf("activity = %v", a)
	}
	if a := tb.TakeActivity(); len(a) != 0 {
		t.Fatal("activity reported twice")
	}
	if tb.Remove(live.Key) != live || !live.Revoked() {
		t.Fatal("remove did not revoke")
	}
}

// TestReviveAndSeenElsewhere: what a shared store's sync relies on. A
// session removed here is not revived from the store for one to two Age
// calls (its deletion may still be on its way); activity stored by another
// instance only moves the activity time forward and is not flushed back.
func TestReviveAndSeenElsewhere(t *testing.T) {
	tb := NewTable()
	now := time.Now()
	mk := func(st State) *Session {
		id, err := NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := &Session{Key: id.Key(), State: st, ExpiresAt: now.Add(time.Hour)}
		s.SetLastSeen(now)
		return s
	}
	s := mk(Active)
	if !tb.Revive(s) || tb.Get(s.Key) != s {
		t.Fatal("a new session was not revived")
	}
	if tb.Revive(mk(Active)) == false || tb.Revive(s) {
		t.Fatal("revive replaced a held session")
	}
	tb.Remove(s.Key)
	copyOf := &Session{Key: s.Key, State: Active}
	for i, want := range []bool{false, false, true} {
		if got := tb.Revive(copyOf); got != want {
			t.Fatalf("revive after %d ages = %v, want %v", i, got, want)
		}
		tb.Age()
	}

	// Refresh: only a newer copy replaces the held one, and only if the
	// held one is still in the table.
	rt := NewTable()
	h := mk(Active)
	rt.Put(h)
	fresh := h.Clone(h.Key) // version + 1
	if rt.Refresh(fresh, h) || !rt.Refresh(h, fresh) || rt.Get(h.Key) != fresh || h.Revoked() {
		t.Fatal("refresh: the newer copy did not replace the held one alone")
	}
	if rt.Refresh(h, fresh.Clone(h.Key)) {
		t.Fatal("refresh replaced a session no longer held")
	}
	if h.UpdateBindings([]Binding{{Name: "app"}}, nil); h.Version() != 1 {
		t.Fatalf("a binding change left the version at %d", h.Version())
	}

	a := mk(Active)
	a.SeenElsewhere(now.Add(-time.Minute))
	if !a.LastSeen().Equal(now) {
		t.Fatal("older activity moved the time back")
	}
	a.SeenElsewhere(now.Add(time.Minute))
	if !a.LastSeen().Equal(now.Add(time.Minute)) {
		t.Fatal("newer activity was not taken")
	}
	tb.Put(a)
	if acts := tb.TakeActivity(); len(acts) != 0 {
		t.Fatalf("activity read from the store was flushed back: %d", len(acts))
	}
}

func TestHashValueMatchesSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 32, 255, 256, 257, 4096} {
		v := strings.Repeat("a", n)
		if got, want := HashValue(v), sha256.Sum256([]byte(v)); got != want {
			t.Errorf("HashValue of %d bytes differs from sha256", n)
		}
	}
	long := strings.Repeat("s", 200) // a long session id, as some apps issue
	if allocs := testing.AllocsPerRun(100, func() { HashValue(long) }); allocs != 0 {
		t.Errorf("HashValue of a 200-byte value allocates %v times; want 0", allocs)
	}
}

// TestAnonymousCap: a flood of anonymous sessions stays under the cap, the
// newest survive, signed-in sessions are never dropped for it, and the count
// follows removals, replacements and sweeps.
func TestAnonymousCap(t *testing.T) {
	tab := NewTableCap(100)
	base := time.Unix(1_800_000_000, 0)
	key := func(i int) Key {
		var k Key
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		return k
	}
	signedIn := &Session{Key: key(999_999), State: Active, User: "alice", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	tab.Put(signedIn)
	for i := range 1000 {
		tab.Put(&Session{Key: key(i), State: Anonymous, CreatedAt: base.Add(time.Duration(i) * time.Second), ExpiresAt: base.Add(time.Hour)})
		if n := tab.Anonymous(); n > 100 {
			t.Fatalf("after %d anonymous sessions, %d held, want at most 100", i+1, n)
		}
	}
	if tab.Get(key(999)) == nil || tab.Get(key(0)) != nil {
		t.Error("the cap dropped the newest anonymous session, or kept the oldest")
	}
	if tab.Get(signedIn.Key) == nil {
		t.Fatal("the cap dropped a signed-in session")
	}
	n := tab.Anonymous()
	tab.Remove(key(999))
	tab.Replace(tab.Get(key(998)), &Session{Key: key(5000), State: Pending, CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
	if got := tab.Anonymous(); got != n-2 {
		t.Fatalf("after a removal and a replacement by a pending session: %d anonymous, want %d", got, n-2)
	}
	tab.Sweep(base.Add(2*time.Hour), time.Hour, time.Minute)
	if got := tab.Anonymous(); got != 0 || tab.Len() != 0 {
		t.Fatalf("after a sweep past every deadline: %d anonymous, %d sessions", got, tab.Len())
	}
}

// TestTableCounts: the counts by state follow every way a session enters or
// leaves the table.
func TestTableCounts(t *testing.T) {
	tb := NewTableCap(0)
	key := func(b byte) Key { return Key{b} }
	anon := &Session{Key: key(1), State: Anonymous}
	pend := &Session{Key: key(2), State: Pending}
	act := &Session{Key: key(3), State: Active}
	check := func(step string, wa, wp, wact int) {
		t.Helper()
		if a, p, n := tb.Counts(); a != wa || p != wp || n != wact {
			t.Fatalf("%s: anonymous %d, pending %d, active %d; want %d, %d, %d", step, a, p, n, wa, wp, wact)
		}
	}
	check("empty", 0, 0, 0)
	tb.Put(anon)
	tb.Put(pend)
	tb.Put(act)
	check("one each", 1, 1, 1)
	tb.Put(pend) // replaced by itself
	check("pending put again", 1, 1, 1)
	tb.Replace(pend, &Session{Key: key(4), State: Active}) // the challenge passed
	check("pending activated", 1, 0, 2)
	tb.Replace(anon, &Session{Key: key(5), State: Pending}) // signed in
	check("anonymous signed in", 0, 1, 2)
	tb.Remove(key(5))
	tb.Remove(key(3))
	check("removed", 0, 0, 1)
}
