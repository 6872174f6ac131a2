// Package audit is the gateway's log of security events: enrolments,
// challenges, recovery, sign-ins and sign-outs, policy and timeout changes,
// admin resets, revoked and expired sessions. Admins page through it, filter
// it by user and type, and export it as JSON Lines or CSV; it is kept for a
// retention period and then pruned.
//
// Recording happens on request paths (a challenge answer, a sign-in), so
// Record only queues the event in memory and never waits for the disk; one
// background goroutine writes the queue in one storage Batch per flush
// interval. If the store falls behind and the queue is full, events are
// dropped and counted (Dropped) rather than slowing requests down: the log
// is evidence, but the gateway's availability comes first. The events still
// queued are written on Close, so a clean shutdown loses none.
//
// The log is kept in a storage.AuditStore (Store.Audit), not the whole
// Store, so that it can live apart from the gateway's other state.
//
// Events never hold secrets; see Event.
package audit

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
)

// Defaults for Options.
const (
	DefaultRetention = 90 * 24 * time.Hour
	// DefaultMaxEvents caps the log besides the retention: a client with one
	// valid password can make events all day. About 420 bytes an event, so
	// some 100 MB.
	DefaultMaxEvents     = 250_000
	DefaultFlushInterval = time.Second
	DefaultBuffer        = 8192

	pruneInterval = time.Hour

	// maxKeptBuffer bounds the encoding buffer kept between writes, so a
	// burst does not pin its memory for good.
	maxKeptBuffer = 4 << 20 // a full default queue of typical events
)

// Options configures New. Zero values mean the defaults.
type Options struct {
	Retention     time.Duration // how long events are kept; default 90 days
	MaxEvents     int           // the most events kept, oldest pruned first; default 250,000
	FlushInterval time.Duration // how often queued events are written; default 1s
	Buffer        int           // events queued before Record starts dropping; default 8192
	Now           func() time.Time
	Logger        *zap.Logger
}

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	store      storage.AuditStore
	now        func() time.Time
	logger     *zap.Logger
	retention  time.Duration
	maxEvents  int
	flushEvery time.Duration
	buffer     int

	mu     sync.Mutex
	queue  []entry // waiting for the next write
	closed bool    // the authority; closing mirrors it for Record's fast path

	// queued counts the queue's entries plus those that Records have
	// reserved room for and are still preparing, so that a full queue is
	// refused before any work (a flood of drops stays cheap).
	queued  atomic.Int64
	closing atomic.Bool
	full    atomic.Uint64 // events dropped by Record: the queue was full
	lost    atomic.Uint64 // events lost in a failed write
	written atomic.Uint64 // events stored
	pruned  atomic.Uint64 // events pruned past the retention period
	trimmed atomic.Uint64 // events pruned over maxEvents
	folded  atomic.Uint64 // repeats counted into a summary instead of written
	repeats repeats

	// Owned by the run goroutine.
	spare         []entry // the previous queue, emptied, reused to avoid allocations
	buf           []byte  // encoded events of the current write, reused
	recs          [][]byte
	reportedDrops uint64

	flushReq  chan chan error
	kick      chan struct{} // the queue is half full: write now
	stop      chan struct{}
	done      chan struct{} // closed when run returns
	closeOnce sync.Once
	closeErr  error // the final write's error, set before done is closed
}

// New returns a Log writing to store and starts its background goroutine,
// which writes the queued events in one storage Batch every FlushInterval
// (or as soon as half of Buffer is queued) and prunes events older than
// Retention at start and then hourly. Close stops it.
func New(store storage.AuditStore, opts Options) *Log {
	l := newUnstarted(store, opts)
	go l.run()
	return l
}

// newUnstarted is New without the goroutine.
func newUnstarted(store storage.AuditStore, opts Options) *Log {
	l := &Log{
		store:      store,
		now:        opts.Now,
		logger:     opts.Logger,
		retention:  opts.Retention,
		maxEvents:  opts.MaxEvents,
		flushEvery: opts.FlushInterval,
		buffer:     opts.Buffer,
		flushReq:   make(chan chan error),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.logger == nil {
		l.logger = zap.NewNop()
	}
	if l.retention <= 0 {
		l.retention = DefaultRetention
	}
	if l.maxEvents <= 0 {
		l.maxEvents = DefaultMaxEvents
	}
	if l.flushEvery <= 0 {
		l.flushEvery = DefaultFlushInterval
	}
	if l.buffer <= 0 {
		l.buffer = DefaultBuffer
	}
	return l
}

// Record queues e for the next write. It never blocks on the store: when
// Buffer events are already waiting, e is dropped and counted (see Dropped)
// and the drop is logged at the next flush. After Close, e is dropped
// silently.
//
// A zero e.Time is set to now, as is a time the store cannot hold (before
// 1970 or after 2262). Long fields are cut (user agent, actor, subject,
// address and detail values to 256 bytes, at most 16 detail keys, the
// first in sorted order). Record copies e.Detail, so the caller may reuse
// the map.
func (l *Log) Record(e Event) {
	if l.closing.Load() {
		return
	}
	if foldable(e.Type) {
		now := e.Time
		if now.IsZero() {
			now = l.now()
		}
		if l.repeats.fold(&e, now) {
			l.folded.Add(1)
			return
		}
	}
	// Load first: while the queue stays full, drops then only read the
	// shared counter instead of bouncing its cache line between CPUs.
	if l.queued.Load() >= int64(l.buffer) {
		l.full.Add(1)
		return
	}
	if l.queued.Add(1) > int64(l.buffer) { // filled up since the Load
		l.queued.Add(-1)
		l.full.Add(1)
		return
	}
	ent := l.clean(&e)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.queued.Add(-1)
		return
	}
	l.queue = append(l.queue, ent)
	half := len(l.queue) == max(l.buffer/2, 1)
	l.mu.Unlock()
	if half {
		// Write early rather than wait for the tick, so a burst (a
		// password-spraying run failing challenges) is written instead of
		// dropped as long as the store keeps up.
		select {
		case l.kick <- struct{}{}:
		default: // a write is already due
		}
	}
}

// Dropped is the number of events lost so far: dropped by Record because
// the queue was full, or lost in a failed write.
func (l *Log) Dropped() uint64 { return l.full.Load() + l.lost.Load() }

// Stats are the log's counts since it started.
type Stats struct {
	Written     uint64 // events stored
	QueueFull   uint64 // dropped by Record: the queue was full
	WriteFailed uint64 // lost in a failed write
	Pruned      uint64 // deleted past the retention period
	Trimmed     uint64 // deleted over the size cap (MaxEvents)
	Folded      uint64 // repeats counted into a summary record instead of stored (see RepeatWindow)
}

// Stats reads the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Written: l.written.Load(), QueueFull: l.full.Load(), WriteFailed: l.lost.Load(),
		Pruned: l.pruned.Load(), Trimmed: l.trimmed.Load(), Folded: l.folded.Load(),
	}
}

// Flush writes every event queued before the call and returns the write's
// error. If ctx ends first, Flush returns ctx.Err(); the events are still
// written by the background goroutine. After Close it returns nil: Close
// wrote everything.
func (l *Log) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case l.flushReq <- reply:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes the queued events, stops the background goroutine and
// returns the final write's error. It waits for the store (a stuck store
// makes it wait too). Record after Close drops events silently; Query and
// Export keep working (the store is the caller's to close, after this).
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		<-l.done
	})
	return l.closeErr
}

func (l *Log) run() {
	defer close(l.done)
	flush := time.NewTicker(l.flushEvery)
	defer flush.Stop()
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	l.prune(context.Background())
	for {
		select {
		case <-flush.C:
			_ = l.write() // logged by write
		case <-l.kick:
			_ = l.write()
		case reply := <-l.flushReq:
			reply <- l.write()
		case <-prune.C:
			l.prune(context.Background())
		case <-l.stop:
			l.closeErr = l.write() // closing is set: every fold window ends
			return
		}
	}
}

// write stores the queue in one Batch. Only run calls it, so writes never
// overlap and the spare slice needs no lock.
func (l *Log) write() error {
	if d := l.Dropped(); d > l.reportedDrops {
		l.logger.Warn("audit events dropped",
			zap.Uint64("dropped", d-l.reportedDrops), zap.Uint64("total", d), zap.Int("buffer", l.buffer))
		l.reportedDrops = d
	}
	l.mu.Lock()
	batch := l.queue
	l.queue = l.spare
	l.queued.Add(-int64(len(batch)))
	l.mu.Unlock()
	for _, e := range l.repeats.due(l.now(), l.closing.Load()) {
		batch = append(batch, l.clean(&e))
	}
	defer func() {
		clear(batch) // let the strings go
		l.spare = batch[:0]
	}()
	if len(batch) == 0 {
		return nil
	}

	// Encode outside the transaction: Batch may run fn more than once
	// and holds the store's write lock while it does. All records share
	// one buffer; the store copies what it keeps.
	buf, recs := l.buf[:0], l.recs[:0]
	for i := range batch {
		start := len(buf)
		buf = appendEntry(buf, &batch[i])
		recs = append(recs, buf[start:len(buf):len(buf)])
	}
	if cap(buf) <= maxKeptBuffer {
		l.buf, l.recs = buf, recs
	}
	defer clear(recs)
	err := l.store.Batch(context.Background(), func(tx storage.AuditTx) error {
		for i, data := range recs {
			if err := tx.AppendAudit(batch[i].Time, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Not retried: a store that fails a write now will most likely
		// fail again, and retrying would hold the queue's memory.
		l.lost.Add(uint64(len(batch)))
		l.reportedDrops += uint64(len(batch)) // logged here, not again as dropped
		l.logger.Error("audit events lost: write failed", zap.Int("events", len(batch)), zap.Error(err))
		return err
	}
	l.written.Add(uint64(len(batch)))
	return nil
}

// prune deletes events older than the retention period.
func (l *Log) prune(ctx context.Context) {
	before := l.now().Add(-l.retention)
	var n, trimmed int
	err := l.store.Update(ctx, func(tx storage.AuditTx) error {
		var err error
		if n, err = tx.PruneAudit(before); err != nil {
			return err
		}
		trimmed, err = tx.TrimAudit(l.maxEvents)
		return err
	})
	if err != nil {
		l.logger.Error("audit prune failed", zap.Error(err))
		return
	}
	l.pruned.Add(uint64(n))
	if n > 0 {
		l.logger.Info("audit events pruned", zap.Int("events", n), zap.Time("before", before))
	}
	if trimmed > 0 {
		total := l.trimmed.Add(uint64(trimmed))
		l.logger.Warn("audit events pruned over the size cap", zap.Int("events", trimmed), zap.Int("max_events", l.maxEvents), zap.Uint64("total", total))
	}
}

// Trimmed is how many events this log pruned over its size cap since it
// started.
func (l *Log) Trimmed() uint64 { return l.trimmed.Load() }

// clean applies Record's rules to e and copies it into an entry.
func (l *Log) clean(e *Event) entry {
	t := e.Time
	// The range a storage key holds; outside it (including the zero time)
	// the caller's clock is wrong or unset, and now is the better record.
	if t.Before(time.Unix(0, 0)) || t.Year() >= 2262 {
		t = l.now()
	}
	ent := entry{
		Time:      t.UTC(), // also drops the monotonic reading
		Type:      truncate(e.Type, maxType),
		Actor:     truncate(e.Actor, maxField),
		Subject:   truncate(e.Subject, maxField),
		Remote:    truncate(e.Remote, maxField),
		UserAgent: truncate(e.UserAgent, maxField),
	}
	if len(e.Detail) == 0 {
		return ent
	}
	d := make([]string, 0, 2*min(len(e.Detail), maxDetailCount))
	cut := false // once a key is cut, it may equal another
	add := func(k, v string) {
		if len(k) > maxDetailKey {
			k, cut = truncate(k, maxDetailKey), true
		}
		if cut {
			for i := 0; i < len(d); i += 2 {
				if d[i] == k { // keep one, as a map would
					return
				}
			}
		}
		d = append(d, k, truncate(v, maxField))
	}
	if len(e.Detail) <= maxDetailCount {
		for k, v := range e.Detail {
			add(k, v)
		}
	} else { // keep the same keys every time: the first in sorted order
		for _, k := range slices.Sorted(maps.Keys(e.Detail))[:maxDetailCount] {
			add(k, e.Detail[k])
		}
	}
	ent.detail = d
	return ent
}

// truncate cuts s to at most n bytes at a rune boundary. The result is a
// copy when cut, so a huge input is not kept alive by the queued event.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}
