package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/storage"
)

// The change feed (storage.ChangeFeed).
//
// Triggers (schema version 2) log every write to sessions and settings in
// the changes table, in the writer's transaction, and announce it with
// pg_notify on the schema's channel: PostgreSQL delivers an announcement
// at commit, to the sessions listening then, so it only ever says that
// something committed. The log is the truth; Listen's announcements and
// its signal after a reconnect only make a reader read it sooner.
//
// Versions come from a sequence, drawn at the write: two writers may
// commit in the other order, so "every version above the last one read"
// would skip the slower writer's change for good. A reader therefore keeps,
// with the highest version read, the writers its snapshot saw still
// running (pg_snapshot_xip), and the next read also returns their changes,
// whatever their versions. A writer not yet running at the snapshot draws
// its version after every version the snapshot shows, so it is above the
// position. Nothing is waited for and no gap is guessed at.

var _ storage.ChangeFeed = (*Store)(nil)

// DefaultChangeRetention is how long the change log keeps a change: a
// reader away longer (its database connection down for that long) reads
// the whole state again.
const DefaultChangeRetention = 10 * time.Minute

const (
	// listenMinDelay and listenMaxDelay bound the wait before the listener
	// connects again after a loss; it doubles from the one to the other.
	listenMinDelay = 100 * time.Millisecond
	listenMaxDelay = 10 * time.Second
	// listenIdle is how long the listener waits for an announcement before
	// it checks its connection: a peer that vanished without closing it
	// would otherwise be waited on for good.
	listenIdle  = 30 * time.Second
	pingTimeout = 5 * time.Second
)

// feedQueries are the change feed's statements.
type feedQueries struct {
	state, read, prune, listen string
}

func newFeedQueries(schema string) feedQueries {
	r := strings.NewReplacer("{s}", pgx.Identifier{schema}.Sanitize())
	return feedQueries{
		// The pruned horizon, the sequence's last value (below a position
		// when the log was reset, by a restore), the highest version kept,
		// and the writers running now, all from one snapshot.
		state: r.Replace(`SELECT
			(SELECT version FROM {s}.changes_pruned),
			(SELECT last_value FROM {s}.changes_version_seq),
			(SELECT coalesce(max(version), 0) FROM {s}.changes),
			(SELECT coalesce(array_agg(x::text::bigint), '{}') FROM pg_snapshot_xip(pg_current_snapshot()) x)`),
		read: r.Replace(`(SELECT version, kind, id FROM {s}.changes WHERE version > $1 ORDER BY version LIMIT $3)
			UNION ALL
			(SELECT version, kind, id FROM {s}.changes WHERE txid = ANY($2) AND version <= $1)`),
		// One statement: the horizon moves with the rows it deletes.
		prune: r.Replace(`WITH gone AS (
				DELETE FROM {s}.changes WHERE at <= clock_timestamp() - $1::bigint * interval '1 microsecond' RETURNING version
			)
			UPDATE {s}.changes_pruned SET version = greatest(version, (SELECT max(version) FROM gone))
			RETURNING (SELECT count(*) FROM gone)`),
		listen: "LISTEN " + pgx.Identifier{channelName(schema)}.Sanitize(),
	}
}

// Head implements storage.ChangeFeed.
func (s *Store) Head(ctx context.Context) (storage.FeedPosition, error) {
	_, pos, err := s.readFeed(ctx, nil, 0)
	return pos, err
}

// Changes implements storage.ChangeFeed.
func (s *Store) Changes(ctx context.Context, pos storage.FeedPosition, limit int) ([]storage.Change, storage.FeedPosition, error) {
	return s.readFeed(ctx, &pos, max(limit, 1))
}

// readFeed reads the changes since pos (nil: none, the head only) in one
// read-only snapshot. REPEATABLE READ, not SERIALIZABLE: a serialisable
// reader of the log would only add conflicts for the writers to retry.
func (s *Store) readFeed(ctx context.Context, pos *storage.FeedPosition, limit int) ([]storage.Change, storage.FeedPosition, error) {
	var out []storage.Change
	var next storage.FeedPosition
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var pruned, last, newest int64
		var open []int64
		if err := tx.QueryRow(ctx, s.fq.state).Scan(&pruned, &last, &newest, &open); err != nil {
			return fmt.Errorf("read the change log's state: %w", err)
		}
		if pos == nil {
			next = storage.FeedPosition{Version: max(pruned, newest), Open: open}
			return nil
		}
		switch {
		case pos.Version < pruned:
			return fmt.Errorf("position %d, changes up to %d pruned: %w", pos.Version, pruned, storage.ErrFeedBehind)
		case pos.Version > last:
			return fmt.Errorf("position %d is past the log's last version %d (was the database restored?): %w", pos.Version, last, storage.ErrFeedBehind)
		}
		rows, _ := tx.Query(ctx, s.fq.read, pos.Version, pos.Open, limit)
		next = storage.FeedPosition{Version: pos.Version, Open: open}
		out = out[:0]
		for rows.Next() {
			var c storage.Change
			var kind string
			var id []byte
			if err := rows.Scan(&c.Version, &kind, &id); err != nil {
				rows.Close()
				return fmt.Errorf("read changes: %w", err)
			}
			c.Kind, c.ID = changeKind(kind), string(id)
			next.Version = max(next.Version, c.Version)
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read changes: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, storage.FeedPosition{}, fmt.Errorf("postgres: %s: change feed: %w", s.target, err)
	}
	return out, next, nil
}

// changeKind maps the log's kinds; one this build does not know asks for
// a full read, the safe answer to anything unexpected.
func changeKind(k string) storage.ChangeKind {
	switch k {
	case "session":
		return storage.SessionChanged
	case "seen":
		return storage.SessionSeen
	case "setting":
		return storage.SettingChanged
	}
	return storage.Reset
}

// Prune implements storage.ChangeFeed: it deletes the changes older than
// Options.ChangeRetention.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	return s.PruneChanges(ctx, s.retention)
}

// PruneChanges deletes the changes logged longer than olderThan ago (by the
// database's clock) and returns how many. Two instances doing it at once
// delete each row once.
func (s *Store) PruneChanges(ctx context.Context, olderThan time.Duration) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.fq.prune, olderThan.Microseconds()).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: %s: prune the change log: %w", s.target, err)
	}
	return n, nil
}

// Listen implements storage.ChangeFeed. The listener holds a connection of
// its own, outside the pool: LISTEN belongs to a session, and a pooled
// connection would carry it to whoever borrows it next.
func (s *Store) Listen(ctx context.Context, report func(error)) <-chan struct{} {
	if report == nil {
		report = func(error) {}
	}
	notices := make(chan struct{}, 1)
	if !s.listening.CompareAndSwap(false, true) {
		report(errors.New("postgres: change feed: Listen called twice"))
		return notices
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer stop()
		defer cancel()
		s.listen(ctx, notices, report)
	}()
	return notices
}

// signal tells the reader that changes may be waiting, without blocking: a
// signal already pending covers this one.
func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// listen keeps a listening connection until ctx ends, connecting again
// with a doubling, jittered delay after each loss.
func (s *Store) listen(ctx context.Context, notices chan<- struct{}, report func(error)) {
	delay := listenMinDelay
	for {
		err := s.listenOnce(ctx, func() {
			delay = listenMinDelay
			report(nil)
			signal(notices) // announcements made while away are lost: read the log
		}, notices)
		if ctx.Err() != nil {
			return
		}
		report(fmt.Errorf("postgres: %s: change listener: %w", s.target, err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay/2 + rand.N(delay/2)):
		}
		delay = min(2*delay, listenMaxDelay)
	}
}

// listenOnce connects, listens and passes announcements on until the
// connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, connected func(), notices chan<- struct{}) error {
	conn, err := pgx.ConnectConfig(ctx, s.connConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, s.fq.listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			signal(notices)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while: make sure the connection is still there.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("check the connection: %w", err)
			}
		default:
			return fmt.Errorf("wait for announcements: %w", err)
		}
	}
}
