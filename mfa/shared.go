package mfa

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// A store several instances share (Options.Shared) keeps each instance's
// memory in step with the others. The per-request check still reads
// memory only; what changes is how an instance learns of the others'
// writes:
//
//   - With a change feed (storage.ChangeFeed, the PostgreSQL store), the
//     instance reads the changes since its last position when the store
//     announces one, and at the latest every second, and applies each: a
//     session's record is read again (present: loaded if not held, its
//     activity taken if held; absent: the session stops working here), a
//     policy setting reloads that scope's policy. The whole state is read
//     only at start and when the position fell behind the pruned log
//     (after an outage longer than the log keeps changes).
//   - Without one, the instance reads every stored session and policy each
//     second.
//
// Activity is in the feed but not announced (the store logs activity-only
// updates quietly, see storage/postgres): it is written every few seconds
// for every active session, and an instance needs it only for idle
// expiry, which the once-a-second read serves well enough, so the flushes
// wake no one. Everything a user or an admin does (sign-in, sign-out,
// revocation, policy) is announced and reaches the others at once.
//
// Failing closed: while the changes cannot be read, revocations made
// elsewhere cannot be learned; past the outage limit StoreDown says so,
// and signed-in requests are refused until a read succeeds again.

// feedPage is how many changes one read returns at most.
const feedPage = 1000

// syncTimeout bounds one catch-up, so that a database that stopped
// answering cannot hold the background loop.
const syncTimeout = 10 * time.Second

// sharedSync is the state an instance on a shared store keeps to follow
// the others.
type sharedSync struct {
	mu     sync.Mutex         // one catch-up at a time (the loop, tests)
	feed   storage.ChangeFeed // nil: read everything each second
	pos    storage.FeedPosition
	behind bool // pos is lost: read everything next time

	notices  <-chan struct{} // nil without a feed: never ready
	prunedAt time.Time       // the background loop's own

	failingSince atomic.Int64              // unix ns of the first failed catch-up in a row; 0: in step
	syncedAt     atomic.Pointer[time.Time] // the end of the last catch-up that succeeded (the load counts)
	listenerDown atomic.Bool
	fullReads    atomic.Int64 // whole-state reads since Open (the load counts), for tests
	changesRead  atomic.Int64 // changes applied, for tests
}

// openShared sets up following a shared store, before the sessions are
// loaded: the feed's position is taken first, so that a change committed
// during the load is read again rather than lost.
func (svc *Service) openShared() error {
	if !svc.shared {
		return nil
	}
	now := svc.now()
	svc.sync.syncedAt.Store(&now)
	feed := storage.FeedOf(svc.Store)
	if feed == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	pos, err := feed.Head(ctx)
	if err != nil {
		return fmt.Errorf("mfa: shared store: %w", err)
	}
	svc.sync.feed, svc.sync.pos = feed, pos
	svc.sync.prunedAt = time.Now() // the first prune a minute after start
	svc.sync.fullReads.Add(1)      // load is the first
	// Listening ends when the store closes.
	svc.sync.notices = feed.Listen(context.Background(), svc.listenerReport)
	return nil
}

// listenerReport logs the listener's state changes once each, not every
// failed attempt while the database is away.
func (svc *Service) listenerReport(err error) {
	switch {
	case err == nil:
		if svc.sync.listenerDown.Swap(false) {
			svc.logger.Info("shared store: change listener connected again; catching up")
		}
	case !svc.sync.listenerDown.Swap(true):
		svc.logger.Warn("shared store: change listener lost; reading changes every second until it is back", zap.Error(err))
	default:
		svc.logger.Debug("shared store: change listener still down", zap.Error(err))
	}
}

// pruneEvery is how often an instance prunes the shared change log.
const pruneEvery = time.Minute

// syncTick is the background loop's once-a-second catch-up. It also ages
// the table's record of sessions removed here, which keeps a session ended
// here from coming back from a read that began before its deletion, and
// now and then prunes the change log.
func (svc *Service) syncTick() {
	svc.catchUp()
	svc.Sessions.Age()
	if svc.sync.feed != nil && time.Since(svc.sync.prunedAt) >= pruneEvery {
		svc.sync.prunedAt = time.Now()
		svc.pruneChanges()
	}
}

// pruneChanges prunes the shared change log, and returns how many changes
// it deleted.
func (svc *Service) pruneChanges() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	n, err := svc.sync.feed.Prune(ctx)
	switch {
	case err != nil:
		svc.logger.Warn("shared store: prune the change log", zap.Error(err))
	case n > 0:
		svc.logger.Debug("shared store: change log pruned", zap.Int64("changes", n))
	}
	return n
}

// catchUp brings the table and the policies in step with the store: by
// reading the changes, or everything when there is no feed or the
// position was lost.
func (svc *Service) catchUp() {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	svc.sync.mu.Lock()
	err := svc.catchUpLocked(ctx)
	svc.sync.mu.Unlock()
	svc.noteSync(err)
}

func (svc *Service) catchUpLocked(ctx context.Context) error {
	if svc.sync.feed == nil || svc.sync.behind {
		return svc.readAllLocked(ctx)
	}
	for {
		cs, next, err := svc.sync.feed.Changes(ctx, svc.sync.pos, feedPage)
		if errors.Is(err, storage.ErrFeedBehind) {
			svc.logger.Warn("shared store: changes since the last read were pruned; reading every session again", zap.Error(err))
			return svc.readAllLocked(ctx)
		}
		if err != nil {
			return err
		}
		reset, err := svc.applyChanges(ctx, cs)
		if err != nil {
			return err // the position stays: read them again
		}
		if reset {
			return svc.readAllLocked(ctx)
		}
		svc.sync.pos = next
		svc.sync.changesRead.Add(int64(len(cs)))
		if len(cs) < feedPage {
			return nil
		}
	}
}

// noteSync records whether the instance is in step, for StoreDown, and
// logs the first failure in a row and the recovery.
func (svc *Service) noteSync(err error) {
	if err == nil {
		now := svc.now()
		svc.sync.syncedAt.Store(&now)
		if since := svc.sync.failingSince.Swap(0); since != 0 {
			svc.logger.Info("shared store: in step again", zap.Duration("after", svc.now().Sub(time.Unix(0, since))))
		}
		return
	}
	if svc.sync.failingSince.CompareAndSwap(0, svc.now().UnixNano()) {
		svc.logger.Error("shared store: cannot learn other instances' changes; signed-in traffic goes on from memory for a while",
			zap.Duration("for", svc.outageLimit), zap.Error(err))
		return
	}
	svc.logger.Debug("shared store: still out of step", zap.Error(err))
}

// stuckSlack is how much longer than the outage limit a catch-up may be
// missing altogether (not failing: not run, the background loop being held
// up elsewhere) before the instance counts as out of step. It covers the
// once-a-second tick, so that a short limit does not trip between ticks.
const stuckSlack = 2 * time.Second

// outOfStep reports whether the instance has not learned other instances'
// changes for longer than the outage limit: its catch-ups have failed for
// that long, or none has succeeded for that long and a little more.
func (svc *Service) outOfStep(now time.Time) bool {
	if since := svc.sync.failingSince.Load(); since != 0 && now.UnixNano()-since > int64(svc.outageLimit) {
		return true
	}
	at := svc.sync.syncedAt.Load()
	return at != nil && now.Sub(*at) > svc.outageLimit+stuckSlack
}

// storedSession is a record read again for a change: absent when deleted.
type storedSession struct {
	rec     storage.Session
	present bool
	held    *session.Session // what the table held before the read
}

// applyChanges applies one page of changes. It reports a change that asks
// for the whole state to be read again.
func (svc *Service) applyChanges(ctx context.Context, cs []storage.Change) (reset bool, err error) {
	sessions := map[string]*storedSession{}
	scopes := map[string]bool{}
	for _, c := range cs {
		switch c.Kind {
		case storage.SessionChanged, storage.SessionSeen:
			k, err := session.ParseKey(c.ID)
			if err != nil {
				continue // not one of ours
			}
			if sessions[c.ID] == nil {
				sessions[c.ID] = &storedSession{held: svc.Sessions.Get(k)}
			}
		case storage.SettingChanged:
			if scope, ok := strings.CutPrefix(c.ID, policyKey("")); ok {
				scopes[scope] = true
			}
			// Other settings (widget identity) are refreshed by their
			// owners on their own schedule.
		default:
			return true, nil
		}
	}
	if len(sessions) > 0 {
		err := svc.Store.View(ctx, func(tx storage.Tx) error {
			for _, st := range sessions {
				st.present = false // in case the store runs fn again
			}
			if r, ok := tx.(storage.SessionReader); ok {
				ids := make([]string, 0, len(sessions))
				for id := range sessions {
					ids = append(ids, id)
				}
				return r.SessionsByID(ids, func(rec storage.Session) error {
					if st := sessions[rec.ID]; st != nil {
						st.rec, st.present = rec, true
					}
					return nil
				})
			}
			for id, st := range sessions {
				rec, err := tx.Session(id)
				switch {
				case errors.Is(err, storage.ErrNotFound):
				case err != nil:
					return err
				default:
					st.rec, st.present = rec, true
				}
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("read changed sessions: %w", err)
		}
		svc.applySessions(sessions)
	}
	for scope := range scopes {
		if err := svc.reloadPolicy(ctx, scope); err != nil {
			return false, err
		}
	}
	return false, nil
}

// applySessions makes the table agree with the records read again.
func (svc *Service) applySessions(read map[string]*storedSession) {
	now := svc.now()
	svc.undeletedMu.Lock()
	defer svc.undeletedMu.Unlock()
	for id, st := range read {
		k, _ := session.ParseKey(id) // parsed before
		switch {
		case !st.present:
			// Ended on another instance (or here): stop it here too. The
			// change that named it committed before this read, so its
			// record, written then, is gone for good: whatever this table
			// holds under the key goes, even a copy a request read from
			// the store since the changes were listed (readThrough), and
			// such a read still under way is not taken.
			if cur := svc.Sessions.Get(k); cur != nil && cur.State != session.Anonymous {
				svc.Sessions.Remove(k)
			}
			svc.Sessions.MarkGone(k)
		case st.held != nil:
			svc.takeStored(st.held, st.rec)
		default:
			if _, refused := svc.undeleted[id]; refused {
				continue // ended here, its deletion still to be stored
			}
			s, err := svc.fromRecord(st.rec)
			if err != nil || (!s.ExpiresAt.IsZero() && now.After(s.ExpiresAt)) {
				continue
			}
			svc.Sessions.Revive(s) // started elsewhere, unless ended here lately
		}
	}
}

// takeStored brings a held session up to its record as another instance
// stored it: the activity recorded there (so it is not idle here), and a
// change made there in place, such as the app's refreshed cookie (a newer
// version replaces the held copy).
func (svc *Service) takeStored(held *session.Session, rec storage.Session) {
	held.SeenElsewhere(rec.LastSeen)
	if rec.Version <= held.Version() {
		return
	}
	if fresh, err := svc.fromRecord(rec); err == nil {
		fresh.SeenElsewhere(held.LastSeen())
		svc.Sessions.Refresh(held, fresh)
	}
}

// reloadPolicy reads a scope's policy again, if this instance uses it.
func (svc *Service) reloadPolicy(ctx context.Context, scope string) error {
	svc.pol.mu.Lock()
	pc := svc.pol.m[scope]
	svc.pol.mu.Unlock()
	if pc == nil {
		return nil // read when first used
	}
	p, err := svc.loadPolicy(ctx, scope, *pc.def.Load())
	if err != nil {
		return err
	}
	pc.cur.Store(&cachedPolicy{p: p, loaded: svc.now()})
	return nil
}

// SyncSessions reads the whole shared state again, as at start: the
// stored sessions and the policies. The background loop does it only when
// it has no change feed to follow, or lost its place in it; tests call it
// to be in step at once.
func (svc *Service) SyncSessions() {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	svc.sync.mu.Lock()
	err := svc.readAllLocked(ctx)
	svc.sync.mu.Unlock()
	svc.noteSync(err)
	svc.Sessions.Age()
}

// readAllLocked makes the in-memory table agree with the stored sessions,
// and re-reads the policies: a signed-in session whose record is gone was
// ended elsewhere and stops working here; a stored session this instance
// does not hold was started elsewhere and is loaded. Anonymous sessions
// live in memory only and are left alone. With a feed, its position is
// taken first, so that nothing committed during the read is missed.
func (svc *Service) readAllLocked(ctx context.Context) error {
	var pos storage.FeedPosition
	if svc.sync.feed != nil {
		var err error
		if pos, err = svc.sync.feed.Head(ctx); err != nil {
			svc.sync.behind = true
			return err
		}
	}
	if err := svc.readAll(ctx); err != nil {
		svc.sync.behind = svc.sync.feed != nil
		return err
	}
	svc.sync.pos, svc.sync.behind = pos, false
	svc.sync.fullReads.Add(1)
	return nil
}

func (svc *Service) readAll(ctx context.Context) error {
	// What this instance held before the read began: a session it started
	// was stored before it entered the table, so the read sees it unless it
	// was ended since.
	held := svc.Sessions.Snapshot(func(s *session.Session) bool { return s.State != session.Anonymous })
	stored := map[session.Key]storage.Session{}
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		clear(stored) // in case the store runs fn again
		return tx.ForEachSession(func(rec storage.Session) error {
			if k, err := session.ParseKey(rec.ID); err == nil {
				stored[k] = rec
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read the stored sessions: %w", err)
	}
	for _, s := range held {
		rec, ok := stored[s.Key]
		if !ok {
			svc.Sessions.Remove(s.Key) // ended on another instance
			continue
		}
		svc.takeStored(s, rec)
	}
	now := svc.now()
	svc.undeletedMu.Lock()
	for k, rec := range stored {
		if _, refused := svc.undeleted[rec.ID]; refused || svc.Sessions.Get(k) != nil {
			continue // ended here, its deletion still to be stored
		}
		s, err := svc.fromRecord(rec)
		if err != nil || (!s.ExpiresAt.IsZero() && now.After(s.ExpiresAt)) {
			continue
		}
		svc.Sessions.Revive(s) // not one this instance ended lately
	}
	svc.undeletedMu.Unlock()
	svc.pol.mu.Lock()
	caches := make([]*policyCache, 0, len(svc.pol.m))
	for _, pc := range svc.pol.m {
		caches = append(caches, pc)
	}
	svc.pol.mu.Unlock()
	for _, pc := range caches {
		p, err := svc.loadPolicy(ctx, pc.scope, *pc.def.Load())
		if err != nil {
			return err
		}
		pc.cur.Store(&cachedPolicy{p: p, loaded: now})
	}
	return nil
}
