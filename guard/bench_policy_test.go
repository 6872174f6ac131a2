package guard

// The per-request session check with team policy and revocations active
// (issue 4: "the per-request check with policy and revocations active stays
// within 10% of the core's figure"). Compare with BenchmarkSessionCheck:
//
//	go test -run='^$' -bench='^BenchmarkSessionCheck(WithPolicy)?$' -count=5 ./gateway/

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
)

// benchRevoked is how many of the extra sessions are revoked.
const benchRevoked = benchFiller / 2

// withPolicyAndRevocations stores a policy (require 2FA on, a 30-minute
// idle timeout) for the gateway's scope, adds benchFiller more live sessions
// of 500 users and revokes benchRevoked of them, half through
// mfa.Service.RevokeSession (the admin's path: table and store) and half through
// Table.Remove. It returns the cookie of a revoked session of alice's.
func withPolicyAndRevocations(tb testing.TB, f *benchFixture) (revokedCookie string) {
	tb.Helper()
	ctx := context.Background()
	scope := f.gw.cfg.Scope
	if _, _, err := f.rt.SetRequire2FA(ctx, mfa.Operator, scope, true); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.rt.SetIdleMinutes(ctx, mfa.Operator, scope, 30); err != nil {
		tb.Fatal(err)
	}
	if p := f.gw.realm.Policy(); !p.Require2FA || p.IdleMinutes != 30 || f.gw.realm.IdleTimeout() != 30*time.Minute {
		tb.Fatalf("policy not in effect: %+v, idle %v", p, f.gw.realm.IdleTimeout())
	}

	now := f.rt.Now()
	var viaRuntime []string
	var viaTable []session.Key
	for i := range benchFiller {
		id := session.ID{0xfe, byte(i), byte(i >> 8), byte(i >> 16)}
		s := &session.Session{Key: id.Key(), User: fmt.Sprintf("member%03d", i%500), State: session.Active, AAL: 1 + uint8(i%2),
			CreatedAt: now, AuthAt: now, ExpiresAt: now.Add(mfa.DefaultMaxLifetime), RemoteAddr: "10.0.0.1", UserAgent: "bench"}
		s.SetLastSeen(now)
		f.rt.Sessions.Put(s)
		switch {
		case i%4 == 0:
			viaRuntime = append(viaRuntime, s.Key.String())
		case i%4 == 1:
			viaTable = append(viaTable, s.Key)
		}
	}
	// One of alice's own other sessions is revoked too; its cookie is kept
	// to check that a revoked session stops working.
	rid, err := session.NewID(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	rs := &session.Session{Key: rid.Key(), User: "alice", State: session.Active, AAL: 2,
		CreatedAt: now, AuthAt: now, ExpiresAt: now.Add(mfa.DefaultMaxLifetime)}
	rs.SetLastSeen(now)
	f.rt.Sessions.Put(rs)
	viaRuntime = append(viaRuntime, rs.Key.String())

	// RevokeSession deletes from the store with a Batch each; run them side
	// by side so bbolt coalesces the batches and setup stays quick.
	var wg sync.WaitGroup
	work := make(chan string)
	errs := make(chan error, 1)
	for range 64 {
		wg.Go(func() {
			for id := range work {
				if _, err := f.rt.RevokeSession(ctx, mfa.Operator, id, "", "operator"); err != nil {
					select {
					case errs <- fmt.Errorf("revoke %s: %w", id, err):
					default:
					}
				}
			}
		})
	}
	for _, id := range viaRuntime {
		work <- id
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	for _, k := range viaTable {
		if f.rt.Sessions.Remove(k) == nil {
			tb.Fatalf("session %s not in the table", k)
		}
	}
	if got, want := len(viaRuntime)+len(viaTable), benchRevoked+1; got != want {
		tb.Fatalf("revoked %d sessions, want %d", got, want)
	}
	// The user's session, benchFiller fillers and the live half of the extras.
	if got, want := f.rt.Sessions.Len(), 1+benchFiller+benchFiller-benchRevoked; got != want {
		tb.Fatalf("table holds %d sessions, want %d", got, want)
	}
	return f.gw.cfg.CookieName + "=" + f.gw.realm.CookieValue(rid, rs, now)
}

// BenchmarkSessionCheckWithPolicy is BenchmarkSessionCheck with a stored
// policy (require 2FA, idle timeout from the policy) and 10,000 more
// sessions, 5,000 of them revoked.
func BenchmarkSessionCheckWithPolicy(b *testing.B) {
	f := newBenchFixture(b)
	revoked := withPolicyAndRevocations(b, f)
	if cur := f.gw.lookup(f.request(revoked).r, f.rt.Now()); cur.Session != nil || cur.Reason != session.Revoked {
		b.Fatalf("a revoked session's cookie: lookup = %+v, want no session, revoked", cur)
	}
	br := f.request(f.typicalCookie())
	if cur := f.gw.lookup(br.r, f.gw.svc.Now()); cur.Session != f.sess || cur.Session.AAL != 2 || cur.Stale {
		b.Fatalf("lookup = %+v, want the AAL2 session, fresh", cur)
	}
	f.store.reset()
	b.ReportAllocs()
	for b.Loop() {
		now := f.gw.svc.Now()
		cur := f.gw.lookup(br.r, now)
		if cur.Session == nil {
			b.Fatal("no session")
		}
		cur.Session.Touch(now)
	}
	b.StopTimer()
	if v, u, bt := f.store.views.Load(), f.store.updates.Load(), f.store.batches.Load(); v+u+bt != 0 {
		b.Fatalf("the check made %d View, %d Update, %d Batch calls; want none", v, u, bt)
	}
}

// TestSessionCheckWithPolicyFixture runs the benchmark's setup as a test, so
// a broken fixture shows up without -bench: the policy's idle timeout is the
// one the check applies, and revoked sessions stop working.
func TestSessionCheckWithPolicyFixture(t *testing.T) {
	f := newBenchFixture(t)
	revoked := withPolicyAndRevocations(t, f)
	if cur := f.gw.lookup(f.request(revoked).r, f.rt.Now()); cur.Session != nil || cur.Reason != session.Revoked {
		t.Fatalf("a revoked session's cookie: lookup = %+v, want no session, revoked", cur)
	}
	br := f.request(f.typicalCookie())
	now := f.rt.Now()
	if cur := f.gw.lookup(br.r, now); cur.Session != f.sess {
		t.Fatalf("lookup = %+v, want alice's session", cur)
	}
	// 31 minutes idle is past the policy's 30 (the Caddyfile default is 240).
	if cur := f.gw.lookup(br.r, now.Add(31*time.Minute)); cur.Session != nil || cur.Reason != session.IdleExpired {
		t.Fatalf("after 31 idle minutes: lookup = %+v, want idle expired under the policy's 30 minutes", cur)
	}
}
