package mfa

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
)

// attemptCounter counts attempts per key ("u:" user, "a:" address, sends)
// in fixed windows: the in-memory limiter on a store of one's own, the
// sharedLimiter on a store several instances use.
type attemptCounter interface {
	retryAfter(key string, max int, win time.Duration, now time.Time) time.Duration
	fail(key string, win time.Duration, now time.Time) int
	reset(key string)
	sweep(now time.Time)
}

// sharedLimiter keeps the attempt windows in a store several instances
// share, so that n instances allow what one does: a guesser spreading tries
// over instances meets one count. Keys are hashed (no user name or address
// is written) into a fixed number of settings, each holding its keys'
// windows and pruned of ended ones at every write, so the store holds at
// most limitBuckets small records however many addresses try. While the
// store does not answer, this instance's own counts stand in.
type sharedLimiter struct {
	store  storage.Store
	local  *limiter
	logger *zap.Logger
}

const (
	limitBuckets = 1024
	limitTimeout = 2 * time.Second
)

// sharedWindow is one key's window as stored: start and length in unix
// nanoseconds, and the count.
type sharedWindow struct {
	Start int64 `json:"s"`
	Len   int64 `json:"l"`
	N     int   `json:"n"`
}

func (w sharedWindow) ended(now time.Time) bool { return now.UnixNano()-w.Start >= w.Len }

// limitSlot names key's setting and its entry there.
func limitSlot(key string) (setting, id string) {
	h := sha256.Sum256([]byte(key))
	return fmt.Sprintf("limits/%03x", binary.BigEndian.Uint16(h[:2])%limitBuckets), hex.EncodeToString(h[2:14])
}

func readWindows(tx storage.Tx, setting string) (map[string]sharedWindow, error) {
	raw, err := tx.Setting(setting)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(raw) == 0) {
		return map[string]sharedWindow{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]sharedWindow{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("attempt windows %s: %w", setting, err)
	}
	return m, nil
}

func (l *sharedLimiter) retryAfter(key string, max int, win time.Duration, now time.Time) time.Duration {
	setting, id := limitSlot(key)
	var w sharedWindow
	err := l.view(func(tx storage.Tx) error {
		m, err := readWindows(tx, setting)
		w = m[id]
		return err
	})
	if err != nil {
		l.logger.Error("read attempt counts from the shared store; this instance's own counts apply", zap.Error(err))
		return l.local.retryAfter(key, max, win, now)
	}
	if w.N < max || w.ended(now) {
		return 0
	}
	return time.Unix(0, w.Start+w.Len).Sub(now)
}

func (l *sharedLimiter) fail(key string, win time.Duration, now time.Time) int {
	setting, id := limitSlot(key)
	var n int
	err := l.update(setting, now, func(m map[string]sharedWindow) bool {
		w, ok := m[id]
		if !ok || w.ended(now) {
			w = sharedWindow{Start: now.UnixNano(), Len: int64(win)}
		}
		w.N++
		m[id], n = w, w.N
		return true
	})
	if err != nil {
		l.logger.Error("count an attempt in the shared store; this instance's own counts apply", zap.Error(err))
		return l.local.fail(key, win, now)
	}
	return n
}

func (l *sharedLimiter) reset(key string) {
	setting, id := limitSlot(key)
	err := l.update(setting, time.Time{}, func(m map[string]sharedWindow) bool {
		_, ok := m[id]
		delete(m, id)
		return ok
	})
	if err != nil {
		l.logger.Error("reset attempt counts in the shared store", zap.Error(err))
	}
	l.local.reset(key)
}

func (l *sharedLimiter) sweep(now time.Time) { l.local.sweep(now) }

func (l *sharedLimiter) view(fn func(storage.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	return l.store.View(ctx, fn)
}

// update changes setting's windows with change, which reports whether it
// changed anything; ended windows are dropped on the way (unless now is
// zero), so a bucket never outgrows the windows still running.
func (l *sharedLimiter) update(setting string, now time.Time, change func(map[string]sharedWindow) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	return l.store.Update(ctx, func(tx storage.Tx) error {
		m, err := readWindows(tx, setting)
		if err != nil {
			return err
		}
		n := len(m)
		if !now.IsZero() {
			for id, w := range m {
				if w.ended(now) {
					delete(m, id)
				}
			}
		}
		if !change(m) && len(m) == n {
			return nil
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.PutSetting(setting, raw)
	})
}
