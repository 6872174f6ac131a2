package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/postgres"
)

// TestChangeFeed runs the change feed's cases on one server.
func TestChangeFeed(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("LogsEveryWrite", func(t *testing.T) { testFeedLogsWrites(t, srv) })
	t.Run("ActivityNotAnnounced", func(t *testing.T) { testFeedActivityQuiet(t, srv) })
	t.Run("OutOfOrderCommits", func(t *testing.T) { testFeedOutOfOrder(t, srv) })
	t.Run("PrunedHorizon", func(t *testing.T) { testFeedPruned(t, srv) })
	t.Run("PagedReads", func(t *testing.T) { testFeedPaged(t, srv) })
	t.Run("ListenerReconnects", func(t *testing.T) { testFeedReconnect(t, srv) })
	t.Run("SessionsByID", func(t *testing.T) { testSessionsByID(t, srv) })
}

func update(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func head(t *testing.T, f storage.ChangeFeed) storage.FeedPosition {
	t.Helper()
	pos, err := f.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// changes reads everything since pos, a page at a time.
func changes(t *testing.T, f storage.ChangeFeed, pos storage.FeedPosition) ([]storage.Change, storage.FeedPosition) {
	t.Helper()
	var all []storage.Change
	for {
		cs, next, err := f.Changes(context.Background(), pos, 100)
		if err != nil {
			t.Fatal(err)
		}
		all, pos = append(all, cs...), next
		if len(cs) < 100 {
			slices.SortFunc(all, func(a, b storage.Change) int { return int(a.Version - b.Version) })
			return all, pos
		}
	}
}

func session(id string, seen time.Time) storage.Session {
	return storage.Session{ID: id, User: "u", State: 2, CreatedAt: seen, LastSeen: seen, ExpiresAt: seen.Add(time.Hour), UserAgent: "agent\x00with a NUL"}
}

func kinds(cs []storage.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind.String()+":"+c.ID)
	}
	return out
}

// testFeedLogsWrites: every write to sessions and settings is in the log,
// as what it changed; an activity-only update is "seen"; emptying a table
// asks for a full read; users are not logged.
func testFeedLogsWrites(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	pos := head(t, s)
	now := time.Now()
	update(t, s, func(tx storage.Tx) error { return tx.PutSession(session("a", now)) })
	update(t, s, func(tx storage.Tx) error {
		rec := session("a", now)
		rec.AAL = 2 // a real change
		return tx.PutSession(rec)
	})
	update(t, s, func(tx storage.Tx) error {
		rec, err := tx.Session("a")
		if err != nil {
			return err
		}
		rec.LastSeen = now.Add(3 * time.Second) // activity only
		return tx.PutSession(rec)
	})
	update(t, s, func(tx storage.Tx) error { return tx.PutUser(storage.User{ID: "u"}) })
	update(t, s, func(tx storage.Tx) error { return tx.PutSetting("policy/x", []byte("{}")) })
	update(t, s, func(tx storage.Tx) error { return tx.DeleteSession("a") })
	update(t, s, func(tx storage.Tx) error { return tx.DeleteSession("absent") })
	exec(t, dsn, "TRUNCATE mfagate.sessions")
	got, next := changes(t, s, pos)
	want := []string{"session:a", "session:a", "seen:a", "setting:policy/x", "session:a", "reset:"}
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("changes %q, want %q", kinds(got), want)
	}
	if next.Version != got[len(got)-1].Version {
		t.Fatalf("next position %d, want the last version read %d", next.Version, got[len(got)-1].Version)
	}
	if again, _ := changes(t, s, next); len(again) != 0 {
		t.Fatalf("changes read again: %q", kinds(again))
	}
}

// testFeedActivityQuiet: an activity-only update is not announced; other
// writes are, with their version, at commit.
func testFeedActivityQuiet(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	now := time.Now()
	update(t, s, func(tx storage.Tx) error { return tx.PutSession(session("a", now)) })
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `LISTEN mfagate_mfagate`); err != nil {
		t.Fatal(err)
	}
	pos := head(t, s)
	update(t, s, func(tx storage.Tx) error {
		rec := session("a", now)
		rec.LastSeen = now.Add(time.Second)
		return tx.PutSession(rec)
	})
	update(t, s, func(tx storage.Tx) error { return tx.PutSetting("k", []byte("v")) })
	got, _ := changes(t, s, pos)
	if want := []string{"seen:a", "setting:k"}; !slices.Equal(kinds(got), want) {
		t.Fatalf("changes %q, want %q", kinds(got), want)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	// Notifications arrive in commit order: the first is the setting's.
	if n.Payload != strconv.FormatInt(got[1].Version, 10) {
		t.Fatalf("first announcement %q, want the setting's version %d (the activity update %d must not be announced)", n.Payload, got[1].Version, got[0].Version)
	}
}

// testFeedOutOfOrder: a writer that drew its version first but commits
// after a later one is not skipped by a reader that read in between.
func testFeedOutOfOrder(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	pos := head(t, s)
	now := time.Now()
	wrote, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var slowErr error
	wg.Go(func() {
		first := true
		slowErr = s.Update(context.Background(), func(tx storage.Tx) error {
			if err := tx.PutSession(session("slow", now)); err != nil {
				return err
			}
			if first {
				first = false
				close(wrote)
				<-release // hold the commit
			}
			return nil
		})
	})
	<-wrote
	update(t, s, func(tx storage.Tx) error { return tx.PutSession(session("fast", now)) })
	got, mid := changes(t, s, pos)
	if want := []string{"session:fast"}; !slices.Equal(kinds(got), want) {
		t.Fatalf("changes before the slow commit %q, want %q", kinds(got), want)
	}
	close(release)
	wg.Wait()
	if slowErr != nil {
		t.Fatal(slowErr)
	}
	got2, _ := changes(t, s, mid)
	if want := []string{"session:slow"}; !slices.Equal(kinds(got2), want) {
		t.Fatalf("changes after the slow commit %q, want %q", kinds(got2), want)
	}
	if got2[0].Version >= got[0].Version {
		t.Fatalf("the slow writer's version %d is not below the fast one's %d: the case was not exercised", got2[0].Version, got[0].Version)
	}
}

// testFeedPruned: pruning deletes old changes and moves the horizon; a
// position behind it is refused with ErrFeedBehind, a new head is not.
func testFeedPruned(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	old := head(t, s)
	for i := range 5 {
		update(t, s, func(tx storage.Tx) error { return tx.PutSetting("k", []byte{byte(i)}) })
	}
	if n, err := s.PruneChanges(context.Background(), time.Hour); err != nil || n != 0 {
		t.Fatalf("prune of an hour-old log: %d rows, %v; want none", n, err)
	}
	if got, _ := changes(t, s, old); len(got) != 5 {
		t.Fatalf("%d changes before pruning, want 5", len(got))
	}
	n, err := s.PruneChanges(context.Background(), 0)
	if err != nil || n != 5 {
		t.Fatalf("prune: %d rows, %v; want 5", n, err)
	}
	if left := query[int](t, dsn, "SELECT count(*)::int FROM mfagate.changes"); left[0] != 0 {
		t.Fatalf("%d changes left after pruning", left[0])
	}
	if _, _, err := s.Changes(context.Background(), old, 100); !errors.Is(err, storage.ErrFeedBehind) {
		t.Fatalf("changes since a pruned position: %v, want ErrFeedBehind", err)
	}
	now := head(t, s)
	if got, _ := changes(t, s, now); len(got) != 0 {
		t.Fatalf("changes since a new head: %q", kinds(got))
	}
	// A position from before a restore (past the log's sequence) is
	// refused too.
	if _, _, err := s.Changes(context.Background(), storage.FeedPosition{Version: now.Version + 1000}, 100); !errors.Is(err, storage.ErrFeedBehind) {
		t.Fatalf("changes since a position past the log: %v, want ErrFeedBehind", err)
	}
}

// testFeedPaged: a limit splits a long run of changes into pages that
// together hold every change once.
func testFeedPaged(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	pos := head(t, s)
	update(t, s, func(tx storage.Tx) error {
		for i := range 250 {
			if err := tx.PutSetting("k"+strconv.Itoa(i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	got, _ := changes(t, s, pos)
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c.ID] {
			t.Fatalf("%q read twice", c.ID)
		}
		seen[c.ID] = true
	}
	if len(seen) != 250 {
		t.Fatalf("%d changes read, want 250", len(seen))
	}
}

// testFeedReconnect: the listener's connection killed from the server is
// reported, connected again, and signals so that the reader catches up;
// announcements reach it afterwards.
func testFeedReconnect(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, postgres.Options{DSN: dsn})
	var mu sync.Mutex
	var events []error
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notices := s.Listen(lctx, func(err error) {
		mu.Lock()
		events = append(events, err)
		mu.Unlock()
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-notices:
		case <-time.After(5 * time.Second):
			t.Fatalf("no signal: %s", what)
		}
	}
	wait("on connecting")
	pid := listenerPID(t, dsn)
	update(t, s, func(tx storage.Tx) error { return tx.PutSetting("k", []byte("1")) })
	wait("on a write")

	exec(t, dsn, "SELECT pg_terminate_backend("+strconv.Itoa(pid)+")")
	wait("after the reconnect")
	start := time.Now()
	for listenerPID(t, dsn) == pid {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the listener did not connect again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	var failures, connects int
	for _, e := range events {
		if e == nil {
			connects++
		} else {
			failures++
			t.Logf("reported: %v", e)
		}
	}
	mu.Unlock()
	if failures == 0 || connects < 2 {
		t.Fatalf("reported %d failures and %d connects, want the loss and two connects", failures, connects)
	}
	select { // drop a signal left from the reconnect
	case <-notices:
	default:
	}
	update(t, s, func(tx storage.Tx) error { return tx.PutSetting("k", []byte("2")) })
	wait("on a write after the reconnect")
}

// listenerPID is the backend of the store's listening connection, waiting
// up to 5 s for it to appear.
func listenerPID(t *testing.T, dsn string) int {
	t.Helper()
	start := time.Now()
	for {
		pids := query[int32](t, dsn, `SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND datname = current_database()`)
		if len(pids) == 1 {
			return int(pids[0])
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d listening connections, want 1", len(pids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testSessionsByID: the feed reader's batch read returns the sessions
// present among the IDs asked for, each once, and nothing for the others.
func testSessionsByID(t *testing.T, srv *pgtest.Server) {
	s := open(t, postgres.Options{DSN: srv.NewDatabase(t)})
	now := time.Now()
	update(t, s, func(tx storage.Tx) error {
		for _, id := range []string{"a", "b\x00nul", "c"} {
			if err := tx.PutSession(session(id, now)); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	err := s.View(context.Background(), func(tx storage.Tx) error {
		got = got[:0]
		return tx.(storage.SessionReader).SessionsByID([]string{"a", "b\x00nul", "absent"}, func(rec storage.Session) error {
			if rec.UserAgent != session(rec.ID, now).UserAgent {
				t.Errorf("session %q read back as %+v", rec.ID, rec)
			}
			got = append(got, rec.ID)
			return nil
		})
	})
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"a", "b\x00nul"}) {
		t.Fatalf("sessions by id: %q, %v", got, err)
	}
	if err := s.View(context.Background(), func(tx storage.Tx) error {
		return tx.(storage.SessionReader).SessionsByID(nil, func(storage.Session) error { return errors.New("called for nothing") })
	}); err != nil {
		t.Fatalf("sessions by no id: %v", err)
	}
}
