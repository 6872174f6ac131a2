package mfa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/identity"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/totp"
)

// nonzero flattens a snapshot's non-zero series to "family/label/label": n.
func nonzero(s StatsSnapshot) map[string]uint64 {
	out := map[string]uint64{}
	add := func(family string, cs []Count) {
		for _, c := range cs {
			if c.N > 0 {
				out[family+"/"+strings.Join(c.Labels, "/")] = c.N
			}
		}
	}
	add("sign_in", s.SignIns)
	add("challenge", s.Challenges)
	add("lockout", s.Lockouts)
	add("widget", s.Widget)
	return out
}

func sameCounts(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		var lines []string
		for _, k := range slices.Sorted(maps.Keys(got)) {
			lines = append(lines, fmt.Sprintf("%s=%d (want %d)", k, got[k], want[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if _, ok := got[k]; !ok {
				lines = append(lines, fmt.Sprintf("%s missing (want %d)", k, want[k]))
			}
		}
		t.Fatalf("counts differ:\n%s", strings.Join(lines, "\n"))
	}
}

// TestStatsCountEachEventOnce drives sign-ins and challenge answers of every
// kind through the realm and checks every counter moved by exactly the
// events made, and no other.
func TestStatsCountEachEventOnce(t *testing.T) {
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
	r := newRealm(t, svc, func(c *Config) { c.MaxFailedCodes = 3 }) // MaxAttempts 3
	ctx := context.Background()
	secret, _, codes := enrol(t, r, clk)
	sameCounts(t, nonzero(svc.Stats().Snapshot()), map[string]uint64{"sign_in/no_factor": 1})

	s1, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.PassChallenge(ctx, alice, s1.Session, "12"); !errors.Is(err, ErrMalformedCode) {
		t.Fatalf("malformed code: %v", err)
	}
	right := totp.Code(secret, clk.now())
	if _, err := r.PassChallenge(ctx, alice, s1.Session, right); err != nil {
		t.Fatalf("right code: %v", err)
	}
	s2, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.PassChallenge(ctx, alice, s2.Session, right); !errors.Is(err, totp.ErrReplayed) || !errors.Is(err, ErrCodeUsed) {
		t.Fatalf("the same code again: %v, want a replay (a code already used)", err)
	}
	wrong := "000000"
	if right == wrong || totp.Code(secret, clk.now().Add(30*time.Second)) == wrong {
		wrong = "111111"
	}
	for range 2 { // the third failure in a row: user and authenticator locked
		if _, err := r.PassChallenge(ctx, alice, s2.Session, wrong); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code: %v", err)
		}
	}
	var locked *LockedError
	if _, err := r.PassChallenge(ctx, alice, s2.Session, totp.Code(secret, clk.now().Add(30*time.Second))); !errors.As(err, &locked) {
		t.Fatalf("after three failures: %v, want a lock-out", err)
	}
	if _, err := r.UseRecoveryCode(ctx, alice, s2.Session, "?"); !errors.Is(err, ErrMalformedRecovery) {
		t.Fatalf("malformed recovery code: %v", err)
	}
	// Locked out of authenticator codes, not of recovery codes: a wrong one
	// is judged, not refused.
	if _, err := r.UseRecoveryCode(ctx, alice, s2.Session, "abcdef-abcdef"); !errors.Is(err, ErrWrongRecovery) {
		t.Fatalf("wrong recovery code during an authenticator lock-out: %v, want ErrWrongRecovery", err)
	}
	clk.add(16 * time.Minute) // the attempt window is over; the authenticator stays locked
	if _, err := r.PassChallenge(ctx, alice, s2.Session, totp.Code(secret, clk.now())); !errors.Is(err, ErrFactorLocked) {
		t.Fatalf("locked authenticator: %v", err)
	}
	if _, err := r.UseRecoveryCode(ctx, alice, s2.Session, codes[0]); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	s3, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.PassChallenge(ctx, alice, s3.Session, totp.Code(secret, clk.now())); !errors.Is(err, ErrUseRecovery) {
		t.Fatalf("TOTP after the authenticator was removed: %v", err)
	}
	r.RefuseSignIn(ctx, alice, nil, nil, "/login", "test")
	fs.fail.Store(true)
	if _, _, err := r.SignIn(ctx, alice, SignIn{User: "alice"}); err == nil {
		t.Fatal("a sign-in the store cannot save succeeded")
	}
	fs.fail.Store(false)

	// Twelve wrong recovery codes from one address, three per user: each
	// user locks, then the address does.
	mallory := Actor{Address: "198.51.100.7"}
	for i := range 4 {
		user := fmt.Sprintf("u%d", i)
		pending := &session.Session{User: user, State: session.Pending, AAL: 1, AuthAt: clk.now()}
		for range 3 {
			if _, err := r.UseRecoveryCode(ctx, mallory, pending, codes[1]); !errors.Is(err, ErrWrongRecovery) {
				t.Fatalf("%s: wrong recovery code: %v", user, err)
			}
		}
	}
	sameCounts(t, nonzero(svc.Stats().Snapshot()), map[string]uint64{
		"sign_in/no_factor":               1,
		"sign_in/challenged":              3,
		"sign_in/refused":                 1,
		"sign_in/error":                   1,
		"challenge/totp/malformed":        1,
		"challenge/totp/ok":               1,
		"challenge/totp/replayed":         1,
		"challenge/totp/wrong":            2,
		"challenge/totp/locked":           2,
		"challenge/totp/no_authenticator": 1,
		"challenge/recovery/malformed":    1,
		"challenge/recovery/ok":           1,
		"challenge/recovery/wrong":        13,
		"lockout/user_attempts":           5,
		"lockout/authenticator":           1,
		"lockout/address_attempts":        1,
	})
}

// TestStatsWidgetResults: each verdict and cause lands in its own series,
// under the mode that applied.
func TestStatsWidgetResults(t *testing.T) {
	for _, tc := range []struct {
		mode    identity.Mode
		verdict identity.Verdict
		cause   identity.Cause
		want    string
	}{
		{identity.Monitor, identity.Verified, "", "widget/monitor/verified"},
		{identity.Enforce, identity.Anonymous, "", "widget/enforce/anonymous"},
		{identity.Off, identity.Unverified, "", "widget/off/unchecked"},
		{identity.Enforce, identity.Unverified, identity.CauseExpiredToken, "widget/enforce/expired_token"},
		{identity.Monitor, identity.Unverified, identity.CauseSignatureMismatch, "widget/monitor/signature_mismatch"},
		{identity.Enforce, identity.Unverified, identity.CauseMissingToken, "widget/enforce/missing_token"},
		{identity.Enforce, identity.Unverified, "a_new_cause", "widget/enforce/other"},
	} {
		s := newStats()
		s.Widget(tc.mode, tc.verdict, tc.cause)
		sameCounts(t, nonzero(s.Snapshot()), map[string]uint64{tc.want: 1})
	}
	s := newStats()
	s.WidgetUnreadable(identity.Enforce)
	sameCounts(t, nonzero(s.Snapshot()), map[string]uint64{"widget/enforce/bad_request": 1})
	// Every cause has a series of its own.
	seen := map[string]bool{}
	for _, c := range s.Snapshot().Widget {
		key := strings.Join(c.Labels, "/")
		if seen[key] {
			t.Fatalf("series %s twice", key)
		}
		seen[key] = true
	}
	for _, c := range identity.Causes() {
		if !seen["enforce/"+string(c)] {
			t.Fatalf("no series for cause %s", c)
		}
	}
}

func TestStatsSnapshotsAdd(t *testing.T) {
	a, b := newStats(), newStats()
	a.signIn(signInChallenged)
	b.signIn(signInChallenged)
	b.challenge(methodRecovery, challengeWrong)
	b.lockout(lockAuthenticator)
	b.Widget(identity.Monitor, identity.Verified, "")
	sum := a.Snapshot()
	sum.Add(b.Snapshot())
	sameCounts(t, nonzero(sum), map[string]uint64{
		"sign_in/challenged": 2, "challenge/recovery/wrong": 1, "lockout/authenticator": 1, "widget/monitor/verified": 1,
	})
}

func TestSignInResultOf(t *testing.T) {
	for _, tc := range []struct {
		out  Outcome
		err  error
		want signInResult
	}{
		{SecondFactor, nil, signInChallenged},
		{MustEnrol, nil, signInMustEnrol},
		{SignedIn, nil, signInNoFactor},
		{SecondFactor, errors.New("disk full"), signInError},
	} {
		if got := signInResultOf(tc.out, tc.err); got != tc.want {
			t.Errorf("outcome %v, err %v: %s, want %s", tc.out, tc.err, signInNames()[got], signInNames()[tc.want])
		}
	}
}

// TestStatsCountWithoutAllocating: the request path pays an atomic add.
func TestStatsCountWithoutAllocating(t *testing.T) {
	s := newStats()
	if n := testing.AllocsPerRun(100, func() {
		s.Widget(identity.Enforce, identity.Unverified, identity.CauseExpiredToken)
		s.Widget(identity.Monitor, identity.Verified, "")
		s.SignInRejected()
	}); n != 0 {
		t.Fatalf("%v allocations per count", n)
	}
}
