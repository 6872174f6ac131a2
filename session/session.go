package session

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// State is where a session stands in the sign-in.
type State uint8

const (
	// Anonymous: the app handed out a session cookie before anyone signed in
	// (a login form's CSRF session). The cookie is bound so that it, and only
	// it, reaches the app from this browser.
	Anonymous State = iota
	// Pending: the app accepted the password; its cookies are held until the
	// second factor is passed.
	Pending
	// Active: signed in; bound app cookies are forwarded.
	Active
)

func (s State) String() string {
	switch s {
	case Anonymous:
		return "anonymous"
	case Pending:
		return "pending"
	case Active:
		return "active"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ID is a session id: 128 random bits.
type ID [idLen]byte

// NewID reads a fresh id from rand.
func NewID(rand io.Reader) (ID, error) {
	var id ID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("session: new id: %w", err)
	}
	return id, nil
}

// Key names a session in memory and at rest: a hash of the id, so neither a
// copy of the database nor a memory dump of the table hands out live sessions.
type Key [32]byte

// Key returns the id's key.
func (id ID) Key() Key { return sha256.Sum256(id[:]) }

// String is the key as stored.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey reads a key written by String.
func ParseKey(s string) (Key, error) {
	var k Key
	if hex.DecodedLen(len(s)) != len(k) {
		return k, fmt.Errorf("session: bad key length %d", len(s))
	}
	_, err := hex.Decode(k[:], []byte(s))
	return k, err
}

// Binding ties one app session cookie (by the hash of its value) to a session.
type Binding struct {
	Name string
	Hash [32]byte
}

// HashValue hashes an app cookie value for a Binding. It runs on every
// request that carries an app cookie, so values up to 256 bytes (nearly all
// session ids) are copied into a stack buffer instead of a new slice.
func HashValue(v string) [32]byte {
	var buf [256]byte
	if len(v) <= len(buf) {
		n := copy(buf[:], v)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(v))
}

// Session is one gateway session as the per-request check sees it. The plain
// fields never change after the session is put in a Table (a change makes a
// new Session); activity, bindings and revocation are atomics so the hot path
// takes no lock beyond the table's read lock.
type Session struct {
	Key        Key
	User       string
	Scope      string // the policy population the session was made for
	Role       string // the role the app reported at sign-in
	State      State
	AAL        uint8
	MustEnrol  bool // blocked from the app until an authenticator is set up
	CreatedAt  time.Time
	AuthAt     time.Time // when the user signed in (password), zero if anonymous
	ExpiresAt  time.Time // absolute end: lifetime for active, deadline for pending
	RemoteAddr string
	UserAgent  string
	Next       string   // where to go after the challenge
	Held       []string // app Set-Cookie lines held while pending

	bindings atomic.Pointer[[]Binding]
	version  atomic.Uint64 // counts changes made under this key; stored with the record
	lastSeen atomic.Int64  // unix nanoseconds
	flushed  atomic.Int64  // lastSeen as last written to the store
	revoked  atomic.Bool
	gate     atomic.Int32  // see decision.go
	epoch    atomic.Uint32 // see Epoch
	conns    conns         // upgraded connections: see Track
	mismatch atomic.Bool   // a foreign app cookie was seen with this session (reported once)

	// seen remembers, for the first bindings, the app cookie value that
	// last matched, so the next request with it compares values instead of
	// hashing (memory only, as the gateway cookie's verify cache).
	seen [seenBindings]atomic.Pointer[seenValue]
}

// seenBindings is how many of a session's bindings remember their value: an
// app has one session cookie, now and then two.
const seenBindings = 2

// seenValue is a value that matched binding i of the bindings at list.
type seenValue struct {
	list  *[]Binding
	value string
}

// FirstMismatch reports whether this is the first time a foreign app cookie
// (one not bound to s) came with s, so it is reported once per session.
func (s *Session) FirstMismatch() bool { return s.mismatch.CompareAndSwap(false, true) }

// Bindings returns the bound app cookies; the slice must not be modified.
func (s *Session) Bindings() []Binding {
	if p := s.bindings.Load(); p != nil {
		return *p
	}
	return nil
}

// Version counts the changes made to the session under its key (bindings,
// a clone in place): of two copies, on two instances sharing a store, the
// one with the higher version is the newer.
func (s *Session) Version() uint64 { return s.version.Load() }

// SetVersion sets the version outright (loading from the store).
func (s *Session) SetVersion(v uint64) { s.version.Store(v) }

// SetBindings replaces the bound cookies (copy-on-write).
func (s *Session) SetBindings(b []Binding) {
	c := append([]Binding(nil), b...)
	s.bindings.Store(&c)
}

// Bound reports whether an app cookie name=value is bound to s.
//
// It runs on every request that carries an app cookie. A value that matched
// binding i (one of the first seenBindings) is remembered with the bindings
// it matched, and the same value on the next request is compared in
// constant time instead of hashed; new bindings forget it.
func (s *Session) Bound(name, value string) bool {
	list := s.bindings.Load()
	if list == nil || len(*list) == 0 {
		return false
	}
	bs := *list
	var h [32]byte
	hashed := false
	for i := range bs {
		if bs[i].Name != name {
			continue
		}
		if i < seenBindings {
			if v := s.seen[i].Load(); v != nil && v.list == list && equalConstantTime(v.value, value) {
				return true
			}
		}
		if !hashed {
			h, hashed = HashValue(value), true
		}
		if subtle.ConstantTimeCompare(bs[i].Hash[:], h[:]) == 1 {
			if i < seenBindings {
				// Cloned: value is usually a slice of the request's whole
				// Cookie header.
				s.seen[i].Store(&seenValue{list: list, value: strings.Clone(value)})
			}
			return true
		}
	}
	return false
}

// equalConstantTime reports whether a == b, taking a time that depends on
// their lengths only.
func equalConstantTime(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := 0; i < len(a); i++ {
		d |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(d, 0) == 1
}

// UpdateBindings applies the app's Set-Cookie changes: set values are bound
// (replacing an earlier value of the same name) and deleted names unbound. It
// reports whether anything changed.
func (s *Session) UpdateBindings(set []Binding, deleted []string) bool {
	old := s.Bindings()
	next := make([]Binding, 0, len(old)+len(set))
	changed := false
	for _, b := range old {
		drop := false
		for _, d := range deleted {
			drop = drop || d == b.Name
		}
		for _, n := range set {
			drop = drop || n.Name == b.Name
		}
		if drop {
			changed = true
			continue
		}
		next = append(next, b)
	}
	for _, n := range set {
		next = append(next, n)
		changed = true
	}
	if changed {
		s.bindings.Store(&next)
		s.version.Add(1)
	}
	return changed
}

// LastSeen is the time of the last request made with the session.
func (s *Session) LastSeen() time.Time { return time.Unix(0, s.lastSeen.Load()) }

// Touch records activity at now. Writes are skipped within a second of the
// last one so busy sessions do not bounce a cache line between cores.
func (s *Session) Touch(now time.Time) {
	n := now.UnixNano()
	if n-s.lastSeen.Load() > int64(time.Second) {
		s.lastSeen.Store(n)
	}
}

// SetLastSeen sets the activity time outright (loading from the store).
func (s *Session) SetLastSeen(t time.Time) {
	s.lastSeen.Store(t.UnixNano())
	s.flushed.Store(t.UnixNano())
}

// SeenElsewhere advances the activity time to t, the last activity another
// instance stored, if that is later; it is not flushed back.
func (s *Session) SeenElsewhere(t time.Time) {
	n := t.UnixNano()
	for {
		cur := s.lastSeen.Load()
		if n <= cur {
			return
		}
		if s.lastSeen.CompareAndSwap(cur, n) {
			s.flushed.CompareAndSwap(cur, n)
			return
		}
	}
}

// Dirty reports whether activity happened since the last flush, and marks it flushed.
func (s *Session) takeDirty() (time.Time, bool) {
	seen := s.lastSeen.Load()
	if s.flushed.Swap(seen) == seen {
		return time.Time{}, false
	}
	return time.Unix(0, seen), true
}

// Revoke ends the session for every later request.
func (s *Session) Revoke() {
	s.revoked.Store(true)
	s.closeConns()
}

// Revoked reports whether Revoke was called.
func (s *Session) Revoked() bool { return s.revoked.Load() }

// Reason says why a session no longer counts.
type Reason uint8

const (
	Valid Reason = iota
	IdleExpired
	LifetimeExpired
	Revoked
)

func (r Reason) String() string {
	return [...]string{"valid", "idle timeout", "lifetime", "revoked"}[r]
}

// Check tells whether s is still good at now for an idle timeout.
func (s *Session) Check(now time.Time, idle time.Duration) Reason {
	switch {
	case s.revoked.Load():
		return Revoked
	case !s.ExpiresAt.IsZero() && now.After(s.ExpiresAt):
		return LifetimeExpired
	case idle > 0 && now.UnixNano()-s.lastSeen.Load() > int64(idle):
		return IdleExpired
	}
	return Valid
}

// Clone returns a copy of s under a new key, for a change of state or AAL: the
// id is rotated whenever the session's privilege changes.
func (s *Session) Clone(k Key) *Session {
	c := &Session{
		Key: k, User: s.User, Scope: s.Scope, Role: s.Role, State: s.State, AAL: s.AAL, MustEnrol: s.MustEnrol,
		CreatedAt: s.CreatedAt, AuthAt: s.AuthAt, ExpiresAt: s.ExpiresAt,
		RemoteAddr: s.RemoteAddr, UserAgent: s.UserAgent, Next: s.Next,
		Held: append([]string(nil), s.Held...),
	}
	c.SetBindings(s.Bindings())
	c.lastSeen.Store(s.lastSeen.Load())
	c.version.Store(s.version.Load() + 1) // newer than s, should it keep the key
	return c
}

// Table is the in-memory view of every live session. Safe for concurrent use.
//
// Pre-sign-in (anonymous) sessions cost nothing but memory, and anyone can
// make them at any rate, so their number is capped: past MaxAnonymous the
// oldest tenth of them are dropped (their browsers simply start a new one).
type Table struct {
	mu      sync.RWMutex
	m       map[Key]*Session
	anon    int // anonymous sessions in m
	pending int // pending sessions in m
	maxAnon int
	// gone and goneOld hold the keys of stored sessions removed lately (this
	// and the previous Age): Revive never brings them back while their
	// deletion may still be on its way to a shared store.
	gone, goneOld map[Key]struct{}
}

// MaxAnonymous is the default cap on anonymous sessions: about 25 MB.
const MaxAnonymous = 50_000

// NewTable returns an empty table with the default cap on anonymous sessions.
func NewTable() *Table { return NewTableCap(MaxAnonymous) }

// NewTableCap returns an empty table holding at most maxAnon anonymous
// sessions (0: no cap).
func NewTableCap(maxAnon int) *Table {
	return &Table{m: make(map[Key]*Session), maxAnon: maxAnon}
}

// Get returns the session with key k, or nil.
func (t *Table) Get(k Key) *Session {
	t.mu.RLock()
	s := t.m[k]
	t.mu.RUnlock()
	return s
}

// Put adds or replaces s.
func (t *Table) Put(s *Session) {
	t.mu.Lock()
	t.putLocked(s)
	t.mu.Unlock()
}

// Replace swaps old for s atomically: old is revoked and removed.
func (t *Table) Replace(old, s *Session) {
	t.mu.Lock()
	if old != nil {
		old.Revoke()
		t.deleteLocked(old.Key)
		t.markGoneLocked(old)
	}
	t.putLocked(s)
	t.mu.Unlock()
}

// Remove revokes and removes the session with key k, returning it (or nil).
func (t *Table) Remove(k Key) *Session {
	t.mu.Lock()
	s := t.deleteLocked(k)
	t.markGoneLocked(s)
	t.mu.Unlock()
	if s != nil {
		s.Revoke()
	}
	return s
}

// markGoneLocked remembers that s, a stored session, was removed.
func (t *Table) markGoneLocked(s *Session) {
	if s != nil && s.State != Anonymous {
		t.goneKeyLocked(s.Key)
	}
}

func (t *Table) goneKeyLocked(k Key) {
	if t.gone == nil {
		t.gone = map[Key]struct{}{}
	}
	t.gone[k] = struct{}{}
}

func (t *Table) goneLocked(k Key) bool {
	_, g1 := t.gone[k]
	_, g2 := t.goneOld[k]
	return g1 || g2
}

// Revive adds s, a session read from a store other instances share, unless
// this table holds one under its key or removed one lately. It reports
// whether s was added.
func (t *Table) Revive(s *Session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.goneLocked(s.Key) || t.m[s.Key] != nil {
		return false
	}
	t.putLocked(s)
	return true
}

// Refresh puts fresh, a newer copy read from a store other instances share,
// in place of held, unless held was replaced here meanwhile or is as new.
// Requests already holding held finish with it; it is not revoked.
func (t *Table) Refresh(held, fresh *Session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if held.Key != fresh.Key || t.m[held.Key] != held || fresh.Version() <= held.Version() {
		return false
	}
	t.putLocked(fresh)
	fresh.adoptConns(held)
	return true
}

// Gone reports whether a stored session under k was removed lately, or
// looked for and not found (MarkGone).
func (t *Table) Gone(k Key) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.goneLocked(k)
}

// MarkGone remembers that no stored session under k is to be had, until the
// second Age from now.
func (t *Table) MarkGone(k Key) {
	t.mu.Lock()
	t.goneKeyLocked(k)
	t.mu.Unlock()
}

// Age forgets the removals older than the previous call: a removed key is
// kept from Revive for one to two calls.
func (t *Table) Age() {
	t.mu.Lock()
	t.goneOld, t.gone = t.gone, nil
	t.mu.Unlock()
}

func (t *Table) putLocked(s *Session) {
	t.deleteLocked(s.Key)
	t.m[s.Key] = s
	if s.State == Pending {
		t.pending++
	}
	if s.State != Anonymous {
		return
	}
	t.anon++
	if t.maxAnon > 0 && t.anon > t.maxAnon {
		t.evictAnonLocked()
	}
}

func (t *Table) deleteLocked(k Key) *Session {
	s := t.m[k]
	if s != nil {
		delete(t.m, k)
		switch s.State {
		case Anonymous:
			t.anon--
		case Pending:
			t.pending--
		}
	}
	return s
}

// evictAnonLocked drops the oldest anonymous sessions down to 90% of the
// cap: one sort per tenth of the cap, not one per new session.
func (t *Table) evictAnonLocked() {
	anon := make([]*Session, 0, t.anon)
	for _, s := range t.m {
		if s.State == Anonymous {
			anon = append(anon, s)
		}
	}
	sort.Slice(anon, func(i, j int) bool { return anon[i].CreatedAt.Before(anon[j].CreatedAt) })
	for _, s := range anon[:len(anon)-t.maxAnon*9/10] {
		t.deleteLocked(s.Key)
		s.Revoke()
	}
}

// Anonymous is the number of anonymous sessions held.
func (t *Table) Anonymous() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.anon
}

// Counts is the number of sessions held in each state. (A session's state
// never changes in the table: a new state is a new session.)
func (t *Table) Counts() (anonymous, pending, active int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.anon, t.pending, len(t.m) - t.anon - t.pending
}

// Len is the number of sessions.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// Snapshot returns the sessions for which keep is true.
func (t *Table) Snapshot(keep func(*Session) bool) []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*Session
	for _, s := range t.m {
		if keep == nil || keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// Activity is a session's last-seen time to write to the store.
type Activity struct {
	Session  *Session
	LastSeen time.Time
}

// TakeActivity returns the sessions seen since the last call, for a batched
// flush; anonymous sessions live in memory only and are skipped.
func (t *Table) TakeActivity() []Activity {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Activity
	for _, s := range t.m {
		if s.State == Anonymous {
			continue
		}
		if seen, ok := s.takeDirty(); ok {
			out = append(out, Activity{s, seen})
		}
	}
	return out
}

// Sweep removes sessions that are no longer valid at now and returns them.
// anonIdle bounds anonymous sessions, which live in memory only.
func (t *Table) Sweep(now time.Time, idle, anonIdle time.Duration) []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []*Session
	for k, s := range t.m {
		limit := idle
		if s.State == Anonymous {
			limit = anonIdle
		}
		if s.Check(now, limit) != Valid {
			t.deleteLocked(k)
			t.markGoneLocked(s)
			s.closeConns() // an upgraded connection does not outlive its session
			gone = append(gone, s)
		}
	}
	return gone
}
