package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/identity"
	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Runtime is the state one database file carries: the store, the keys, the
// in-memory session table and the attempt counters. The Caddy glue keeps one
// per database path and shares it across config reloads, so a reload neither
// blocks on the file lock nor forgets a session.
type Runtime struct {
	Store    storage.Store
	Sessions *session.Table

	box         *seal.Box
	codec       *session.Codec
	csrfKey     []byte
	recoveryKey []byte
	attempts    *limiter
	rand        io.Reader
	now         func() time.Time
	logger      *zap.Logger

	pol policies
	// Audit records every security event; writes are batched off the request path.
	Audit *audit.Log
	// Identity is widget identity verification: mode, secrets, health.
	Identity        *identity.Service
	keyID           [32]byte                           // hash of the master key, to notice a changed key on reload
	onForcedLogout  atomic.Pointer[func(storage.User)] // emails the user; set by a config with email
	identityOverlap time.Duration
	sweepIdle       atomic.Int64 // the longest idle timeout of the configs using this runtime
	sweepEvery      atomic.Int64 // how often sessions are swept: a minute, less for short grace periods
	stop            chan struct{}
	done            chan struct{}
	closeOnce       sync.Once
}

// RuntimeOptions configures OpenRuntime.
type RuntimeOptions struct {
	Store           storage.Store
	Key             []byte // 32-byte master key; subkeys are derived from it
	Logger          *zap.Logger
	Now             func() time.Time
	Rand            io.Reader
	FlushInterval   time.Duration // how often activity is written, default 5s
	AuditRetention  time.Duration // how long audit events are kept, default 90 days
	IdentityOverlap time.Duration // how long a rotated identity secret stays valid, default 24h
	IdentityLeeway  time.Duration // clock leeway for widget JWTs, default 30s
}

// OpenRuntime loads live sessions from the store and starts the background
// flush of session activity.
func OpenRuntime(opts RuntimeOptions) (*Runtime, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	box, err := seal.New(opts.Key, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("gateway: encryption key: %w", err)
	}
	codec, err := session.NewCodec(seal.DeriveKey(opts.Key, "session-cookie"))
	if err != nil {
		return nil, err
	}
	rt := &Runtime{
		Store:       opts.Store,
		Sessions:    session.NewTable(),
		box:         box,
		codec:       codec,
		csrfKey:     seal.DeriveKey(opts.Key, "csrf"),
		recoveryKey: seal.DeriveKey(opts.Key, "recovery-codes"),
		attempts:    newLimiter(),
		rand:        opts.Rand,
		now:         opts.Now,
		logger:      opts.Logger,
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	rt.keyID = sha256.Sum256(opts.Key)
	rt.Audit = audit.New(opts.Store.Audit(), audit.Options{Retention: opts.AuditRetention, Now: opts.Now, Logger: opts.Logger.Named("audit")})
	rt.sweepIdle.Store(int64(DefaultIdleTimeout))
	rt.sweepEvery.Store(int64(time.Minute))
	if err := rt.load(); err != nil {
		return nil, err
	}
	rt.identityOverlap = opts.IdentityOverlap
	if rt.identityOverlap == 0 {
		rt.identityOverlap = identity.DefaultOverlap
	}
	rt.Identity, err = identity.OpenService(identity.ServiceOptions{
		Store: opts.Store, Box: box, Now: opts.Now, Rand: opts.Rand,
		Overlap: opts.IdentityOverlap, Leeway: opts.IdentityLeeway, Logger: opts.Logger.Named("identity"),
	})
	if err != nil {
		rt.Audit.Close()
		return nil, fmt.Errorf("gateway: identity verification: %w", err)
	}
	go rt.loop(opts.FlushInterval)
	return rt, nil
}

// load reads the sessions that were live when the process last stopped.
func (rt *Runtime) load() error {
	now := rt.now()
	var loaded, dropped int
	err := rt.Store.View(context.Background(), func(tx storage.Tx) error {
		return tx.ForEachSession(func(rec storage.Session) error {
			s, err := rt.fromRecord(rec)
			if err != nil || (!s.ExpiresAt.IsZero() && now.After(s.ExpiresAt)) {
				dropped++
				return nil
			}
			rt.Sessions.Put(s)
			loaded++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("gateway: load sessions: %w", err)
	}
	rt.logger.Info("sessions loaded", zap.Int("loaded", loaded), zap.Int("dropped", dropped))
	return nil
}

func (rt *Runtime) loop(every time.Duration) {
	defer close(rt.done)
	flush := time.NewTicker(every)
	defer flush.Stop()
	// The sweep runs every minute, or more often when a grace period is
	// short enough that a minute would overrun it (a quarter of the period,
	// at least a second apart).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-rt.stop:
			rt.flush()
			return
		case <-flush.C:
			rt.flush()
		case now := <-tick.C:
			if now.Sub(last) >= time.Duration(rt.sweepEvery.Load()) {
				last = now
				rt.sweep()
			}
		}
	}
}

// flush writes session activity in one batch: never one write per request.
func (rt *Runtime) flush() {
	acts := rt.Sessions.TakeActivity()
	if len(acts) == 0 {
		return
	}
	err := rt.Store.Batch(context.Background(), func(tx storage.Tx) error {
		for _, a := range acts {
			rec, err := tx.Session(a.Session.Key.String())
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			rec.LastSeen = a.LastSeen
			if err := tx.PutSession(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		rt.logger.Error("flush session activity", zap.Int("sessions", len(acts)), zap.Error(err))
	}
}

func (rt *Runtime) sweep() {
	now := rt.now()
	idle := time.Duration(rt.sweepIdle.Load())
	gone := rt.Sessions.Sweep(now, idle, anonymousIdle)
	if len(gone) > 0 {
		rt.deleteSessions(gone)
	}
	for _, s := range gone {
		if s.State != session.Anonymous && !s.Revoked() {
			rt.Audit.Record(audit.Event{Type: audit.TypeSessionExpired, Actor: audit.ActorSystem, Subject: s.User,
				Remote: s.RemoteAddr, UserAgent: s.UserAgent, Detail: map[string]string{"scope": s.Scope}})
		}
	}
	for _, s := range rt.enforceGrace(context.Background(), now) {
		rt.logger.Info("forced logout: 2fa required and grace period over", zap.String("user", s.User), zap.String("scope", s.Scope))
		rt.Audit.Record(audit.Event{Type: audit.TypeForcedLogout, Actor: audit.ActorSystem, Subject: s.User,
			Remote: s.RemoteAddr, UserAgent: s.UserAgent, Detail: map[string]string{"scope": s.Scope, "reason": "grace period over"}})
		if notify := rt.onForcedLogout.Load(); notify != nil {
			if u, err := rt.user(context.Background(), s.User); err == nil {
				(*notify)(u)
			}
		}
	}
	rt.attempts.sweep(now)
}

// anonymousIdle bounds pre-sign-in sessions, which live in memory only.
const anonymousIdle = 30 * time.Minute

func (rt *Runtime) deleteSessions(ss []*session.Session) {
	err := rt.Store.Batch(context.Background(), func(tx storage.Tx) error {
		for _, s := range ss {
			if s.State == session.Anonymous {
				continue
			}
			if err := tx.DeleteSession(s.Key.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		rt.logger.Error("delete sessions", zap.Int("sessions", len(ss)), zap.Error(err))
	}
}

// SameKey reports whether key is the key this runtime was opened with: a
// config reload shares the open runtime, so a changed key must be noticed
// rather than silently ignored.
func (rt *Runtime) SameKey(key []byte) bool {
	id := sha256.Sum256(key)
	return subtle.ConstantTimeCompare(id[:], rt.keyID[:]) == 1
}

// useIdle records a config's idle timeout so sweeps never cut a session that
// one of the configs sharing this runtime would still accept.
func (rt *Runtime) useIdle(d time.Duration) {
	for {
		cur := rt.sweepIdle.Load()
		if int64(d) <= cur || rt.sweepIdle.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// Close stops the background work, flushes activity and closes the store.
func (rt *Runtime) Close() error {
	var err error
	rt.closeOnce.Do(func() {
		close(rt.stop)
		<-rt.done
		if ierr := rt.Identity.Close(); ierr != nil {
			rt.logger.Error("close identity verification", zap.Error(ierr))
		}
		if aerr := rt.Audit.Close(); aerr != nil {
			rt.logger.Error("close audit log", zap.Error(aerr))
		}
		err = rt.Store.Close()
	})
	return err
}

// heldAAD binds sealed held cookies to their session, so a record's blob
// cannot be moved to another session.
func heldAAD(k session.Key) []byte { return append([]byte("held:"), k[:]...) }

func (rt *Runtime) toRecord(s *session.Session) (storage.Session, error) {
	rec := storage.Session{
		ID: s.Key.String(), User: s.User, State: uint8(s.State), AAL: s.AAL, MustEnrol: s.MustEnrol,
		Scope: s.Scope, Role: s.Role,
		Next: s.Next, CreatedAt: s.CreatedAt, AuthAt: s.AuthAt, LastSeen: s.LastSeen(),
		ExpiresAt: s.ExpiresAt, RemoteAddr: s.RemoteAddr, UserAgent: s.UserAgent,
	}
	for _, b := range s.Bindings() {
		rec.Bindings = append(rec.Bindings, storage.Binding{Name: b.Name, Hash: append([]byte(nil), b.Hash[:]...)})
	}
	if len(s.Held) > 0 {
		plain, err := json.Marshal(s.Held)
		if err != nil {
			return rec, err
		}
		if rec.HeldCookies, err = rt.box.Seal(plain, heldAAD(s.Key)); err != nil {
			return rec, fmt.Errorf("seal held cookies: %w", err)
		}
	}
	return rec, nil
}

func (rt *Runtime) fromRecord(rec storage.Session) (*session.Session, error) {
	k, err := session.ParseKey(rec.ID)
	if err != nil {
		return nil, err
	}
	s := &session.Session{
		Key: k, User: rec.User, State: session.State(rec.State), AAL: rec.AAL, MustEnrol: rec.MustEnrol,
		Scope: rec.Scope, Role: rec.Role,
		Next: rec.Next, CreatedAt: rec.CreatedAt, AuthAt: rec.AuthAt, ExpiresAt: rec.ExpiresAt,
		RemoteAddr: rec.RemoteAddr, UserAgent: rec.UserAgent,
	}
	s.SetLastSeen(rec.LastSeen)
	var bs []session.Binding
	for _, b := range rec.Bindings {
		var h [32]byte
		if len(b.Hash) != len(h) {
			return nil, errors.New("bad binding hash")
		}
		copy(h[:], b.Hash)
		bs = append(bs, session.Binding{Name: b.Name, Hash: h})
	}
	s.SetBindings(bs)
	if len(rec.HeldCookies) > 0 {
		plain, err := rt.box.Open(rec.HeldCookies, heldAAD(k))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(plain, &s.Held); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// saveSession writes s (anonymous sessions stay in memory) and removes old.
func (rt *Runtime) saveSession(ctx context.Context, s, old *session.Session) error {
	rec, err := rt.toRecord(s)
	if err != nil {
		return err
	}
	return rt.Store.Batch(ctx, func(tx storage.Tx) error {
		if old != nil && old.State != session.Anonymous {
			if err := tx.DeleteSession(old.Key.String()); err != nil {
				return err
			}
		}
		if s.State == session.Anonymous {
			return nil
		}
		return tx.PutSession(rec)
	})
}
