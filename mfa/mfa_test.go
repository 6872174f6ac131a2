package mfa

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/totp"
)

// The domain without a server: a real bbolt file, a clock the test moves,
// and the operations pages, API, guard and CLI call.

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// classify reads "name=value" lines; "name=" deletes.
func classify(line string, _ time.Time) (name, value string, deleted, ok bool) {
	name, value, ok = strings.Cut(line, "=")
	return name, value, value == "", ok && strings.HasPrefix(name, "app")
}

type outbox struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (o *outbox) Queue(m mail.Message) bool {
	o.mu.Lock()
	o.sent = append(o.sent, m)
	o.mu.Unlock()
	return true
}

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	svc, err := Open(Options{Store: store, Key: bytes.Repeat([]byte{7}, 32), Now: clk.now, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc, clk
}

func testConfig() Config {
	return Config{
		Scope: "default", Issuer: "Test", IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour,
		PendingTTL: 10 * time.Minute, MaxAttempts: 3, AttemptWindow: 15 * time.Minute,
		PolicyMaxAge: 5 * time.Minute, GracePeriod: DefaultGracePeriod, Classify: classify,
	}
}

func newRealm(t *testing.T, svc *Service, mod func(*Config)) *Realm {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	r, err := svc.Realm(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	return r
}

var alice = Actor{User: "alice", Address: "192.0.2.1", Agent: "test"}

// enrol signs alice in (no factor yet), sets up TOTP and confirms it; it
// returns her secret, the AAL2 session and her recovery codes.
func enrol(t *testing.T, r *Realm, clk *clock) ([]byte, Changed, []string) {
	t.Helper()
	ctx := context.Background()
	ch, out, err := r.SignIn(ctx, alice, SignIn{User: "alice", Held: []string{"app=one"}, Set: []session.Binding{{Name: "app", Hash: session.HashValue("one")}}})
	if err != nil || out != SignedIn {
		t.Fatalf("first sign-in: outcome %v, err %v", out, err)
	}
	st, err := r.Setup(ctx, alice, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totp.DecodeSecret(st.Secret)
	if err != nil {
		t.Fatal(err)
	}
	conf, codes, err := r.ConfirmSetup(ctx, alice, ch.Session, totp.Code(secret, clk.now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 || conf.Session.AAL != 2 || conf.Session.Key == ch.Session.Key {
		t.Fatalf("confirm: %d codes, AAL %d, key rotated %v", len(codes), conf.Session.AAL, conf.Session.Key != ch.Session.Key)
	}
	if _, err := r.AcknowledgeCodes(ctx, alice, conf.Session, true); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute) // the confirmation code's step is spent
	return secret, conf, codes
}

func TestSignInChallengeAndReplay(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	secret, _, _ := enrol(t, r, clk)

	held := []string{"app=two"}
	ch, out, err := r.SignIn(ctx, alice, SignIn{User: "alice", Held: held})
	if err != nil || out != SecondFactor || ch.Session.State != session.Pending {
		t.Fatalf("enrolled sign-in: outcome %v, state %v, err %v", out, ch.Session.State, err)
	}
	pendingCookie := r.CookieValue(ch.ID, ch.Session, clk.now())
	if cur := r.Lookup(pendingCookie, clk.now()); cur.Session != ch.Session {
		t.Fatalf("pending session not found by its cookie: %+v", cur)
	}

	if _, err := r.PassChallenge(ctx, alice, ch.Session, "000000"); !errors.Is(err, ErrWrongCode) && totp.Code(secret, clk.now()) != "000000" {
		t.Fatalf("wrong code: %v, want ErrWrongCode", err)
	}
	if _, err := r.PassChallenge(ctx, alice, ch.Session, "12"); !errors.Is(err, ErrMalformedCode) {
		t.Fatalf("malformed code: %v, want ErrMalformedCode", err)
	}
	code := totp.Code(secret, clk.now())
	done, err := r.PassChallenge(ctx, alice, ch.Session, code)
	if err != nil {
		t.Fatal(err)
	}
	if done.Session.State != session.Active || done.Session.AAL != 2 || len(done.Held) != 1 || done.Held[0] != "app=two" {
		t.Fatalf("passed: state %v AAL %d held %v", done.Session.State, done.Session.AAL, done.Held)
	}
	if !done.Session.Bound("app", "two") {
		t.Fatal("the held app cookie is not bound to the active session")
	}
	if cur := r.Lookup(pendingCookie, clk.now()); cur.Session != nil || cur.Reason != session.Revoked {
		t.Fatalf("the pending id still works after rotation: %+v", cur)
	}

	// The same code at a second sign-in is a replay.
	ch2, _, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PassChallenge(ctx, alice, ch2.Session, code); !errors.Is(err, ErrCodeUsed) || errors.Is(err, ErrWrongCode) {
		t.Fatalf("replayed code: %v, want ErrCodeUsed (its own words, not a wrong code)", err)
	}
}

func TestLockoutRetryAfterAndAudit(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	secret, _, _ := enrol(t, r, clk)
	ch, _, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if totp.Code(secret, clk.now()) == wrong {
		wrong = "111111"
	}
	for i := range 3 {
		if _, err := r.PassChallenge(ctx, alice, ch.Session, wrong); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err = r.PassChallenge(ctx, alice, ch.Session, totp.Code(secret, clk.now()))
	var locked *LockedError
	if !errors.As(err, &locked) || locked.RetryAfter <= 0 || locked.RetryAfter > 15*time.Minute {
		t.Fatalf("after 3 wrong codes: %v, want a lock-out with a retry-after", err)
	}
	if err := svc.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _, err := svc.Audit.Query(ctx, audit.Filter{User: "alice", Type: audit.TypeChallengeFailed}, "", 10)
	if err != nil || len(evs) != 3 || evs[0].Remote != alice.Address {
		t.Fatalf("audited failures: %d (%v), remote %q", len(evs), err, func() string {
			if len(evs) > 0 {
				return evs[0].Remote
			}
			return ""
		}())
	}
	// More refusals later in the same lock fold into the first record's
	// summary, as they name the same end of the lock.
	for range 20 {
		clk.add(3 * time.Second)
		if _, err := r.PassChallenge(ctx, alice, ch.Session, wrong); !errors.As(err, &locked) {
			t.Fatalf("while locked: %v", err)
		}
	}
	if err := svc.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	locks, _, err := svc.Audit.Query(ctx, audit.Filter{User: "alice", Type: audit.TypeLockout}, "", 50)
	if err != nil || len(locks) != 2 || locks[0].Detail["repeated"] != "20" || locks[1].Detail["until"] == "" || locks[0].Detail["until"] != locks[1].Detail["until"] {
		t.Fatalf("lock-out records for 21 refusals in one lock: %d %v (%v), want the first and a summary of 20", len(locks), locks, err)
	}
	clk.add(16 * time.Minute)
	if err := r.checkLimits(alice, "alice", kindTOTP, clk.now()); err != nil {
		t.Fatalf("lock-out outlived its window: %v", err)
	}
}

func TestRecoveryCodeRemovesAuthenticator(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	_, _, codes := enrol(t, r, clk)
	u, err := svc.User(ctx, "alice")
	if err != nil || len(u.RecoveryHashes) != 10 {
		t.Fatalf("codes stored: %d, %v", len(u.RecoveryHashes), err)
	}
	ch, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice", Held: []string{"app=three"}})
	if _, err := r.UseRecoveryCode(ctx, alice, ch.Session, "?"); !errors.Is(err, ErrMalformedRecovery) {
		t.Fatalf("malformed: %v", err)
	}
	done, err := r.UseRecoveryCode(ctx, alice, ch.Session, codes[3])
	if err != nil {
		t.Fatal(err)
	}
	if done.Session.MustEnrol || done.Session.AAL != 2 || len(done.Held) != 1 {
		t.Fatalf("after a recovery code: must enrol %v (the team does not require 2FA), AAL %d, held %v", done.Session.MustEnrol, done.Session.AAL, done.Held)
	}
	u, _ = svc.User(ctx, "alice")
	if u.TOTPConfirmed || len(u.TOTPSecret) != 0 || len(u.RecoveryHashes) != 9 || !HasFactor(u) {
		t.Fatalf("after a recovery code: totp %v, codes left %d", u.TOTPConfirmed, len(u.RecoveryHashes))
	}
	again, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.UseRecoveryCode(ctx, alice, again.Session, codes[3]); !errors.Is(err, ErrWrongRecovery) {
		t.Fatalf("a used recovery code: %v, want ErrWrongRecovery", err)
	}
	if _, err := r.PassChallenge(ctx, alice, again.Session, "123456"); !errors.Is(err, ErrUseRecovery) {
		t.Fatalf("TOTP without an authenticator: %v, want ErrUseRecovery", err)
	}
}

func TestCookieIdleDeadlineIsEnforced(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ch, _, err := r.SignIn(context.Background(), alice, SignIn{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	// A cookie stamped 31 minutes ago (idle 30) whose session was active
	// since: the server's last-seen is fresh, the cookie's deadline is not.
	old := r.CookieValue(ch.ID, ch.Session, clk.now().Add(-31*time.Minute))
	ch.Session.Touch(clk.now())
	if cur := r.Lookup(old, clk.now()); cur.Session != nil || cur.Reason != session.IdleExpired {
		t.Fatalf("cookie past its idle deadline: %+v, want IdleExpired", cur)
	}
	fresh := r.CookieValue(ch.ID, ch.Session, clk.now())
	if cur := r.Lookup(fresh, clk.now()); cur.Session != ch.Session || cur.Stale {
		t.Fatalf("fresh cookie: %+v", cur)
	}
	due := r.CookieValue(ch.ID, ch.Session, clk.now().Add(-2*time.Minute))
	if cur := r.Lookup(due, clk.now()); cur.Session != ch.Session || !cur.Stale {
		t.Fatalf("cookie due for re-stamping: %+v", cur)
	}
	for _, bad := range []string{"x", "a.b", strings.Repeat("A", 5000), fresh + "x"} {
		if cur := r.Lookup(bad, clk.now()); cur.Session != nil {
			t.Fatalf("cookie %q found a session", bad)
		}
	}
}

// A reload registers the new config's realm before the old one is
// released: the shared settings follow the realms that are loaded.
func TestRealmsShareShortestSettingsAndRelease(t *testing.T) {
	svc, _ := newService(t)
	box := &outbox{}
	short, err := svc.Realm(func() Config {
		c := testConfig()
		c.PolicyMaxAge, c.GracePeriod, c.Mailer = time.Minute, time.Hour, box
		return c
	}(), nil)
	if err != nil {
		t.Fatal(err)
	}
	long := newRealm(t, svc, nil)
	pc := long.policy
	if got := time.Duration(pc.maxAge.Load()); got != time.Minute {
		t.Fatalf("policy cache age with both realms: %v, want the shortest, 1m", got)
	}
	if got := long.GracePeriod(); got != time.Hour {
		t.Fatalf("grace period with both realms: %v, want 1h", got)
	}
	if svc.mailingRealm("default") != short {
		t.Fatal("the realm with email is not used for forced-logout emails")
	}
	short.Release()
	if got := time.Duration(pc.maxAge.Load()); got != 5*time.Minute {
		t.Fatalf("policy cache age after release: %v, want 5m", got)
	}
	if got := long.GracePeriod(); got != DefaultGracePeriod {
		t.Fatalf("grace period after release: %v", got)
	}
	if svc.mailingRealm("default") != nil {
		t.Fatal("a released realm's mailer is still used")
	}
}

func TestAdminOperationsAuditThemselves(t *testing.T) {
	svc, clk := newService(t)
	box := &outbox{}
	r := newRealm(t, svc, func(c *Config) { c.Mailer, c.EmailTemplate = box, "{user}@example.com" })
	ctx := context.Background()
	enrol(t, r, clk)
	admin := Actor{User: "root", Address: "192.0.2.9"}
	if _, err := r.ResetUser(ctx, admin, "nobody"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("reset of an unknown user: %v", err)
	}
	if emailed, err := r.ResetUser(ctx, admin, "alice"); err != nil || !emailed {
		t.Fatalf("reset alice: emailed %v, err %v", emailed, err)
	}
	u, _ := svc.User(ctx, "alice")
	if HasFactor(u) || len(svc.SessionList("alice")) != 0 {
		t.Fatalf("after reset: factor %v, sessions %d", HasFactor(u), len(svc.SessionList("alice")))
	}
	if len(box.sent) != 1 || box.sent[0].To != "alice@example.com" {
		t.Fatalf("reset notices: %+v", box.sent)
	}
	if _, err := r.SetIdleMinutes(ctx, admin, 3); !errors.Is(err, ErrBadTimeout) {
		t.Fatalf("timeout 3 minutes: %v", err)
	}
	if _, err := r.SetRequire2FA(ctx, admin, true, "http://x/_mfa/security"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{audit.TypeAdminReset, audit.TypePolicyChanged, audit.TypeEnforcementNoticeSent} {
		evs, _, err := svc.Audit.Query(ctx, audit.Filter{Type: typ}, "", 10)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s events: %d, %v", typ, len(evs), err)
		}
		if typ != audit.TypeEnforcementNoticeSent && evs[0].Actor != "root" {
			t.Fatalf("%s actor %q, want root", typ, evs[0].Actor)
		}
	}
}

// A reload that drops the smtp block: the forced-logout email of a grace
// period that ends after the reload goes through the configs loaded then,
// never through the removed config's (closed) outbox.
func TestReloadForcedLogoutMailsThroughLoadedConfigs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		newMails bool
	}{{"smtp removed", false}, {"smtp moved", true}} {
		t.Run(tc.name, func(t *testing.T) {
			svc, clk := newService(t)
			ctx := context.Background()
			oldBox, newBox := &outbox{}, &outbox{}
			old, err := svc.Realm(func() Config {
				c := testConfig()
				c.GracePeriod, c.Mailer, c.EmailTemplate = time.Hour, oldBox, "{user}@example.com"
				return c
			}(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := old.SignIn(ctx, Actor{Address: "192.0.2.2"}, SignIn{User: "bob"}); err != nil {
				t.Fatal(err)
			}
			// The reload: the new config starts before the old one goes.
			newRealm(t, svc, func(c *Config) {
				c.GracePeriod, c.EmailTemplate = time.Hour, "{user}@example.com"
				if tc.newMails {
					c.Mailer = newBox
				}
			})
			old.Release()

			clk.add(time.Minute)
			if _, _, err := svc.SetRequire2FA(ctx, Operator, "default", true); err != nil {
				t.Fatal(err)
			}
			clk.add(2 * time.Hour)
			svc.Sweep()
			if n := len(svc.SessionList("bob")); n != 0 {
				t.Fatalf("bob's session outlived the grace period: %d left", n)
			}
			if len(oldBox.sent) != 0 {
				t.Fatalf("the removed config's outbox was used: %+v", oldBox.sent)
			}
			if got := len(newBox.sent); (got == 1) != tc.newMails {
				t.Fatalf("emails through the loaded config: %d", got)
			}
		})
	}
}

// TestFailedCodesLockTheAuthenticator: wrong codes in a row, however slowly
// they come (past every rate-limit window), lock the authenticator at the
// cap: audited, emailed, and even the right code is refused until an unlock
// or a recovery code; a right code before the cap starts the run again.
func TestFailedCodesLockTheAuthenticator(t *testing.T) {
	svc, clk := newService(t)
	out := &outbox{}
	r := newRealm(t, svc, func(c *Config) { c.MaxFailedCodes = 4; c.Mailer = out; c.EmailTemplate = "{user}@example.com" })
	ctx := context.Background()
	secret, _, codes := enrol(t, r, clk)

	pending := func() *session.Session {
		ch, o, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
		if err != nil || o != SecondFactor {
			t.Fatalf("sign-in: %v %v", o, err)
		}
		return ch.Session
	}
	wrong := func(s *session.Session) error {
		clk.add(time.Hour) // a new rate-limit window each time
		code := "000000"
		if totp.Code(secret, clk.now()) == code {
			code = "111111"
		}
		_, err := r.PassChallenge(ctx, alice, s, code)
		return err
	}
	right := func(s *session.Session) error {
		clk.add(time.Minute)
		_, err := r.PassChallenge(ctx, alice, s, totp.Code(secret, clk.now()))
		return err
	}

	s := pending()
	for range 3 {
		if err := wrong(s); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code: %v", err)
		}
	}
	if err := right(s); err != nil {
		t.Fatalf("right code before the cap: %v", err)
	}
	s = pending()
	for i := range 4 {
		if err := wrong(s); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code %d after a success: %v (the run should have started again)", i+1, err)
		}
	}
	if err := right(s); !errors.Is(err, ErrFactorLocked) {
		t.Fatalf("right code after %d wrong in a row: %v, want ErrFactorLocked", 4, err)
	}
	if ms, _ := svc.Members(ctx); len(ms) != 1 || !ms[0].Locked {
		t.Fatalf("members: %+v, want alice locked", ms)
	}
	if len(out.sent) != 1 || !strings.Contains(out.sent[0].Subject, "locked") || out.sent[0].To != "alice@example.com" {
		t.Fatalf("emails: %+v, want one lock notice to alice", out.sent)
	}
	if err := svc.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _, err := svc.Audit.Query(ctx, audit.Filter{Type: audit.TypeFactorLocked}, "", 0)
	if err != nil || len(evs) != 1 || evs[0].Subject != "alice" || evs[0].Detail["wrong_codes"] != "4" {
		t.Fatalf("factor_locked events: %+v, %v", evs, err)
	}

	// An unlock (admin or operator) lets the right code in again.
	if err := svc.UnlockUser(ctx, Operator, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := right(s); err != nil {
		t.Fatalf("right code after unlock: %v", err)
	}
	if err := svc.UnlockUser(ctx, Operator, "nobody"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unlock of an unknown user: %v", err)
	}

	// Locked again; a recovery code gets the user in (and removes the
	// locked authenticator).
	s = pending()
	for range 4 {
		_ = wrong(s)
	}
	if _, err := r.UseRecoveryCode(ctx, alice, s, codes[0]); err != nil {
		t.Fatalf("recovery code while locked: %v", err)
	}
	u, err := svc.User(ctx, "alice")
	if err != nil || u.TOTPConfirmed || u.FailedCodes != 0 || !u.FactorLockedAt.IsZero() {
		t.Fatalf("after recovery: confirmed %v, failed %d, locked at %v, err %v", u.TOTPConfirmed, u.FailedCodes, u.FactorLockedAt, err)
	}
}

// enrolAs is enrol for any user name.
func enrolAs(t *testing.T, r *Realm, clk *clock, user string) []byte {
	t.Helper()
	ctx := context.Background()
	a := Actor{User: user, Address: "192.0.2.9"}
	ch, out, err := r.SignIn(ctx, a, SignIn{User: user})
	if err != nil || out != SignedIn {
		t.Fatalf("first sign-in of %s: %v %v", user, out, err)
	}
	st, err := r.Setup(ctx, a, user, true)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totp.DecodeSecret(st.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ConfirmSetup(ctx, a, ch.Session, totp.Code(secret, clk.now())); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	return secret
}

// TestFoldUsersMovesStoredSpellings: users stored before names were folded
// move to their folded id with their factor intact; a spelling without a
// factor joins one with it; two spellings that both have a factor stop the
// realm with an error naming them.
func TestFoldUsersMovesStoredSpellings(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	plain := newRealm(t, svc, nil)
	secret := enrolAs(t, plain, clk, "Alice")
	bobSecret := enrolAs(t, plain, clk, "bob")
	if _, _, err := plain.SignIn(ctx, Actor{User: "BOB"}, SignIn{User: "BOB"}); err != nil { // no factor
		t.Fatal(err)
	}

	folded := newRealm(t, svc, func(c *Config) { c.Fold = strings.ToLower })
	ms, err := svc.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.User)
	}
	if strings.Join(ids, ",") != "alice,bob" {
		t.Fatalf("members after folding: %v, want alice and bob", ids)
	}
	for user, sec := range map[string][]byte{"alice": secret, "bob": bobSecret} {
		ch, out, err := folded.SignIn(ctx, Actor{User: user}, SignIn{User: user})
		if err != nil || out != SecondFactor {
			t.Fatalf("%s after folding: %v %v, want the second factor", user, out, err)
		}
		clk.add(time.Minute)
		if _, err := folded.PassChallenge(ctx, Actor{User: user}, ch.Session, totp.Code(sec, clk.now())); err != nil {
			t.Fatalf("%s's moved authenticator: %v", user, err)
		}
	}

	// Both spellings with a factor: the operator must choose.
	enrolAs(t, plain, clk, "Carol")
	enrolAs(t, plain, clk, "carol")
	if _, err := svc.Realm(func() Config { c := testConfig(); c.Fold = strings.ToLower; return c }(), nil); err == nil ||
		!strings.Contains(err.Error(), `"Carol"`) || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("two enrolled spellings: %v, want an error naming Carol and saying to reset", err)
	}
}

// failWrites refuses writes while fail is set, as a full disk does.
type failWrites struct {
	storage.Store
	fail atomic.Bool
}

func (s *failWrites) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Store.Update(ctx, fn)
}

func (s *failWrites) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Store.Batch(ctx, fn)
}

// TestRevocationTheStoreRefused: a revocation the store cannot write is
// reported as an error, not as done, and the session stops working at once.
func TestRevocationTheStoreRefused(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &failWrites{Store: store}
	clk := &clock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	svc, err := Open(Options{Store: fs, Key: bytes.Repeat([]byte{7}, 32), Now: clk.now, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	_, conf, _ := enrol(t, r, clk)
	other, _, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if _, err := svc.RevokeSession(ctx, Operator, other.Session.Key.String(), "", "operator"); err == nil {
		t.Fatal("a revocation the store refused was reported as done")
	}
	if cur := r.Lookup(r.CookieValue(other.ID, other.Session, clk.now()), clk.now()); cur.Session != nil {
		t.Fatal("the revoked session still works in memory")
	}
	if _, err := svc.RevokeOthers(ctx, alice, conf.Session); err != nil {
		t.Fatalf("nothing left to revoke: %v", err)
	}
}

// countWrites counts the store's write transactions.
type countWrites struct {
	storage.Store
	n atomic.Int64
}

func (s *countWrites) Update(ctx context.Context, fn func(storage.Tx) error) error {
	s.n.Add(1)
	return s.Store.Update(ctx, fn)
}

func (s *countWrites) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	s.n.Add(1)
	return s.Store.Batch(ctx, fn)
}

// TestAnonymousSessionsWriteNothing: visitors who never sign in cost no
// store write (a flood of them could otherwise keep the disk busy).
func TestAnonymousSessionsWriteNothing(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cw := &countWrites{Store: store}
	clk := &clock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	svc, err := Open(Options{Store: cw, Key: bytes.Repeat([]byte{7}, 32), Now: clk.now, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	r := newRealm(t, svc, nil)
	before := cw.n.Load()
	for i := range 200 {
		ch, err := r.BindAnonymous(context.Background(), Actor{Address: "203.0.113.7"}, nil,
			[]session.Binding{{Name: "app", Hash: session.HashValue(strconv.Itoa(i))}})
		if err != nil || ch.Session == nil {
			t.Fatalf("bind anonymous: %v", err)
		}
	}
	if n := cw.n.Load() - before; n != 0 {
		t.Fatalf("200 anonymous sessions made %d store writes, want 0", n)
	}
}

// TestPendingSignInsCapped: a user's sign-ins left at the challenge are
// capped; a new one ends the oldest, in memory and in the store, so one
// valid password cannot fill either.
func TestPendingSignInsCapped(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	enrol(t, r, clk)
	var ids []Changed
	for range MaxPendingPerUser + 5 {
		clk.add(time.Second)
		ch, out, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
		if err != nil || out != SecondFactor {
			t.Fatalf("sign-in: %v %v", out, err)
		}
		ids = append(ids, ch)
	}
	for i, ch := range ids {
		cur := r.Lookup(r.CookieValue(ch.ID, ch.Session, clk.now()), clk.now())
		if alive := cur.Session != nil; alive != (i >= 5) {
			t.Fatalf("pending sign-in %d alive %v, want only the newest %d", i, alive, MaxPendingPerUser)
		}
	}
	stored := 0
	err := svc.Store.View(ctx, func(tx storage.Tx) error {
		return tx.ForEachSession(func(s storage.Session) error {
			if s.User == "alice" && session.State(s.State) == session.Pending {
				stored++
			}
			return nil
		})
	})
	if err != nil || stored != MaxPendingPerUser {
		t.Fatalf("%d pending sign-ins stored (%v), want %d", stored, err, MaxPendingPerUser)
	}
}

// TestChangeAuthenticator: the new app's secret waits beside the old one,
// which keeps working until a code from the new one is confirmed; removing
// the authenticator drops a waiting replacement too.
func TestChangeAuthenticator(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	secret, done, _ := enrol(t, r, clk)
	st, err := r.StartChange(ctx, alice, done.Session)
	if err != nil {
		t.Fatal(err)
	}
	next, err := totp.DecodeSecret(st.Secret)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(30 * time.Second)
	if err := r.ConfirmChange(ctx, alice, done.Session, totp.Code(secret, clk.now())); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("the old app's code confirmed the change: %v", err)
	}
	if err := r.ConfirmChange(ctx, alice, done.Session, totp.Code(next, clk.now())); err != nil {
		t.Fatalf("the new app's code: %v", err)
	}
	u, _ := svc.User(ctx, "alice")
	if len(u.NextTOTPSecret) != 0 || !u.TOTPConfirmed || len(u.RecoveryHashes) != 10 {
		t.Fatalf("after the change: next %d bytes, confirmed %v, codes %d", len(u.NextTOTPSecret), u.TOTPConfirmed, len(u.RecoveryHashes))
	}
	// The same code again is a replay for the new key too.
	ch, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.PassChallenge(ctx, alice, ch.Session, totp.Code(next, clk.now())); !errors.Is(err, ErrCodeUsed) {
		t.Fatalf("the confirmation code replayed at the challenge: %v", err)
	}

	// A change left waiting dies with the authenticator.
	if _, err := r.StartChange(ctx, alice, done.Session); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ResetUser(ctx, Operator, "alice"); err != nil {
		t.Fatal(err)
	}
	if u, _ := svc.User(ctx, "alice"); len(u.NextTOTPSecret) != 0 {
		t.Fatal("an admin reset left the waiting replacement authenticator")
	}
}

// TestRebindDoesNotBringBackAnEndedSession: a request that began before its
// session was ended (revoked here, rotated or signed out in another tab)
// may finish with the app's new cookie; binding it must not write the
// ended session's record back, where a restart would find it.
func TestRebindDoesNotBringBackAnEndedSession(t *testing.T) {
	svc, _ := newService(t)
	r := newRealm(t, svc, nil)
	ctx := context.Background()
	ch, _, err := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() bool {
		t.Helper()
		err := svc.Store.View(ctx, func(tx storage.Tx) error {
			_, err := tx.Session(ch.Session.Key.String())
			return err
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	r.Rebind(ctx, ch.Session, []session.Binding{{Name: "app", Hash: session.HashValue("two")}}, nil)
	if !stored() {
		t.Fatal("a live session's new binding was not stored")
	}
	if _, err := svc.RevokeSession(ctx, Operator, ch.Session.Key.String(), "", "operator"); err != nil {
		t.Fatal(err)
	}
	r.Rebind(ctx, ch.Session, []session.Binding{{Name: "app", Hash: session.HashValue("three")}}, nil)
	if stored() {
		t.Fatal("binding the app's cookie to a revoked session wrote its record back")
	}
}
