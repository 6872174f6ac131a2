// Package mfa is the domain of mfagate, free of HTTP: a Service is the state
// of one database (store, keys, the in-memory session table, attempt
// counters, background sweeps), and a Realm is one site block's view of it
// (scope, policy, settings). Every state change is an operation here —
// sign-in, the session lookup with its one idle rule, enrolment, challenge,
// recovery, admin and operator actions, policy and grace period — that takes
// an Actor, audits itself and returns typed errors (errors.go). The request
// guard, the pages and API, and the command line all call these.
package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Service is the state one database file carries: the store, the keys, the
// in-memory session table and the attempt counters. The Caddy glue keeps one
// per database path and shares it across config reloads, so a reload neither
// blocks on the file lock nor forgets a session.
type Service struct {
	Store    storage.Store
	Sessions *session.Table

	box         *seal.Box
	codec       *session.Codec
	cookies     *cookieCache // gateway cookies already verified
	csrfKey     []byte
	recoveryKey []byte
	sentKey     []byte // keys the hashes of codes sent by email or text
	deviceKey   []byte // keys the hashes of remembered browsers' tokens
	attempts    attemptCounter
	stats       *Stats
	rand        io.Reader
	now         func() time.Time
	logger      *zap.Logger

	pol policies
	// Audit records every security event; writes are batched off the request path.
	Audit *audit.Log
	// Identity is widget identity verification: mode, secrets, health.
	Identity        *identity.Service
	keyID           [32]byte // hash of the master key, to notice a changed key on reload
	identityOverlap time.Duration
	sweepIdle       atomic.Int64 // the longest idle timeout of the configs using this service
	sweepEvery      atomic.Int64 // how often sessions are swept: a minute, less for short grace periods
	outageLimit     time.Duration
	shared          bool
	sync            sharedSync   // following the other instances on a shared store (shared.go)
	failingSince    atomic.Int64 // unix nanoseconds of the first failed store probe in a row; 0: the store answers

	// undeleted holds the stored ids of ended sessions whose deletion the
	// store refused; the background loop deletes them again until it takes.
	undeletedMu sync.Mutex
	undeleted   map[string]struct{}

	realmsMu  sync.Mutex
	realms    map[*Realm]struct{} // the site blocks of the loaded configs
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Options configures Open.
type Options struct {
	Store         storage.Store
	Key           []byte // 32-byte master key; subkeys are derived from it
	Logger        *zap.Logger
	Now           func() time.Time
	Rand          io.Reader
	FlushInterval time.Duration // how often activity is written, default 5s
	// OutageLimit is how long signed-in traffic goes on from memory while
	// the store cannot be read; past it, signed-in requests fail closed
	// too. Default 60s.
	OutageLimit time.Duration
	// Shared says other gateway instances use the same store: this one
	// follows their changes (see shared.go), so a session started, ended
	// or revoked, or a policy changed, on another instance is known here
	// within about a second, at once with the store's change feed.
	Shared          bool
	AuditRetention  time.Duration // how long audit events are kept, default 90 days
	AuditMaxEvents  int           // the most audit events kept, default 250,000
	IdentityOverlap time.Duration // how long a rotated identity secret stays valid, default 24h
	IdentityLeeway  time.Duration // clock leeway for widget JWTs, default 30s
}

// Open loads live sessions from the store and starts the background
// flush of session activity.
func Open(opts Options) (*Service, error) {
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
	if opts.OutageLimit <= 0 {
		opts.OutageLimit = DefaultOutageLimit
	}
	box, err := seal.New(opts.Key, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("mfa: encryption key: %w", err)
	}
	codec, err := session.NewCodec(seal.DeriveKey(opts.Key, "session-cookie"))
	if err != nil {
		return nil, err
	}
	svc := &Service{
		Store:       opts.Store,
		Sessions:    session.NewTable(),
		box:         box,
		codec:       codec,
		cookies:     newCookieCache(),
		csrfKey:     seal.DeriveKey(opts.Key, "csrf"),
		recoveryKey: seal.DeriveKey(opts.Key, "recovery-codes"),
		sentKey:     seal.DeriveKey(opts.Key, "sent-codes"),
		deviceKey:   seal.DeriveKey(opts.Key, "remembered-devices"),
		attempts:    newLimiter(),
		stats:       newStats(),
		rand:        opts.Rand,
		now:         opts.Now,
		logger:      opts.Logger,
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	svc.keyID = sha256.Sum256(opts.Key)
	svc.Audit = audit.New(opts.Store.Audit(), audit.Options{Retention: opts.AuditRetention, MaxEvents: opts.AuditMaxEvents, Now: opts.Now, Logger: opts.Logger.Named("audit")})
	svc.sweepIdle.Store(int64(DefaultIdleTimeout))
	svc.sweepEvery.Store(int64(time.Minute))
	svc.outageLimit, svc.shared = opts.OutageLimit, opts.Shared
	if svc.shared {
		svc.attempts = &sharedLimiter{store: opts.Store, local: newLimiter(), logger: opts.Logger.Named("limits")}
	}
	if err := svc.openShared(); err != nil {
		svc.Audit.Close()
		return nil, err
	}
	if err := svc.load(); err != nil {
		return nil, err
	}
	svc.identityOverlap = opts.IdentityOverlap
	if svc.identityOverlap == 0 {
		svc.identityOverlap = identity.DefaultOverlap
	}
	svc.Identity, err = identity.OpenService(identity.ServiceOptions{
		Store: opts.Store, Box: box, Now: opts.Now, Rand: opts.Rand,
		Overlap: opts.IdentityOverlap, Leeway: opts.IdentityLeeway, Logger: opts.Logger.Named("identity"),
	})
	if err != nil {
		svc.Audit.Close()
		return nil, fmt.Errorf("mfa: identity verification: %w", err)
	}
	go svc.loop(opts.FlushInterval)
	return svc, nil
}

// load reads the sessions that were live when the process last stopped.
func (svc *Service) load() error {
	now := svc.now()
	var loaded, dropped int
	err := svc.Store.View(context.Background(), func(tx storage.Tx) error {
		return tx.ForEachSession(func(rec storage.Session) error {
			s, err := svc.fromRecord(rec)
			if err != nil || (!s.ExpiresAt.IsZero() && now.After(s.ExpiresAt)) {
				dropped++
				return nil
			}
			svc.Sessions.Put(s)
			loaded++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("mfa: load sessions: %w", err)
	}
	svc.logger.Info("sessions loaded", zap.Int("loaded", loaded), zap.Int("dropped", dropped))
	return nil
}

func (svc *Service) loop(every time.Duration) {
	defer close(svc.done)
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
		case <-svc.stop:
			svc.FlushActivity()
			return
		case <-flush.C:
			svc.probeStore()
			svc.FlushActivity()
			svc.retryDeletes()
		case <-svc.sync.notices: // another instance changed something
			svc.catchUp()
		case now := <-tick.C:
			if svc.shared {
				svc.syncTick()
			}
			if now.Sub(last) >= time.Duration(svc.sweepEvery.Load()) {
				last = now
				svc.Sweep()
			}
		}
	}
}

// FlushActivity writes session activity in one batch: never one write per
// request. The background loop calls it every FlushInterval and at Close.
func (svc *Service) FlushActivity() {
	acts := svc.Sessions.TakeActivity()
	if len(acts) == 0 {
		return
	}
	err := svc.Store.Batch(context.Background(), func(tx storage.Tx) error {
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
		svc.logger.Error("flush session activity", zap.Int("sessions", len(acts)), zap.Error(err))
	}
}

// Sweep ends sessions past their deadlines and, once a grace period is
// over, sessions of users still without 2FA. The background loop calls it.
func (svc *Service) Sweep() {
	now := svc.now()
	idle := time.Duration(svc.sweepIdle.Load())
	gone := svc.Sessions.Sweep(now, idle, anonymousIdle)
	for _, s := range svc.endedHere(gone) {
		if s.State != session.Anonymous && !s.Revoked() {
			svc.Audit.Record(audit.Event{Type: audit.TypeSessionExpired, Actor: audit.ActorSystem, Subject: s.User,
				Remote: s.RemoteAddr, UserAgent: s.UserAgent, Detail: map[string]string{"scope": s.Scope}})
		}
	}
	for _, s := range svc.enforceGrace(context.Background(), now) {
		svc.logger.Info("forced logout: 2fa required and grace period over", zap.String("user", s.User), zap.String("scope", s.Scope))
		svc.Audit.Record(audit.Event{Type: audit.TypeForcedLogout, Actor: audit.ActorSystem, Subject: s.User,
			Remote: s.RemoteAddr, UserAgent: s.UserAgent, Detail: map[string]string{"scope": s.Scope, "reason": "grace period over"}})
		if r := svc.mailingRealm(s.Scope); r != nil {
			if u, err := svc.user(context.Background(), s.User); err == nil {
				r.notify(u, mail.ForcedLogoutNotice(r.cfg.Issuer, u.ID))
			}
		}
	}
	svc.attempts.sweep(now)
}

// deleteSessions deletes the stored records of ended sessions. A deletion
// the store refuses is remembered and retried by the background loop, so
// that a session ended here does not come back at the next restart once
// the store recovers; the error still reports it, for the caller to say so.
func (svc *Service) deleteSessions(ss []*session.Session) error {
	var ids []string
	for _, s := range ss {
		if s.State != session.Anonymous { // anonymous sessions live in memory only
			ids = append(ids, s.Key.String())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := svc.deleteStored(ids); err != nil {
		svc.undeletedMu.Lock()
		if svc.undeleted == nil {
			svc.undeleted = map[string]struct{}{}
		}
		for _, id := range ids {
			svc.undeleted[id] = struct{}{}
		}
		svc.undeletedMu.Unlock()
		svc.logger.Error("delete sessions: will retry", zap.Int("sessions", len(ids)), zap.Error(err))
		return fmt.Errorf("mfa: delete sessions: %w", err)
	}
	return nil
}

// endedHere deletes the stored records of sessions the background work
// ended, and returns those whose audit events and emails are this
// instance's to send: all of them, or, on a shared store where every
// instance sweeps the same sessions, those whose record this one deleted.
func (svc *Service) endedHere(ss []*session.Session) []*session.Session {
	if len(ss) == 0 {
		return nil
	}
	if !svc.shared {
		svc.deleteSessions(ss)
		return ss
	}
	var mine []*session.Session
	err := svc.Store.Batch(context.Background(), func(tx storage.Tx) error {
		mine = mine[:0] // in case the store runs fn again
		for _, s := range ss {
			if s.State == session.Anonymous {
				continue // in memory only
			}
			id := s.Key.String()
			if _, err := tx.Session(id); errors.Is(err, storage.ErrNotFound) {
				continue // another instance got there first
			} else if err != nil {
				return err
			}
			if err := tx.DeleteSession(id); err != nil {
				return err
			}
			mine = append(mine, s)
		}
		return nil
	})
	if err != nil {
		svc.deleteSessions(ss) // remembered and retried
		return ss
	}
	return mine
}

func (svc *Service) deleteStored(ids []string) error {
	return svc.Store.Batch(context.Background(), func(tx storage.Tx) error {
		for _, id := range ids {
			if err := tx.DeleteSession(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// retryDeletes deletes again the sessions whose deletion the store refused.
func (svc *Service) retryDeletes() {
	svc.undeletedMu.Lock()
	ids := make([]string, 0, len(svc.undeleted))
	for id := range svc.undeleted {
		ids = append(ids, id)
	}
	svc.undeletedMu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := svc.deleteStored(ids); err != nil {
		svc.logger.Error("delete sessions: retry failed", zap.Int("sessions", len(ids)), zap.Error(err))
		return
	}
	svc.undeletedMu.Lock()
	for _, id := range ids {
		delete(svc.undeleted, id)
	}
	svc.undeletedMu.Unlock()
	svc.logger.Info("delete sessions: retry succeeded", zap.Int("sessions", len(ids)))
}

// DefaultOutageLimit is how long signed-in traffic goes on from memory
// while the store cannot be read.
const DefaultOutageLimit = 60 * time.Second

// probeStore reads the store once, to know whether it answers: the
// per-request check never reads it, so without a probe an outage would go
// unnoticed by signed-in traffic.
func (svc *Service) probeStore() {
	err := svc.Store.View(context.Background(), func(tx storage.Tx) error {
		_, err := tx.Setting("probe")
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
	switch {
	case err == nil:
		if svc.failingSince.Swap(0) != 0 {
			svc.logger.Info("store answers again: signed-in traffic goes on")
		}
	case svc.failingSince.CompareAndSwap(0, svc.now().UnixNano()):
		svc.logger.Error("store does not answer: signed-in traffic goes on from memory for a while", zap.Duration("for", svc.outageLimit), zap.Error(err))
	}
}

// StoreDown reports whether the store has not answered for longer than the
// outage limit, or (on a shared store) this instance has not been able to
// read the others' changes for that long: then signed-in requests fail
// closed as well, since revocations and policy changes made elsewhere can
// no longer be learned.
func (svc *Service) StoreDown(now time.Time) bool {
	since := svc.failingSince.Load()
	return since != 0 && now.UnixNano()-since > int64(svc.outageLimit) || svc.outOfStep(now)
}

// SameKey reports whether key is the key this service was opened with: a
// config reload shares the open service, so a changed key must be noticed
// rather than silently ignored.
func (svc *Service) SameKey(key []byte) bool {
	id := sha256.Sum256(key)
	return subtle.ConstantTimeCompare(id[:], svc.keyID[:]) == 1
}

// useIdle records an idle timeout in use so sweeps never cut a session that
// one of the configs sharing this service would still accept.
func (svc *Service) useIdle(d time.Duration) {
	for {
		cur := svc.sweepIdle.Load()
		if int64(d) <= cur || svc.sweepIdle.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// register adds a site block's realm; unregister removes it when its config
// is unloaded, so nothing of an old config (a closed mail outbox, a longer
// cache age) outlives it.
func (svc *Service) register(r *Realm) {
	svc.realmsMu.Lock()
	defer svc.realmsMu.Unlock()
	if svc.realms == nil {
		svc.realms = map[*Realm]struct{}{}
	}
	svc.realms[r] = struct{}{}
	svc.retuneLocked()
}

func (svc *Service) unregister(r *Realm) {
	svc.realmsMu.Lock()
	defer svc.realmsMu.Unlock()
	delete(svc.realms, r)
	svc.retuneLocked()
}

// retuneLocked derives the settings the realms of one scope share: the
// shortest policy cache age and grace period, and a sweep often enough for
// the shortest grace period.
func (svc *Service) retuneLocked() {
	type tune struct{ maxAge, grace time.Duration }
	scopes := map[*policyCache]tune{}
	for r := range svc.realms {
		t, seen := scopes[r.policy]
		if !seen || r.cfg.PolicyMaxAge < t.maxAge {
			t.maxAge = r.cfg.PolicyMaxAge
		}
		if !seen || r.cfg.GracePeriod < t.grace {
			t.grace = r.cfg.GracePeriod
		}
		scopes[r.policy] = t
	}
	every := time.Minute
	for pc, t := range scopes {
		pc.maxAge.Store(int64(t.maxAge))
		pc.grace.Store(int64(t.grace))
		every = min(every, max(t.grace/4, time.Second))
	}
	svc.sweepEvery.Store(int64(every))
}

// mailingRealm is the site block that sends a notice the gateway itself or
// the operator causes: of the loaded blocks of scope ("" for any) with email
// configured, the first by scope and issuer, so that the choice does not
// change from one notice to the next; nil when none can send email.
func (svc *Service) mailingRealm(scope string) *Realm {
	svc.realmsMu.Lock()
	defer svc.realmsMu.Unlock()
	var best *Realm
	for r := range svc.realms {
		if r.cfg.Mailer == nil || scope != "" && r.cfg.Scope != scope {
			continue
		}
		if best == nil || r.cfg.Scope < best.cfg.Scope || r.cfg.Scope == best.cfg.Scope && r.cfg.Issuer < best.cfg.Issuer {
			best = r
		}
	}
	return best
}

// Close stops the background work, flushes activity and closes the store.
func (svc *Service) Close() error {
	var err error
	svc.closeOnce.Do(func() {
		close(svc.stop)
		<-svc.done
		if ierr := svc.Identity.Close(); ierr != nil {
			svc.logger.Error("close identity verification", zap.Error(ierr))
		}
		if aerr := svc.Audit.Close(); aerr != nil {
			svc.logger.Error("close audit log", zap.Error(aerr))
		}
		err = svc.Store.Close()
	})
	return err
}

// heldAAD binds sealed held cookies to their session, so a record's blob
// cannot be moved to another session.
func heldAAD(k session.Key) []byte { return append([]byte("held:"), k[:]...) }

func (svc *Service) toRecord(s *session.Session) (storage.Session, error) {
	rec := storage.Session{
		ID: s.Key.String(), User: s.User, State: uint8(s.State), AAL: s.AAL, MustEnrol: s.MustEnrol,
		Scope: s.Scope, Role: s.Role,
		Next: s.Next, CreatedAt: s.CreatedAt, AuthAt: s.AuthAt, LastSeen: s.LastSeen(),
		ExpiresAt: s.ExpiresAt, RemoteAddr: s.RemoteAddr, UserAgent: s.UserAgent, Version: s.Version(),
	}
	for _, b := range s.Bindings() {
		rec.Bindings = append(rec.Bindings, storage.Binding{Name: b.Name, Hash: append([]byte(nil), b.Hash[:]...)})
	}
	if len(s.Held) > 0 {
		plain, err := json.Marshal(s.Held)
		if err != nil {
			return rec, err
		}
		if rec.HeldCookies, err = svc.box.Seal(plain, heldAAD(s.Key)); err != nil {
			return rec, fmt.Errorf("seal held cookies: %w", err)
		}
	}
	return rec, nil
}

func (svc *Service) fromRecord(rec storage.Session) (*session.Session, error) {
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
	s.SetVersion(rec.Version)
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
		plain, err := svc.box.Open(rec.HeldCookies, heldAAD(k))
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
func (svc *Service) saveSession(ctx context.Context, s, old *session.Session) error {
	if s.State == session.Anonymous && (old == nil || old.State == session.Anonymous) {
		return nil // pre-sign-in sessions live in memory only: no transaction, no fsync
	}
	rec, err := svc.toRecord(s)
	if err != nil {
		return err
	}
	return svc.Store.Batch(ctx, func(tx storage.Tx) error {
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

// updateSession writes s's changed record if it is still stored: a
// request that began before s was rotated or ended (another tab's, or
// another instance's) must not bring its record back.
func (svc *Service) updateSession(ctx context.Context, s *session.Session) error {
	rec, err := svc.toRecord(s)
	if err != nil {
		return err
	}
	return svc.Store.Batch(ctx, func(tx storage.Tx) error {
		if _, err := tx.Session(rec.ID); errors.Is(err, storage.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return tx.PutSession(rec)
	})
}

// CSRFToken is the CSRF token of s's forms: HMAC(csrf key, session key).
func (svc *Service) CSRFToken(s *session.Session) string {
	if s == nil {
		return ""
	}
	m := hmac.New(sha256.New, svc.csrfKey)
	m.Write(s.Key[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Now is the service's clock.
func (svc *Service) Now() time.Time { return svc.now() }
