package mfa

import (
	"sync"
	"time"
)

// limiter counts wrong codes per key ("u:" user, "a:" address) in fixed
// windows. It lives in the Service, so neither a reload nor a restarted
// sign-in resets a count.
type limiter struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	len   time.Duration
	n     int
}

func newLimiter() *limiter { return &limiter{m: make(map[string]*window)} }

// retryAfter returns how long key is locked out, or 0.
func (l *limiter) retryAfter(key string, max int, win time.Duration, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil || now.Sub(w.start) >= win || w.n < max {
		return 0
	}
	return w.start.Add(win).Sub(now)
}

// fail counts one wrong code and returns the count in the window.
func (l *limiter) fail(key string, win time.Duration, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil || now.Sub(w.start) >= win {
		w = &window{start: now, len: win}
		l.m[key] = w
	}
	w.n++
	return w.n
}

// reset forgets key (after a right code for a user).
func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

// sweep drops windows that have ended.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.m {
		if now.Sub(w.start) > w.len {
			delete(l.m, k)
		}
	}
}
