package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/storage"
)

var (
	// ErrEnforceGate is wrapped by the error SetMode returns when switching
	// to Enforce is refused (see GateError for the reason).
	ErrEnforceGate = errors.New("identity: enforce is gated")

	// ErrNoSecret is wrapped by the error SetMode returns when switching to
	// Monitor or Enforce without an identity secret.
	ErrNoSecret = errors.New("identity: no identity secret")
)

// Defaults for ServiceOptions.
const (
	DefaultOverlap       = 24 * time.Hour
	DefaultFlushInterval = 5 * time.Second
)

// ServiceOptions configures OpenService.
type ServiceOptions struct {
	Store storage.Store // required
	Box   *seal.Box     // required: seals the secrets at rest
	Now   func() time.Time
	Rand  io.Reader // secrets and the widget key; nil means crypto/rand.Reader

	// Overlap is how long the previous secret stays valid after a new one
	// is generated. 0 means DefaultOverlap (24h); negative means none.
	Overlap time.Duration

	// Leeway, MaxTokenBytes and CacheSize are passed to the Verifier.
	Leeway        time.Duration
	MaxTokenBytes int
	CacheSize     int

	// FlushInterval is how often the health counters are flushed to the
	// store (and the stored state re-read, to pick up changes made by
	// another instance). 0 means DefaultFlushInterval (5s); negative turns
	// the loop off (tests call Flush themselves).
	FlushInterval time.Duration

	Logger *zap.Logger // nil means no logs
}

// Service is widget identity verification for one gateway: the mode, the
// secrets, the Verifier, the health counters and their persistence.
// Safe for concurrent use.
//
// The hot path, Check, loads one atomic pointer to the current (mode,
// Verifier) pair and counts in memory. Changes (SetMode, GenerateSecret,
// RetirePrevious) are serialised, written to the store first and only then
// swapped in, each with a new Verifier, so a failed write changes nothing
// and every change starts with an empty token cache.
type Service struct {
	store    storage.Store
	box      *seal.Box
	now      func() time.Time
	rand     io.Reader
	overlap  time.Duration
	leeway   time.Duration
	maxToken int
	cache    int
	log      *zap.Logger
	health   *Health

	rt atomic.Pointer[runtimeState]

	mu       sync.Mutex // serialises changes; guards the fields below
	st       persisted
	stateRaw []byte // st as last read or written, to notice changes by others
	cur      []byte // plaintext secrets (nil if none)
	prev     []byte
	problem  string // why the stored secret is unusable, for Status

	flushMu sync.Mutex

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type runtimeState struct {
	mode Mode
	v    *Verifier // nil in Off, or when the stored secret cannot be opened
}

// OpenService loads the state and the health counters from the store,
// creates the widget key on first use, and starts the flush loop.
//
// A stored secret that cannot be decrypted (the master key changed) does
// not stop the gateway: the mode is kept and every claimed identity fails
// with signature_mismatch (fail closed), the error is logged, Status
// reports the problem, and generating a new secret repairs it. A stored
// state that cannot be parsed is an error: guessing would mean Off.
func OpenService(o ServiceOptions) (*Service, error) {
	if o.Store == nil || o.Box == nil {
		return nil, errors.New("identity: OpenService needs a Store and a Box")
	}
	s := &Service{
		store:    o.Store,
		box:      o.Box,
		now:      o.Now,
		rand:     o.Rand,
		overlap:  o.Overlap,
		leeway:   o.Leeway,
		maxToken: o.MaxTokenBytes,
		cache:    o.CacheSize,
		log:      o.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	switch {
	case s.overlap == 0:
		s.overlap = DefaultOverlap
	case s.overlap < 0:
		s.overlap = 0
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.health = NewHealth(s.now)

	ctx := context.Background()
	var stateRaw, healthRaw []byte
	err := s.store.View(ctx, func(tx storage.Tx) error {
		var err error
		if stateRaw, err = setting(tx, SettingState); err != nil {
			return err
		}
		healthRaw, err = setting(tx, SettingHealth)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: load: %w", err)
	}

	st := persisted{Version: stateVersion, Mode: Off}
	if stateRaw != nil {
		if st, err = decodeState(stateRaw); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.apply(st, stateRaw)
	if st.WidgetKey == "" {
		err = s.createWidgetKey(ctx)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}

	if healthRaw != nil {
		if err := s.health.UnmarshalJSON(healthRaw); err != nil {
			// Starting from zero can only close the enforce gate (no
			// verified request), never open it.
			s.log.Warn("identity health counters unreadable; starting from zero", zap.Error(err))
		}
	}

	interval := o.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	if interval > 0 {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.loop(interval)
	}
	return s, nil
}

// setting reads key, returning nil without error when it is absent.
func setting(tx storage.Tx, key string) ([]byte, error) {
	b, err := tx.Setting(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// apply makes st the current state: opens the secrets and swaps in a new
// runtime. s.mu must be held.
func (s *Service) apply(st persisted, raw []byte) {
	s.st, s.stateRaw = st, raw
	s.cur, s.prev, s.problem = nil, nil, ""
	if len(st.Secret) > 0 {
		cur, err := s.box.Open(st.Secret, []byte(adSecret))
		if err != nil {
			s.problem = "the stored identity secret cannot be decrypted (was the master key changed?); generate a new secret"
			s.log.Error("identity secret cannot be decrypted; claimed identities will fail until a new secret is generated", zap.Error(err))
		} else {
			s.cur = cur
		}
	}
	if len(st.Previous) > 0 && s.now().Before(st.PrevUntil) {
		prev, err := s.box.Open(st.Previous, []byte(adPrevious))
		if err != nil {
			s.log.Warn("previous identity secret cannot be decrypted; tokens signed with it will fail", zap.Error(err))
		} else {
			s.prev = prev
		}
	}
	s.rebuild()
}

// rebuild swaps in a new (mode, Verifier) for the current state, so the
// token cache starts empty. s.mu must be held.
func (s *Service) rebuild() {
	rt := &runtimeState{mode: s.st.Mode}
	if rt.mode != Off && s.cur != nil {
		v, err := NewVerifier(VerifierOptions{
			Current:       s.cur,
			Previous:      s.prev,
			PrevUntil:     s.st.PrevUntil,
			Leeway:        s.leeway,
			MaxTokenBytes: s.maxToken,
			CacheSize:     s.cache,
			Now:           s.now,
		})
		if err != nil {
			s.problem = "the stored identity secret is unusable; generate a new secret"
			s.log.Error("identity verifier", zap.Error(err))
		}
		rt.v = v
	}
	s.rt.Store(rt)
}

// save writes next as the state, then makes it current. s.mu must be held.
func (s *Service) save(ctx context.Context, next persisted) error {
	next.UpdatedAt = s.now().UTC()
	if !next.PrevUntil.IsZero() && !s.now().Before(next.PrevUntil) {
		next.Previous, next.PrevUntil = nil, time.Time{} // retired: drop it
	}
	raw, err := jsonMarshal(next)
	if err != nil {
		return err
	}
	if err := s.store.Update(ctx, func(tx storage.Tx) error {
		return tx.PutSetting(SettingState, raw)
	}); err != nil {
		return fmt.Errorf("identity: save state: %w", err)
	}
	s.st, s.stateRaw = next, raw
	return nil
}

func (s *Service) createWidgetKey(ctx context.Context) error {
	key, err := randomToken(s.rand, WidgetKeyPrefix, widgetKeyBytes)
	if err != nil {
		return err
	}
	next := s.st
	next.WidgetKey, next.WidgetKeyCreated = key, s.now().UTC()
	return s.save(ctx, next)
}

// Check verifies one widget request: token is the presented JWT ("" if
// none), claimedUser the user id it claims ("" if none). It returns the
// verdict for the upstream, the cause of a failure, and the mode, which
// tells the gateway what to do: refuse a non-Verified verdict in Enforce,
// pass everything otherwise.
//
//   - No claimed user: Anonymous, in every mode, not counted.
//   - Off: Unverified with an empty Cause, not counted (see the package
//     documentation for why not a fourth verdict).
//   - Monitor and Enforce: the Verifier's verdict, counted in Health.
func (s *Service) Check(token, claimedUser string) (Verdict, Cause, Mode) {
	rt := s.rt.Load()
	if claimedUser == "" {
		return Anonymous, "", rt.mode
	}
	if rt.mode == Off {
		return Unverified, "", Off
	}
	now := s.now()                             // once, for the token cache and the count
	v, c := Unverified, CauseSignatureMismatch // no usable secret: fail closed
	if rt.v != nil {
		v, c = rt.v.verifyAt(now, token, claimedUser)
	}
	if idx, ok := countIndex(v, c); ok {
		s.health.countAt(now, idx)
	}
	if v != Verified {
		if ce := s.log.Check(zapcore.DebugLevel, "identity check failed"); ce != nil {
			ce.Write(zap.String("user", claimedUser), zap.String("cause", string(c)), zap.String("mode", string(rt.mode)))
		}
	}
	return v, c, rt.mode
}

// Mode is the current mode.
func (s *Service) Mode() Mode { return s.rt.Load().mode }

// SetMode switches the mode. Off and Monitor are always allowed (Monitor
// needs a secret: ErrNoSecret). Enforce needs a secret and passes the gate:
// at least one verified request and no failure in the last 24 hours;
// otherwise the error is a *GateError wrapping ErrEnforceGate. Setting the
// current mode is a no-op.
func (s *Service) SetMode(ctx context.Context, m Mode) error {
	if !m.Valid() {
		return fmt.Errorf("identity: unknown mode %q", m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.st.Mode
	if m == from {
		return nil
	}
	if m != Off && s.cur == nil {
		return fmt.Errorf("%w: generate one before switching to %s", ErrNoSecret, m)
	}
	if m == Enforce {
		if sum, gate := s.health.state(); !gate.Allowed() {
			return &GateError{Reason: gate.Reason, Summary: sum, OpensAt: gate.OpensAt}
		}
	}
	next := s.st
	next.Mode = m
	if err := s.save(ctx, next); err != nil {
		return err
	}
	s.rebuild()
	s.log.Info("identity verification mode changed", zap.String("from", string(from)), zap.String("to", string(m)))
	return nil
}

// GenerateSecret creates a new identity secret, "ha_secret_" followed by
// 256 random bits in base64url, stores it sealed and returns it: the only
// time it is shown. The secret it replaces stays valid for the overlap
// window (ServiceOptions.Overlap) so customers can redeploy their minting;
// a secret replaced earlier than that, by a second generation inside the
// window, stops working at once (one previous secret is kept).
//
// The mode becomes Monitor, whatever it was (seed 000: "When you generate a
// secret, Halo starts in monitor mode"), Enforce included: tokens signed
// with the new secret are not flowing yet, and the gate (a day of healthy
// traffic) applies again before Enforce. The catch for a rotation after a
// leak: Monitor lets unverified requests through, so call RetirePrevious
// and re-enable Enforce as soon as the health allows.
func (s *Service) GenerateSecret(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, err := randomToken(s.rand, SecretPrefix, secretBytes)
	if err != nil {
		return "", err
	}
	now := s.now()
	next := s.st
	next.Mode = Monitor
	next.SecretCreated = now.UTC()
	if next.Secret, err = s.box.Seal([]byte(secret), []byte(adSecret)); err != nil {
		return "", fmt.Errorf("identity: seal secret: %w", err)
	}
	var prev []byte
	next.Previous, next.PrevUntil = nil, time.Time{}
	if s.cur != nil && s.overlap > 0 {
		prev = s.cur
		next.PrevUntil = now.Add(s.overlap).UTC()
		if next.Previous, err = s.box.Seal(prev, []byte(adPrevious)); err != nil {
			return "", fmt.Errorf("identity: seal previous secret: %w", err)
		}
	}
	if err := s.save(ctx, next); err != nil {
		return "", err
	}
	s.cur, s.prev, s.problem = []byte(secret), prev, ""
	s.rebuild()
	fields := []zap.Field{zap.String("mode", string(Monitor))}
	if prev != nil {
		fields = append(fields, zap.Time("previous_valid_until", next.PrevUntil))
	}
	s.log.Info("identity secret generated", fields...)
	return secret, nil
}

// RetirePrevious ends the overlap window now: tokens signed with the
// previous secret stop verifying at once (after a leak, say).
func (s *Service) RetirePrevious(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.st.Previous) == 0 {
		return nil
	}
	next := s.st
	next.Previous, next.PrevUntil = nil, time.Time{}
	if err := s.save(ctx, next); err != nil {
		return err
	}
	s.prev = nil
	s.rebuild()
	s.log.Info("previous identity secret retired")
	return nil
}

// Refresh re-reads the stored state and applies it if another instance
// (or a previous process) changed it. The flush loop calls it.
func (s *Service) Refresh(ctx context.Context) error {
	// Read under s.mu: a read that raced with this instance's own save could
	// otherwise bring back the state that save replaced.
	s.mu.Lock()
	defer s.mu.Unlock()
	var raw []byte
	if err := s.store.View(ctx, func(tx storage.Tx) error {
		var err error
		raw, err = setting(tx, SettingState)
		return err
	}); err != nil {
		return fmt.Errorf("identity: refresh: %w", err)
	}
	if raw == nil || bytes.Equal(raw, s.stateRaw) {
		return nil
	}
	st, err := decodeState(raw)
	if err != nil {
		return err
	}
	from := s.st.Mode
	s.apply(st, raw)
	s.log.Info("identity state changed in the store", zap.String("from", string(from)), zap.String("to", string(st.Mode)))
	return nil
}

// String never shows the secrets.
func (s *Service) String() string { return "identity.Service{secrets redacted}" }

// GoString never shows the secrets.
func (s *Service) GoString() string { return s.String() }
