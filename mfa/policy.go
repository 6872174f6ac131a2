package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Policy is a team's security policy for one scope (a population such as
// agents or end users), stored in the store so admins can change it at run
// time and every instance sharing the store picks it up.
type Policy struct {
	RequireSet  bool      `json:"require_set,omitempty"` // Require2FA was set at run time (else the Caddyfile's counts)
	Require2FA  bool      `json:"require_2fa"`
	Since       time.Time `json:"since,omitzero"`         // when "require 2FA" was last switched on
	IdleMinutes int       `json:"idle_minutes,omitempty"` // 0: the Caddyfile's idle_timeout
	// NoRemember forbids "remember this browser": every sign-in asks for
	// the second factor.
	NoRemember bool `json:"no_remember,omitempty"`
	// LoginAlerts emails users when they sign in from a browser they have
	// not used before.
	LoginAlerts bool `json:"login_alerts,omitempty"`
}

// idle returns the policy's idle timeout, or def.
func (p Policy) idle(def time.Duration) time.Duration {
	if p.IdleMinutes > 0 {
		return time.Duration(p.IdleMinutes) * time.Minute
	}
	return def
}

func policyKey(scope string) string { return "policy/" + scope }

// policyCache serves a scope's policy from memory. A change made on this
// instance is seen at once; a change made elsewhere (a shared store) within
// the cache age, refreshed in the background so no request waits on the store.
// Its settings come from the configs sharing the service and change on a
// reload while requests read them, hence atomics.
type policyCache struct {
	scope      string
	grace      atomic.Int64           // unenrolled sessions from before enforcement end after this
	maxAge     atomic.Int64           // how stale a store read may be
	def        atomic.Pointer[Policy] // the Caddyfile's starting values
	cur        atomic.Pointer[cachedPolicy]
	refreshing atomic.Bool
}

func (pc *policyCache) gracePeriod() time.Duration { return time.Duration(pc.grace.Load()) }

type cachedPolicy struct {
	p      Policy
	loaded time.Time
}

// policies holds the caches of one Service, by scope.
type policies struct {
	mu sync.Mutex
	m  map[string]*policyCache
}

// policyFor returns the scope's cache, created (and loaded) on first use.
// def is the Caddyfile's starting policy for a scope nothing was stored for;
// the cache age and grace period come from the realms using it (retuneLocked).
func (svc *Service) policyFor(scope string, def Policy) (*policyCache, error) {
	svc.pol.mu.Lock()
	defer svc.pol.mu.Unlock()
	if svc.pol.m == nil {
		svc.pol.m = map[string]*policyCache{}
	}
	pc := svc.pol.m[scope]
	if pc == nil {
		pc = &policyCache{scope: scope}
		pc.maxAge.Store(int64(DefaultPolicyMaxAge))
		pc.grace.Store(int64(DefaultGracePeriod))
	}
	// A new or reloaded config may bring other starting values: re-read.
	if old := pc.def.Load(); old == nil || *old != def {
		pc.def.Store(&def)
		p, err := svc.loadPolicy(context.Background(), scope, def)
		if err != nil {
			return nil, err
		}
		pc.cur.Store(&cachedPolicy{p: p, loaded: svc.now()})
	}
	svc.pol.m[scope] = pc
	return pc, nil
}

// scopePolicy returns the scope's cache as the configs set it up; for a
// scope no config names (the command line on a bare database) it starts
// from the zero policy.
func (svc *Service) scopePolicy(scope string) (*policyCache, error) {
	svc.pol.mu.Lock()
	pc := svc.pol.m[scope]
	svc.pol.mu.Unlock()
	if pc != nil {
		return pc, nil
	}
	return svc.policyFor(scope, Policy{})
}

func (svc *Service) loadPolicy(ctx context.Context, scope string, def Policy) (Policy, error) {
	var stored Policy
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		stored, err = readPolicy(tx, scope)
		return err
	})
	if err != nil {
		return def, fmt.Errorf("load policy %q: %w", scope, err)
	}
	return merge(def, stored), nil
}

// readPolicy reads what was set at run time (zero if nothing).
func readPolicy(tx storage.Tx, scope string) (Policy, error) {
	var p Policy
	raw, err := tx.Setting(policyKey(scope))
	if errors.Is(err, storage.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(raw, &p)
}

// merge lays what was set at run time over the Caddyfile's starting values,
// field by field: setting the timeout from the command line does not turn
// off a require_2fa the Caddyfile switched on.
func merge(def, stored Policy) Policy {
	p := def
	if stored.RequireSet {
		p.RequireSet, p.Require2FA, p.Since = true, stored.Require2FA, stored.Since
	}
	if stored.IdleMinutes > 0 {
		p.IdleMinutes = stored.IdleMinutes
	}
	p.NoRemember, p.LoginAlerts = stored.NoRemember, stored.LoginAlerts
	return p
}

// get returns the cached policy; a stale entry is refreshed in the
// background and served meanwhile.
func (pc *policyCache) get(svc *Service) Policy { return pc.getAt(svc, svc.now()) }

// getAt is get for a caller that already read the clock (the per-request check).
func (pc *policyCache) getAt(svc *Service, now time.Time) Policy {
	c := pc.cur.Load()
	if now.Sub(c.loaded) > time.Duration(pc.maxAge.Load()) && pc.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer pc.refreshing.Store(false)
			p, err := svc.loadPolicy(context.Background(), pc.scope, *pc.def.Load())
			if err != nil {
				svc.logger.Error("refresh policy", zap.String("scope", pc.scope), zap.Error(err))
				return
			}
			pc.cur.Store(&cachedPolicy{p: p, loaded: svc.now()})
		}()
	}
	return c.p
}

// update changes the stored policy and this instance's cache at once.
func (pc *policyCache) update(ctx context.Context, svc *Service, fn func(*Policy) error) (Policy, error) {
	var p Policy
	err := svc.Store.Update(ctx, func(tx storage.Tx) error {
		stored, err := readPolicy(tx, pc.scope)
		if err != nil {
			return err
		}
		if err := fn(&stored); err != nil {
			return err
		}
		b, err := json.Marshal(stored)
		if err != nil {
			return err
		}
		p = merge(*pc.def.Load(), stored)
		return tx.PutSetting(policyKey(pc.scope), b)
	})
	if err != nil {
		return Policy{}, err
	}
	pc.cur.Store(&cachedPolicy{p: p, loaded: svc.now()})
	if p.IdleMinutes > 0 {
		svc.useIdle(time.Duration(p.IdleMinutes) * time.Minute)
	}
	return p, nil
}

// DefaultPolicyMaxAge is how stale a policy read from the store may be.
const DefaultPolicyMaxAge = 5 * time.Minute

// DefaultGracePeriod is how long sessions that predate "require 2FA" may go
// on without it, as HappyFox users know it: 7 days.
const DefaultGracePeriod = 7 * 24 * time.Hour

// enforceGrace ends sessions of users without a second factor that started
// before "require 2FA" was switched on, once the grace period has passed.
// Sessions made after the switch are held to it at sign-in instead.
func (svc *Service) enforceGrace(ctx context.Context, now time.Time) []*session.Session {
	svc.pol.mu.Lock()
	var due []*policyCache
	for _, pc := range svc.pol.m {
		p := pc.cur.Load().p
		if p.Require2FA && !p.Since.IsZero() && now.After(p.Since.Add(pc.gracePeriod())) {
			due = append(due, pc)
		}
	}
	svc.pol.mu.Unlock()
	var ended []*session.Session
	for _, pc := range due {
		since := pc.cur.Load().p.Since
		cands := svc.Sessions.Snapshot(func(s *session.Session) bool {
			return signedIn(s) && (s.Scope == pc.scope || s.Scope == "") && s.CreatedAt.Before(since)
		})
		for _, s := range cands {
			u, err := svc.user(ctx, s.User)
			if err != nil || HasFactor(u) {
				continue
			}
			svc.Sessions.Remove(s.Key)
			ended = append(ended, s)
		}
	}
	return svc.endedHere(ended)
}
