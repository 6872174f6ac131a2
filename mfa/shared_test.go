package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage/postgres"
	"github.com/mfagate/mfagate/totp"
)

// within polls cond (every 5 ms) for up to 5 s and returns how long it
// took, failing the test if it never held.
func within(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestSharedStoreInstances: two instances on one PostgreSQL database learn
// each other's sessions, revocations and policy changes from the store's
// change feed, without reading the whole state again.
func TestSharedStoreInstances(t *testing.T) {
	ctx := context.Background()
	svcs, _, _ := sharedInstances(t, 2, nil)
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)

	ch, out, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil || out != SignedIn {
		t.Fatalf("sign-in on A: %v %v", out, err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	known := within(t, "B knows A's session", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })

	// The app refreshes its cookie through A: B binds the new value too.
	ra.Rebind(ctx, ch.Session, []session.Binding{{Name: "app", Hash: session.HashValue("two")}}, nil)
	within(t, "B learns the app's new cookie", func() bool {
		s := rb.Lookup(cookie, time.Now()).Session
		return s != nil && s.Bound("app", "two")
	})

	if _, err := a.RevokeSession(ctx, Operator, ch.Session.Key.String(), "", "operator"); err != nil {
		t.Fatal(err)
	}
	revoked := within(t, "B refuses the session A revoked", func() bool { return rb.Lookup(cookie, time.Now()).Session == nil })

	if _, _, err := a.SetRequire2FA(ctx, Operator, "default", true); err != nil {
		t.Fatal(err)
	}
	policy := within(t, "B sees A's policy", rb.Require2FA)
	t.Logf("B learned (polled every 5 ms from A's call returning; 0s: before the first check): a new session in %v, a revocation in %v, a policy change in %v",
		known.Round(time.Millisecond), revoked.Round(time.Millisecond), policy.Round(time.Millisecond))
	if n := b.sync.fullReads.Load(); n != 1 {
		t.Fatalf("B read the whole state %d times, want once (at start): the changes came another way", n)
	}
	if b.sync.changesRead.Load() == 0 {
		t.Fatal("B applied no changes from the feed")
	}

	// A session B ended is not brought back by A's records on its way out.
	ch2, _, _ := rb.SignIn(ctx, Actor{User: "bob", Address: "192.0.2.2"}, SignIn{User: "bob"})
	c2 := rb.CookieValue(ch2.ID, ch2.Session, time.Now())
	rb.SignOut(ctx, Actor{User: "bob"}, ch2.Session)
	for range 3 {
		b.SyncSessions()
		if rb.Lookup(c2, time.Now()).Session != nil {
			t.Fatal("a session signed out on B came back from the store")
		}
	}
}

// TestSharedStoreSweepsOnce: every instance sweeps the sessions it holds,
// and all hold the same ones; the expiry is audited once, by the instance
// that deleted the record, and activity on one instance keeps the session
// alive on the other.
func TestSharedStoreSweepsOnce(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	svcs, _, _ := sharedInstances(t, 2, func(o *Options) { o.Now = clk.now })
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	idle := ra.IdleTimeout()
	ch, _, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, clk.now())
	b.SyncSessions()

	// Used on A two thirds into the idle time; A writes its activity, B
	// reads it: past the first idle deadline the session lives on B too.
	clk.add(idle * 2 / 3)
	sa := ra.Lookup(cookie, clk.now()).Session
	if sa == nil {
		t.Fatal("A lost the session before its idle time")
	}
	sa.Touch(clk.now())                           // a request, as the guard records it
	cookie = ra.CookieValue(ch.ID, sa, clk.now()) // and the cookie it sends back
	a.FlushActivity()
	b.SyncSessions()
	clk.add(idle / 2)
	b.Sweep()
	if rb.Lookup(cookie, clk.now()).Session == nil {
		t.Fatal("B expired a session used on A within its idle time")
	}

	clk.add(DefaultIdleTimeout + time.Minute) // sweeps use the longest idle time allowed
	a.Sweep()
	b.Sweep()
	n := 0
	for _, svc := range []*Service{a, b} {
		if err := svc.Audit.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		evs, _, err := svc.Audit.Query(ctx, audit.Filter{Type: audit.TypeSessionExpired}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		n = len(evs) // both read the same shared log
	}
	if n != 1 {
		t.Fatalf("the expiry was audited %d times, want once", n)
	}
}

// TestSharedStoreAttempts: wrong codes spread over two instances meet one
// count: after max_attempts in all, both refuse even the right code.
func TestSharedStoreAttempts(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	svcs, _, _ := sharedInstances(t, 2, func(o *Options) { o.Now = clk.now })
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	secret, _, _ := enrol(t, ra, clk)
	clk.add(30 * time.Second) // the next TOTP step: enrolment spent this one
	pa, _, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	pb, _, err := rb.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if totp.Code(secret, clk.now()) == wrong {
		wrong = "111111"
	}
	for i, on := range []struct {
		r  *Realm
		ch Changed
	}{{ra, pa}, {rb, pb}, {ra, pa}} { // max_attempts is 3 in the test config
		if _, err := on.r.PassChallenge(ctx, alice, on.ch.Session, wrong); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	var locked *LockedError
	if _, err := rb.PassChallenge(ctx, alice, pb.Session, totp.Code(secret, clk.now())); !errors.As(err, &locked) {
		t.Fatalf("the right code on B after 3 wrong ones over A and B: %v, want a lock-out", err)
	}
}

// sharedInstances opens n instances on one new database, with the options mod
// sets, and returns them with their stores.
func sharedInstances(t *testing.T, n int, mod func(*Options)) ([]*Service, []*postgres.Store, string) {
	t.Helper()
	return sharedInstancesOn(t, n, postgres.Options{}, mod)
}

// sharedInstancesOn is sharedInstances with store options (the DSN is
// filled in).
func sharedInstancesOn(t *testing.T, n int, stOpts postgres.Options, mod func(*Options)) ([]*Service, []*postgres.Store, string) {
	t.Helper()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	stOpts.DSN = dsn
	var svcs []*Service
	var sts []*postgres.Store
	for range n {
		st, err := postgres.Open(context.Background(), stOpts)
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{Store: st, Key: bytes.Repeat([]byte{7}, 32), Shared: true, FlushInterval: time.Hour}
		if mod != nil {
			mod(&opts)
		}
		svc, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close() })
		svcs, sts = append(svcs, svc), append(sts, st)
	}
	return svcs, sts, dsn
}

// listeners returns the backends listening on dsn's database.
func listeners(t *testing.T, dsn string) map[int32]bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND datname = current_database()`)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]bool{}
	for _, p := range pids {
		out[p] = true
	}
	return out
}

func execSQL(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestSharedStoreActivityFromFeed: activity written by one instance (not
// announced) reaches the other by its once-a-second read of the feed.
func TestSharedStoreActivityFromFeed(t *testing.T) {
	svcs, _, _ := sharedInstances(t, 2, nil)
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	ctx := context.Background()
	ch, _, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	within(t, "B knows A's session", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })
	sb := b.Sessions.Get(ch.Session.Key)
	later := time.Now().Add(time.Minute).Truncate(time.Second)
	ch.Session.Touch(later)
	a.FlushActivity()
	took := within(t, "B takes A's activity", func() bool { return !sb.LastSeen().Before(later) })
	t.Logf("activity reached B in %v (read on the once-a-second tick, not announced)", took.Round(time.Millisecond))
	if n := b.sync.fullReads.Load(); n != 1 {
		t.Fatalf("B read the whole state %d times, want once", n)
	}
}

// TestSharedStoreListenerLoss: changes made while an instance's listening
// connection is cut are caught up, and the listener comes back.
func TestSharedStoreListenerLoss(t *testing.T) {
	svcs, _, dsn := sharedInstances(t, 1, nil)
	a := svcs[0]
	var aListener int32
	within(t, "A listens", func() bool {
		for p := range listeners(t, dsn) {
			aListener = p
		}
		return aListener != 0
	})
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(Options{Store: st, Key: bytes.Repeat([]byte{7}, 32), Shared: true, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var bListener int32
	within(t, "B listens", func() bool {
		for p := range listeners(t, dsn) {
			if p != aListener {
				bListener = p
			}
		}
		return bListener != 0
	})
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	ctx := context.Background()
	ch, _, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	within(t, "B knows A's session", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })

	// Cut B's listener and change things at once: the announcements are
	// made while B is not listening.
	execSQL(t, dsn, "SELECT pg_terminate_backend($1)", bListener)
	if _, err := a.RevokeSession(ctx, Operator, ch.Session.Key.String(), "", "operator"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.SetRequire2FA(ctx, Operator, "default", true); err != nil {
		t.Fatal(err)
	}
	revoked := within(t, "B refuses the session A revoked while B's listener was cut", func() bool { return rb.Lookup(cookie, time.Now()).Session == nil })
	policy := within(t, "B sees the policy A set while B's listener was cut", rb.Require2FA)
	within(t, "B listens again", func() bool {
		ls := listeners(t, dsn)
		return len(ls) == 2 && !ls[bListener] && !b.sync.listenerDown.Load()
	})
	t.Logf("with B's listener cut, B learned a revocation in %v and a policy change in %v", revoked.Round(time.Millisecond), policy.Round(time.Millisecond))

	// Announcements reach the new listener.
	ch2, _, err := ra.SignIn(ctx, Actor{User: "bob", Address: "192.0.2.2"}, SignIn{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	c2 := ra.CookieValue(ch2.ID, ch2.Session, time.Now())
	known := within(t, "B knows a session A started after the reconnect", func() bool { return rb.Lookup(c2, time.Now()).Session != nil })
	t.Logf("after the reconnect, B learned a new session in %v", known.Round(time.Millisecond))
	if n := b.sync.fullReads.Load(); n != 1 {
		t.Fatalf("B read the whole state %d times, want once: the log covered the cut", n)
	}
}

// TestSharedStoreBehindPrunedLog: an instance whose position fell behind
// the pruned change log reads the whole state again, and so learns what
// the pruned changes said.
func TestSharedStoreBehindPrunedLog(t *testing.T) {
	svcs, sts, _ := sharedInstances(t, 2, nil)
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	ctx := context.Background()

	// B stands still (as if its database connection were down) while A
	// signs in and the log is pruned past B's position.
	b.sync.mu.Lock()
	ch, _, err := ra.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		b.sync.mu.Unlock()
		t.Fatal(err)
	}
	_, _, err = a.SetRequire2FA(ctx, Operator, "default", true)
	if err == nil {
		_, err = sts[0].PruneChanges(ctx, 0)
	}
	b.sync.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	within(t, "B knows A's session from a full read", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })
	within(t, "B sees A's policy from a full read", rb.Require2FA)
	if n := b.sync.fullReads.Load(); n != 2 {
		t.Fatalf("B read the whole state %d times, want twice (start, and behind the pruned log)", n)
	}
	// And it follows the feed again from there.
	if _, err := a.RevokeSession(ctx, Operator, ch.Session.Key.String(), "", "operator"); err != nil {
		t.Fatal(err)
	}
	within(t, "B refuses the session A revoked", func() bool { return rb.Lookup(cookie, time.Now()).Session == nil })
	if n := b.sync.fullReads.Load(); n != 2 {
		t.Fatalf("B read the whole state %d times after catching up, want no more", n)
	}
}

// TestSharedStoreFeedFailsClosed: when an instance cannot read the change
// feed while the store otherwise answers, or does not get to read it,
// signed-in traffic fails closed past the outage limit, and goes on once
// the feed reads again.
func TestSharedStoreFeedFailsClosed(t *testing.T) {
	// The store probe runs every 100ms and keeps answering: the feed alone
	// must bring the instance down.
	svcs, _, dsn := sharedInstances(t, 1, func(o *Options) { o.OutageLimit, o.FlushInterval = 500*time.Millisecond, 100*time.Millisecond })
	a := svcs[0]
	execSQL(t, dsn, "ALTER TABLE mfagate.changes RENAME TO changes_away")
	down := within(t, "the instance fails closed", func() bool { return a.StoreDown(time.Now()) })
	t.Logf("failed closed %v after the feed broke (limit 500ms)", down.Round(time.Millisecond))
	execSQL(t, dsn, "ALTER TABLE mfagate.changes_away RENAME TO changes")
	within(t, "the instance answers again", func() bool { return !a.StoreDown(time.Now()) })

	// A catch-up that does not fail but does not happen either (the
	// background loop held up) fails closed too, a little later.
	a.sync.mu.Lock()
	stuck := within(t, "the held-up instance fails closed", func() bool { return a.StoreDown(time.Now()) })
	a.sync.mu.Unlock()
	t.Logf("failed closed %v after catch-ups stopped (limit 500ms + %v)", stuck.Round(time.Millisecond), stuckSlack)
	within(t, "the instance answers again", func() bool { return !a.StoreDown(time.Now()) })
}

// TestSharedStoreTableEmptied: emptying the sessions table by hand (which
// no row change reports) makes every instance read the whole state again,
// and so stop every session.
func TestSharedStoreTableEmptied(t *testing.T) {
	svcs, _, dsn := sharedInstances(t, 2, nil)
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	ch, _, err := ra.SignIn(context.Background(), alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	within(t, "B knows A's session", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })
	execSQL(t, dsn, "TRUNCATE mfagate.sessions")
	within(t, "B drops the session", func() bool { return rb.Lookup(cookie, time.Now()).Session == nil })
	within(t, "A drops the session", func() bool { return ra.Lookup(cookie, time.Now()).Session == nil })
	// The read counts itself once it is done, just after the table changes.
	within(t, "B's full read is counted", func() bool { return b.sync.fullReads.Load() >= 2 })
	if n := b.sync.fullReads.Load(); n != 2 {
		t.Fatalf("B read the whole state %d times, want twice (start, and after the table was emptied)", n)
	}
}

// TestSharedStorePrunesChangeLog: an instance prunes the shared change log
// to the store's retention, and reads on from its position afterwards.
func TestSharedStorePrunesChangeLog(t *testing.T) {
	svcs, _, dsn := sharedInstancesOn(t, 2, postgres.Options{ChangeRetention: time.Millisecond}, nil)
	a, b := svcs[0], svcs[1]
	ra, rb := newRealm(t, a, nil), newRealm(t, b, nil)
	ch, _, err := ra.SignIn(context.Background(), alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := ra.CookieValue(ch.ID, ch.Session, time.Now())
	within(t, "B knows A's session", func() bool { return rb.Lookup(cookie, time.Now()).Session != nil })
	time.Sleep(10 * time.Millisecond) // older than the retention
	b.catchUp()                       // B has read every change there is
	if n := a.pruneChanges(); n == 0 {
		t.Fatal("nothing pruned")
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM mfagate.changes").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d changes left after pruning (%v)", left, err)
	}
	// B had read everything pruned: it follows on without a full read.
	if _, err := a.RevokeSession(context.Background(), Operator, ch.Session.Key.String(), "", "operator"); err != nil {
		t.Fatal(err)
	}
	within(t, "B refuses the session A revoked", func() bool { return rb.Lookup(cookie, time.Now()).Session == nil })
	if n := b.sync.fullReads.Load(); n != 1 {
		t.Fatalf("B read the whole state %d times, want once", n)
	}
}

// TestSharedStoreEndedWhileReadThrough: a request may read a session from
// the store (readThrough) while the feed learns the session was deleted.
// Whichever comes first, the session does not stay in the table: the feed
// removes a copy revived after its changes were listed, and a copy read
// before the deletion is not revived afterwards.
func TestSharedStoreEndedWhileReadThrough(t *testing.T) {
	svcs, _, _ := sharedInstances(t, 1, nil)
	b := svcs[0]
	mk := func() *session.Session {
		id, err := session.NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := &session.Session{Key: id.Key(), User: "alice", State: session.Active, AAL: 2, ExpiresAt: time.Now().Add(time.Hour)}
		s.SetLastSeen(time.Now())
		return s
	}
	absent := func(s *session.Session) map[string]*storedSession {
		return map[string]*storedSession{s.Key.String(): {present: false, held: nil}}
	}

	// Revived by a request after the feed listed the change (held: nil).
	s := mk()
	b.Sessions.Revive(s)
	b.applySessions(absent(s))
	if b.Sessions.Get(s.Key) != nil {
		t.Fatal("a session revived while the feed read its deletion stayed in the table")
	}

	// Read by a request before the deletion, revived after the feed ran.
	s2 := mk()
	b.applySessions(absent(s2))
	if b.Sessions.Revive(s2) || b.Sessions.Get(s2.Key) != nil {
		t.Fatal("a copy read before the deletion was revived after the feed learned of it")
	}
}
