package mfa

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage/postgres"
	"github.com/mfagate/mfagate/totp"
)

// within polls cond for up to 5 s and returns how long it took, failing
// the test if it never held.
func within(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// openShared opens a Service on the PostgreSQL database dsn as one of
// several instances; clk nil is the real clock. The background loop's
// flush is left to the test.
func openShared(t *testing.T, dsn string, clk *clock) *Service {
	t.Helper()
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: st, Key: bytes.Repeat([]byte{7}, 32), Shared: true, FlushInterval: time.Hour}
	if clk != nil {
		opts.Now = clk.now
	}
	svc, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

// TestSharedStoreInstances: two instances on one PostgreSQL database learn
// each other's sessions, revocations and policy changes from the store
// (each re-reads it every second).
func TestSharedStoreInstances(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	a, b := openShared(t, dsn, nil), openShared(t, dsn, nil)
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
	t.Logf("B learned: a new session in %v, a revocation in %v, a policy change in %v", known.Round(time.Millisecond), revoked.Round(time.Millisecond), policy.Round(time.Millisecond))

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
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	a, b := openShared(t, dsn, clk), openShared(t, dsn, clk)
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
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	a, b := openShared(t, dsn, clk), openShared(t, dsn, clk)
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
