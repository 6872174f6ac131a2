package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// countingStore counts write transactions.
type countingStore struct {
	storage.Store
	writes atomic.Int64
}

func (c *countingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	c.writes.Add(1)
	return c.Store.Update(ctx, fn)
}

func (c *countingStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	c.writes.Add(1)
	return c.Store.Batch(ctx, fn)
}

type env struct {
	store *countingStore
	box   *seal.Box
	clk   *clock
	logs  *observer.ObservedLogs
	log   *zap.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	box, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	return &env{store: &countingStore{Store: db}, box: box, clk: newClock(t0), logs: logs, log: zap.New(core)}
}

func (e *env) open(t *testing.T) *Service {
	t.Helper()
	s, err := OpenService(ServiceOptions{
		Store: e.store, Box: e.box, Now: e.clk.Now, Rand: rand.Reader,
		FlushInterval: -1, Logger: e.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tokenFor mints a token for user with secret, valid for an hour from now.
func (e *env) tokenFor(t *testing.T, secret, user string) string {
	return mint(t, []byte(secret), map[string]any{"sub": user, "exp": e.clk.Now().Add(time.Hour).Unix()})
}

func (e *env) expired(t *testing.T, secret, user string) string {
	return mint(t, []byte(secret), map[string]any{"sub": user, "exp": e.clk.Now().Add(-time.Hour).Unix()})
}

func TestServiceFresh(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	st := s.Status()
	if st.Mode != Off || st.HasSecret || !st.SecretCreated.IsZero() || !st.PrevUntil.IsZero() || st.EnforceAllowed {
		t.Fatalf("fresh status %+v", st)
	}
	if !strings.HasPrefix(st.WidgetKey, WidgetKeyPrefix) || len(st.WidgetKey) != len(WidgetKeyPrefix)+24 {
		t.Fatalf("widget key %q", st.WidgetKey)
	}
	for _, m := range []Mode{Monitor, Enforce} {
		if err := s.SetMode(context.Background(), m); !errors.Is(err, ErrNoSecret) {
			t.Fatalf("SetMode(%s) without secret: %v", m, err)
		}
	}
	if err := s.SetMode(context.Background(), Off); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMode(context.Background(), "bogus"); err == nil {
		t.Fatal("bogus mode accepted")
	}
	// Off: nothing checked or counted.
	for _, tc := range []struct {
		token, user string
		want        Verdict
	}{
		{"", "", Anonymous},
		{"garbage", "", Anonymous},
		{"", "u1", Unverified},
		{"garbage", "u1", Unverified},
	} {
		v, c, m := s.Check(tc.token, tc.user)
		if v != tc.want || c != "" || m != Off {
			t.Fatalf("Off Check(%q, %q) = %v %q %v", tc.token, tc.user, v, c, m)
		}
	}
	if sum := s.Status().Health; sum.State != StateNone {
		t.Fatalf("Off counted: %+v", sum)
	}
	// The widget key is created once.
	s2 := e.open(t)
	if got := s2.Status().WidgetKey; got != st.WidgetKey {
		t.Fatalf("widget key changed: %q → %q", st.WidgetKey, got)
	}
}

func TestServiceGenerateStartsMonitor(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	secret, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) != len(SecretPrefix)+43 {
		t.Fatalf("secret shape %q", secret[:len(SecretPrefix)])
	}
	st := s.Status()
	if st.Mode != Monitor || s.Mode() != Monitor || !st.HasSecret || !st.SecretCreated.Equal(t0) || !st.PrevUntil.IsZero() {
		t.Fatalf("status after generate %+v", st)
	}
	// Monitor: verdicts are real, everything is counted, the mode says pass.
	for _, tc := range []struct {
		token, user string
		want        Verdict
		cause       Cause
	}{
		{e.tokenFor(t, secret, "u1"), "u1", Verified, ""},
		{e.tokenFor(t, secret, "u1"), "u2", Unverified, CauseUserMismatch},
		{"", "u1", Unverified, CauseMissingToken},
		{e.tokenFor(t, string(secretA), "u1"), "u1", Unverified, CauseSignatureMismatch},
		{"", "", Anonymous, ""},
	} {
		v, c, m := s.Check(tc.token, tc.user)
		if v != tc.want || c != tc.cause || m != Monitor {
			t.Fatalf("Check(…, %q) = %v %q %v, want %v %q", tc.user, v, c, m, tc.want, tc.cause)
		}
	}
	if sum := s.Status().Health; sum.Verified != 1 || sum.FailureTotal != 3 || sum.State != StateFailing {
		t.Fatalf("health %+v", sum)
	}
	// Generating from Enforce also lands in Monitor.
	e.clk.Advance(25 * time.Hour)
	s.Check(e.tokenFor(t, secret, "u1"), "u1")
	if err := s.SetMode(ctx, Enforce); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GenerateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Mode() != Monitor {
		t.Fatalf("mode after generating in enforce: %s", s.Mode())
	}
}

func TestServiceEnforceGate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	secret, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(step, wantReason string) {
		t.Helper()
		err := s.SetMode(ctx, Enforce)
		var ge *GateError
		if !errors.Is(err, ErrEnforceGate) || !errors.As(err, &ge) {
			t.Fatalf("%s: SetMode(enforce) = %v, want the gate", step, err)
		}
		if ge.Reason != wantReason || !strings.Contains(err.Error(), wantReason) {
			t.Fatalf("%s: reason %q, want %q", step, ge.Reason, wantReason)
		}
		st := s.Status()
		if st.EnforceAllowed || st.EnforceReason != wantReason || st.Mode != Monitor {
			t.Fatalf("%s: status %+v", step, st)
		}
	}
	refused("no traffic", "no verified request in the last 24 hours")

	s.Check(e.expired(t, secret, "u1"), "u1")
	refused("one failure", "no verified request in the last 24 hours, and 1 failure recorded in the last 24 hours, most common: expired token")

	s.Check(e.tokenFor(t, secret, "u1"), "u1")
	s.Check(e.expired(t, secret, "u2"), "u2")
	s.Check("", "u3")
	refused("failures and verified", "3 failures recorded in the last 24 hours, most common: expired token")

	e.clk.Advance(25 * time.Hour)
	refused("a day later, no traffic", "no verified request in the last 24 hours")

	tok := e.tokenFor(t, secret, "u1")
	s.Check(tok, "u1")
	if st := s.Status(); !st.EnforceAllowed || st.EnforceReason != "" || st.Health.State != StateHealthy {
		t.Fatalf("status before enforce %+v", st)
	}
	if err := s.SetMode(ctx, Enforce); err != nil {
		t.Fatalf("gate should open: %v", err)
	}
	if err := s.SetMode(ctx, Enforce); err != nil {
		t.Fatalf("enforce again: %v", err)
	}
	if v, c, m := s.Check(tok, "u1"); v != Verified || c != "" || m != Enforce {
		t.Fatalf("enforce, valid: %v %q %v", v, c, m)
	}
	if v, c, m := s.Check("", "u1"); v != Unverified || c != CauseMissingToken || m != Enforce {
		t.Fatalf("enforce, missing: %v %q %v", v, c, m)
	}
	// Off and Monitor are always allowed, whatever the health.
	for _, m := range []Mode{Monitor, Off, Monitor} {
		if err := s.SetMode(ctx, m); err != nil {
			t.Fatalf("SetMode(%s): %v", m, err)
		}
	}
}

func TestServicePersistence(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	secret, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.tokenFor(t, secret, "u1")
	for range 5 {
		s.Check(tok, "u1")
	}
	if err := s.SetMode(ctx, Enforce); err != nil {
		t.Fatal(err)
	}
	s.Check(e.expired(t, secret, "u1"), "u1")
	before := s.Status()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	e.clk.Advance(time.Minute)
	s2 := e.open(t)
	after := s2.Status()
	if after.Mode != Enforce || !after.HasSecret || after.WidgetKey != before.WidgetKey || !after.SecretCreated.Equal(before.SecretCreated) {
		t.Fatalf("state lost: before %+v\nafter %+v", before, after)
	}
	if after.Health.Verified != 5 || after.Health.Failures[CauseExpiredToken] != 1 || !after.Health.LastVerified.Equal(before.Health.LastVerified) {
		t.Fatalf("health lost: before %+v\nafter %+v", before.Health, after.Health)
	}
	if v, _, m := s2.Check(tok, "u1"); v != Verified || m != Enforce {
		t.Fatalf("secret lost: %v %v", v, m)
	}
	// The secret is sealed at rest.
	var raw []byte
	if err := e.store.View(ctx, func(tx storage.Tx) error {
		var err error
		raw, err = tx.Setting(SettingState)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(secret[len(SecretPrefix):])) {
		t.Fatal("secret stored in clear")
	}
}

func TestServiceRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	first, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Long-lived tokens, so that only the secret decides.
	long := func(secret string) string {
		return mint(t, []byte(secret), map[string]any{"sub": "u1", "exp": t0.Add(72 * time.Hour).Unix()})
	}
	oldTok := long(first)
	if v, _, _ := s.Check(oldTok, "u1"); v != Verified {
		t.Fatal("first secret")
	}
	e.clk.Advance(time.Minute)
	second, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatal("same secret twice")
	}
	wantUntil := t0.Add(time.Minute + DefaultOverlap)
	if st := s.Status(); !st.PrevUntil.Equal(wantUntil) || st.Mode != Monitor {
		t.Fatalf("status %+v", st)
	}
	newTok := long(second)
	check := func(step, tok string, want Verdict, wantC Cause) {
		t.Helper()
		if v, c, _ := s.Check(tok, "u1"); v != want || c != wantC {
			t.Fatalf("%s: %v %q, want %v %q", step, v, c, want, wantC)
		}
	}
	check("old inside the overlap", oldTok, Verified, "")
	check("new", newTok, Verified, "")

	// The overlap survives a restart.
	s.Close()
	s = e.open(t)
	if st := s.Status(); !st.PrevUntil.Equal(wantUntil) {
		t.Fatalf("PrevUntil after reopen %v", st.PrevUntil)
	}
	check("old inside the overlap, reopened", oldTok, Verified, "")

	e.clk.Set(wantUntil)
	check("old after the overlap", oldTok, Unverified, CauseSignatureMismatch)
	check("new after the overlap", newTok, Verified, "")
	if st := s.Status(); !st.PrevUntil.IsZero() {
		t.Fatalf("PrevUntil after the window %v", st.PrevUntil)
	}
}

func TestServiceRotationTwiceAndRetire(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	first, _ := s.GenerateSecret(ctx)
	second, _ := s.GenerateSecret(ctx)
	third, err := s.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secret string
		want   Verdict
	}{{first, Unverified}, {second, Verified}, {third, Verified}} {
		if v, _, _ := s.Check(e.tokenFor(t, tc.secret, "u1"), "u1"); v != tc.want {
			t.Fatalf("secret %q: %v, want %v", tc.secret[:12], v, tc.want)
		}
	}
	if err := s.RetirePrevious(ctx); err != nil {
		t.Fatal(err)
	}
	if v, c, _ := s.Check(e.tokenFor(t, second, "u1"), "u1"); v != Unverified || c != CauseSignatureMismatch {
		t.Fatalf("retired secret: %v %q", v, c)
	}
	if st := s.Status(); !st.PrevUntil.IsZero() {
		t.Fatalf("PrevUntil %v after retire", st.PrevUntil)
	}
	if err := s.RetirePrevious(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServiceNoOverlap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, err := OpenService(ServiceOptions{Store: e.store, Box: e.box, Now: e.clk.Now, FlushInterval: -1, Overlap: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := s.GenerateSecret(ctx)
	if _, err := s.GenerateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Check(e.tokenFor(t, first, "u1"), "u1"); v != Unverified {
		t.Fatal("old secret accepted without overlap")
	}
}

func TestServiceSecretNeverShown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	var secrets []string
	for range 2 {
		secret, err := s.GenerateSecret(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
	}
	tok := e.tokenFor(t, secrets[1], "u1")
	s.Check(tok, "u1")
	s.Check(tok, "u2")
	s.Check(e.expired(t, secrets[1], "u1"), "u1")
	gateErr := s.SetMode(ctx, Enforce)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(s.Status())
	var texts []string
	texts = append(texts, string(status), fmt.Sprint(gateErr), fmt.Sprintf("%v %+v %#v", s, s, s), fmt.Sprintf("%+v", s.Status()))
	for _, entry := range e.logs.All() {
		texts = append(texts, entry.Message, fmt.Sprint(entry.ContextMap()))
	}
	if len(e.logs.All()) == 0 {
		t.Fatal("no logs captured")
	}
	for _, text := range texts {
		for _, secret := range secrets {
			if strings.Contains(text, secret) || strings.Contains(text, secret[len(SecretPrefix):]) {
				t.Fatalf("secret shown in %q", text)
			}
		}
		if strings.Contains(text, tok) {
			t.Fatalf("token shown in %q", text)
		}
	}
}

func TestServiceUndecryptableSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	if _, err := s.GenerateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	other, _ := seal.New(bytes.Repeat([]byte{9}, seal.KeySize), nil)
	s2, err := OpenService(ServiceOptions{Store: e.store, Box: other, Now: e.clk.Now, FlushInterval: -1, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	st := s2.Status()
	if st.Mode != Monitor || st.HasSecret || st.Problem == "" || st.EnforceAllowed {
		t.Fatalf("status %+v", st)
	}
	if v, c, _ := s2.Check("anything", "u1"); v != Unverified || c != CauseSignatureMismatch {
		t.Fatalf("fail closed: %v %q", v, c)
	}
	if e.logs.FilterMessageSnippet("cannot be decrypted").Len() == 0 {
		t.Fatal("not logged")
	}
	if err := s2.SetMode(ctx, Enforce); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("enforce without a usable secret: %v", err)
	}
	secret, err := s2.GenerateSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := s2.Status(); st.Problem != "" || !st.HasSecret || !st.PrevUntil.IsZero() {
		t.Fatalf("after repair %+v", st)
	}
	if v, _, _ := s2.Check(e.tokenFor(t, secret, "u1"), "u1"); v != Verified {
		t.Fatal("repaired secret does not verify")
	}
}

func TestServiceCorruptState(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{`{`, `{"v":1,"mode":"sometimes"}`, `{"v":99,"mode":"off"}`} {
		e := newEnv(t)
		if err := e.store.Update(ctx, func(tx storage.Tx) error { return tx.PutSetting(SettingState, []byte(raw)) }); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenService(ServiceOptions{Store: e.store, Box: e.box, FlushInterval: -1}); err == nil {
			t.Fatalf("OpenService accepted state %s", raw)
		}
	}
	// Corrupt health is only a warning.
	e := newEnv(t)
	if err := e.store.Update(ctx, func(tx storage.Tx) error { return tx.PutSetting(SettingHealth, []byte(`garbage`)) }); err != nil {
		t.Fatal(err)
	}
	s := e.open(t)
	s.SetMode(ctx, Off)
	if e.logs.FilterMessageSnippet("unreadable").Len() != 1 {
		t.Fatal("corrupt health not logged")
	}
	if _, err := OpenService(ServiceOptions{}); err == nil {
		t.Fatal("OpenService without a store")
	}
}

func TestServiceFlushBatches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	secret, _ := s.GenerateSecret(ctx)
	tok := e.tokenFor(t, secret, "u1")
	writes := e.store.writes.Load()
	for range 1000 {
		s.Check(tok, "u1")
		s.Check("", "u1")
	}
	if n := e.store.writes.Load() - writes; n != 0 {
		t.Fatalf("%d store writes while checking", n)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.store.writes.Load() - writes; n != 1 {
		t.Fatalf("%d writes for one flush", n)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.store.writes.Load() - writes; n != 1 {
		t.Fatalf("an idle flush wrote (%d writes)", n)
	}
	if sum := s.Status().Health; sum.Verified != 1000 || sum.FailureTotal != 1000 {
		t.Fatalf("after flush %+v", sum)
	}
	warn := e.logs.FilterMessageSnippet("failures since the last flush").All()
	if len(warn) != 1 || warn[0].ContextMap()["missing_token"] != uint64(1000) {
		t.Fatalf("failure log %+v", warn)
	}
}

// A reload opens the new instance before the old one is closed; counts of
// both must reach the store, and so must counts of several instances.
func TestServiceOverlappingInstances(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.open(t)
	secret, _ := a.GenerateSecret(ctx)
	tok := e.tokenFor(t, secret, "u1")
	countChecks := func(s *Service, n int) {
		for range n {
			s.Check(tok, "u1")
		}
	}
	countChecks(a, 3)
	b := e.open(t) // the new config: sees nothing flushed yet
	countChecks(a, 2)
	if err := a.Close(); err != nil { // the old config goes away
		t.Fatal(err)
	}
	countChecks(b, 1)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Status().Health.Verified; got != 6 {
		t.Fatalf("instance b sees %d verified, want 6", got)
	}
	c := e.open(t)
	if got := c.Status().Health.Verified; got != 6 {
		t.Fatalf("reopened: %d verified, want 6", got)
	}
	// An idle instance picks up others' counts on its next flush.
	countChecks(b, 4)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.Status().Health.Verified; got != 10 {
		t.Fatalf("idle instance sees %d verified, want 10", got)
	}
	// And picks up a mode change made elsewhere.
	if err := b.SetMode(ctx, Enforce); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Mode() != Enforce {
		t.Fatalf("refresh: mode %s", c.Mode())
	}
	if v, _, m := c.Check(tok, "u1"); v != Verified || m != Enforce {
		t.Fatalf("after refresh: %v %v", v, m)
	}
}

func TestServiceFlushLoop(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, err := OpenService(ServiceOptions{Store: e.store, Box: e.box, Now: e.clk.Now, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secret, _ := s.GenerateSecret(ctx)
	s.Check(e.tokenFor(t, secret, "u1"), "u1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var raw []byte
		_ = e.store.View(ctx, func(tx storage.Tx) error {
			raw, _ = tx.Setting(SettingHealth)
			return nil
		})
		if bytes.Contains(raw, []byte(`"verified":1`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not flushed: %s", raw)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Checks, changes and flushes at once (run with -race).
func TestServiceConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	secret, _ := s.GenerateSecret(ctx)
	tok := e.tokenFor(t, secret, "u1")
	done := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				v, c, m := s.Check(tok, "u1")
				if v == Anonymous || (v == Unverified) != (c != "" || m == Off) {
					errs <- fmt.Errorf("worker %d: %v %q", w, v, c)
					return
				}
				s.Check("", fmt.Sprint("u", i%7))
			}
		}()
	}
	for i := range 20 {
		switch i % 4 {
		case 0:
			if _, err := s.GenerateSecret(ctx); err != nil {
				t.Error(err)
			}
		case 1:
			_ = s.SetMode(ctx, Off)
		case 2:
			_ = s.SetMode(ctx, Monitor)
		case 3:
			if err := s.Flush(ctx); err != nil {
				t.Error(err)
			}
			_ = s.Status()
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
