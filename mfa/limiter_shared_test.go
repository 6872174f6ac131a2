package mfa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/faultstore"
)

// TestSharedLimiter: two instances' limiters on one store meet one count;
// a reset on one holds on the other; ended windows are pruned from their
// bucket at the next write; no key is stored in clear; a store that fails
// leaves this instance's own counts in force.
func TestSharedLimiter(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	newL := func(s storage.Store) *sharedLimiter {
		return &sharedLimiter{store: s, local: newLimiter(), logger: zap.NewNop()}
	}
	a, b := newL(st), newL(st)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	const key, win = "u:totp:alice", 15 * time.Minute

	steps := []struct {
		on   *sharedLimiter
		do   string
		want int // fail: the count; check: minutes to wait (0: none)
	}{
		{a, "fail", 1},
		{b, "fail", 2},
		{a, "check", 0},
		{b, "fail", 3},
		{a, "check", 15},
		{b, "check", 15},
		{a, "reset", 0},
		{b, "check", 0},
		{b, "fail", 1},
	}
	for i, s := range steps {
		switch s.do {
		case "fail":
			if n := s.on.fail(key, win, now); n != s.want {
				t.Fatalf("step %d: count %d, want %d", i, n, s.want)
			}
		case "check":
			if d := s.on.retryAfter(key, 3, win, now); d != time.Duration(s.want)*time.Minute {
				t.Fatalf("step %d: retry after %v, want %d minutes", i, d, s.want)
			}
		case "reset":
			s.on.reset(key)
		}
	}

	// Another key in the same bucket, a window later: the ended window goes.
	setting, id := limitSlot(key)
	other := ""
	for i := 0; other == ""; i++ {
		k := fmt.Sprintf("a:192.0.2.%d", i)
		if s, _ := limitSlot(k); s == setting && k != key {
			other = k
		}
	}
	a.fail(other, win, now.Add(win+time.Second))
	var m map[string]sharedWindow
	if err := st.View(context.Background(), func(tx storage.Tx) error {
		raw, err := tx.Setting(setting)
		if err != nil {
			return err
		}
		if bytes.Contains(raw, []byte("alice")) || bytes.Contains(raw, []byte("192.0.2")) {
			t.Errorf("a key is stored in clear: %s", raw)
		}
		return json.Unmarshal(raw, &m)
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m[id]; ok || len(m) != 1 {
		t.Fatalf("bucket after the window: %v, want only the new key's window", m)
	}

	// A store that refuses: this instance's own count still locks.
	fs := faultstore.New(st)
	c := newL(fs)
	fs.Set(faultstore.FailReads | faultstore.FailWrites)
	for range 3 {
		c.fail("u:totp:bob", win, now)
	}
	if d := c.retryAfter("u:totp:bob", 3, win, now); d <= 0 {
		t.Fatal("with the store down, three failures did not lock")
	}
}
