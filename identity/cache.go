package identity

import (
	"crypto/subtle"
	"hash/maphash"
	"strings"
	"sync"
)

// cache is a bounded map from token to a value, sharded to spread lock
// contention, with random eviction.
//
// Keys are a keyed 64-bit maphash of the token (about 20 ns, against about
// 250 ns for SHA-256 on this hardware). A 64-bit hash may collide, and
// collisions must never let one token pass for another, so each entry keeps
// the token itself and a hit compares it with the presented token in
// constant time (crypto/subtle; the compiler converts the strings without
// copying). The seed is random per cache, so nobody can aim for collisions
// offline.
//
// Memory is bounded twice: by entries and by bytes (token, subject and a
// per-entry overhead), since the token length is chosen by whoever mints
// the tokens.
//
// Eviction when a shard is full deletes the entry where Go's randomised map
// iteration starts: a random entry, at O(1) cost, with no bookkeeping on the
// hit path (an LRU would need a write on every hit).
type cache[V any] struct {
	seed     maphash.Seed
	shards   []cacheShard[V]
	mask     uint64
	maxItems int // per shard
	maxBytes int // per shard
}

type cacheShard[V any] struct {
	mu    sync.RWMutex
	m     map[uint64]cacheEntry[V]
	bytes int
	_     [40]byte // keep neighbouring shards' locks off one cache line
}

type cacheEntry[V any] struct {
	token string
	size  int
	val   V
}

// entryOverhead approximates the map slot, string headers and value of an
// entry, for the byte bound.
const entryOverhead = 64

// newCache returns a cache for up to items entries and maxBytes bytes, or
// nil when items <= 0 (caching off).
func newCache[V any](items, maxBytes int) *cache[V] {
	if items <= 0 {
		return nil
	}
	// About 16 entries per shard at least, at most 64 shards: enough to
	// spread the locks of a many-core machine, few enough that a small
	// cache is not rounded up to many times its size.
	n := 1
	for n < 64 && n*16 < items {
		n *= 2
	}
	c := &cache[V]{
		seed:     maphash.MakeSeed(),
		shards:   make([]cacheShard[V], n),
		mask:     uint64(n - 1),
		maxItems: max(1, (items+n-1)/n),
		maxBytes: max(1, maxBytes/n),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry[V])
	}
	return c
}

func (c *cache[V]) hash(token string) uint64 { return maphash.String(c.seed, token) }

// get returns the value stored for token, whose hash is h.
func (c *cache[V]) get(h uint64, token string) (V, bool) {
	s := &c.shards[h&c.mask]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(e.token), []byte(token)) != 1 {
		var zero V
		return zero, false
	}
	return e.val, true
}

// put stores val for token, whose hash is h; extra is the size of any
// strings val holds. A colliding entry for another token is replaced.
func (c *cache[V]) put(h uint64, token string, val V, extra int) {
	size := len(token) + extra + entryOverhead
	if size > c.maxBytes {
		return // would evict everything for one entry
	}
	s := &c.shards[h&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[h]; ok {
		s.bytes -= old.size
		delete(s.m, h)
	}
	for len(s.m) > 0 && (len(s.m) >= c.maxItems || s.bytes+size > c.maxBytes) {
		for k, e := range s.m {
			s.bytes -= e.size
			delete(s.m, k)
			break
		}
	}
	// Clone: the caller's token may share memory with a larger buffer (a
	// header line, a request body) that the cache must not keep alive.
	s.m[h] = cacheEntry[V]{token: strings.Clone(token), size: size, val: val}
	s.bytes += size
}

// remove deletes token's entry, if it is the one stored under h.
func (c *cache[V]) remove(h uint64, token string) {
	s := &c.shards[h&c.mask]
	s.mu.Lock()
	if e, ok := s.m[h]; ok && subtle.ConstantTimeCompare([]byte(e.token), []byte(token)) == 1 {
		s.bytes -= e.size
		delete(s.m, h)
	}
	s.mu.Unlock()
}

// len is the number of entries (for tests).
func (c *cache[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
