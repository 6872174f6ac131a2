package mfa

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/totp"
)

// texts is a Texter that keeps what it was given.
type texts struct {
	mu   sync.Mutex
	sent [][2]string // to, body
}

func (x *texts) Queue(to, body string) bool {
	x.mu.Lock()
	x.sent = append(x.sent, [2]string{to, body})
	x.mu.Unlock()
	return true
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// lastMailCode is the code in the newest email.
func (o *outbox) lastCode(t *testing.T) (to, code string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sent) == 0 {
		t.Fatal("no email sent")
	}
	m := o.sent[len(o.sent)-1]
	return m.To, sixDigits.FindString(m.Text)
}

func (x *texts) lastCode(t *testing.T) (to, code string) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.sent) == 0 {
		t.Fatal("no text sent")
	}
	m := x.sent[len(x.sent)-1]
	return m[0], sixDigits.FindString(m[1])
}

// otherThan is a well-formed code that is not code.
func otherThan(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func methodsRealm(t *testing.T) (*Service, *Realm, *clock, *outbox, *texts) {
	t.Helper()
	svc, clk := newService(t)
	box, tx := &outbox{}, &texts{}
	r := newRealm(t, svc, func(c *Config) { c.Mailer, c.Texter = box, tx })
	return svc, r, clk, box, tx
}

// aliceSignedIn is alice signed in with her password and no factor (AAL1).
func aliceSignedIn(t *testing.T, r *Realm) Changed {
	t.Helper()
	ch, out, err := r.SignIn(context.Background(), alice, SignIn{User: "alice"})
	if err != nil || out != SignedIn {
		t.Fatalf("sign-in: %v %v", out, err)
	}
	return ch
}

// TestEmailAsFirstMethod: an email address proved with a code sent to it
// turns 2FA on, issues recovery codes and lifts the session to AAL2; a
// later sign-in is challenged with a code sent there.
func TestEmailAsFirstMethod(t *testing.T) {
	svc, r, clk, box, _ := methodsRealm(t)
	ctx := context.Background()
	s := aliceSignedIn(t, r).Session

	if _, err := r.StartMethod(ctx, alice, s, MethodEmail, "Alice <a@example.com>"); !errors.Is(err, ErrBadDestination) {
		t.Fatalf("a display name: %v", err)
	}
	masked, err := r.StartMethod(ctx, alice, s, MethodEmail, " alice@Example.COM ")
	if err != nil || masked != "a•••@example.com" {
		t.Fatalf("start: %q %v", masked, err)
	}
	to, code := box.lastCode(t)
	if to != "alice@example.com" || code == "" {
		t.Fatalf("mailed %q to %q", code, to)
	}
	if _, _, err := r.ConfirmMethod(ctx, alice, s, MethodEmail, otherThan(code)); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	done, codes, err := r.ConfirmMethod(ctx, alice, s, MethodEmail, code[:3]+" "+code[3:])
	if err != nil || len(codes) != 10 || done.Session.AAL != 2 {
		t.Fatalf("confirm: %v, %d codes, %+v", err, len(codes), done.Session)
	}
	if _, _, err := r.ConfirmMethod(ctx, alice, done.Session, MethodEmail, code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("the code twice: %v", err)
	}
	u, _ := svc.User(ctx, "alice")
	if u.EmailOTP != "alice@example.com" || PrimaryOf(u) != MethodEmail || !HasFactor(u) {
		t.Fatalf("after confirm: %+v", u)
	}

	// Signing in again: a code goes to the address, single use.
	ch, out, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if out != SecondFactor {
		t.Fatalf("sign-in with email as the factor: %v", out)
	}
	clk.add(ResendAfter)
	if _, err := r.SendSignInCode(ctx, alice, ch.Session, MethodSMS); !errors.Is(err, ErrMethodNotSetUp) {
		t.Fatalf("a method she does not hold: %v", err)
	}
	if _, err := r.SendSignInCode(ctx, alice, ch.Session, MethodEmail); err != nil {
		t.Fatal(err)
	}
	_, code = box.lastCode(t)
	if _, err := r.PassChallenge(ctx, alice, ch.Session, code); !errors.Is(err, ErrUseRecovery) && err == nil {
		t.Fatalf("the emailed code as an authenticator code: %v", err)
	}
	active, err := r.PassSentCode(ctx, alice, ch.Session, MethodEmail, code)
	if err != nil || active.Session.State != session.Active || active.Session.AAL != 2 {
		t.Fatalf("emailed code at the challenge: %v %+v", err, active.Session)
	}
	again, _, _ := r.SignIn(ctx, alice, SignIn{User: "alice"})
	if _, err := r.PassSentCode(ctx, alice, again.Session, MethodEmail, code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("a spent code: %v", err)
	}
}

// TestSentCodeRules: codes expire after SentCodeTTL, retire after
// SentCodeTries wrong entries, and sends are limited: one per ResendAfter,
// MaxSends per SendWindow per user and per destination.
func TestSentCodeRules(t *testing.T) {
	_, r, clk, _, tx := methodsRealm(t)
	ctx := context.Background()
	s := aliceSignedIn(t, r).Session
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "07700 900123"); !errors.Is(err, ErrBadDestination) {
		t.Fatalf("a number without its country code: %v", err)
	}
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+44 7700 900123"); err != nil {
		t.Fatal(err)
	}
	to, code := tx.lastCode(t)
	if to != "+447700900123" {
		t.Fatalf("texted %q", to)
	}
	var limit *SendLimitError
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+44 7700 900123"); !errors.As(err, &limit) || limit.RetryAfter <= 0 || limit.RetryAfter > ResendAfter {
		t.Fatalf("a resend at once: %v", err)
	}
	// Five wrong entries retire the code: the right one no longer works.
	for i := range SentCodeTries {
		if _, _, err := r.ConfirmMethod(ctx, alice, s, MethodSMS, otherThan(code)); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong entry %d: %v", i+1, err)
		}
		r.svc.attempts.reset(userKey(kindSent, "alice")) // the attempt limit is another test's
	}
	if _, _, err := r.ConfirmMethod(ctx, alice, s, MethodSMS, code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("the right code after %d wrong ones: %v", SentCodeTries, err)
	}
	// Two more sends fit in the window; the fourth does not.
	for i := 2; i <= MaxSends; i++ {
		clk.add(ResendAfter)
		if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+44 7700 900123"); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	clk.add(ResendAfter)
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+44 7700 900124"); !errors.As(err, &limit) {
		t.Fatalf("send %d in the window: %v", MaxSends+1, err)
	}
	// The destination has its own count: another user cannot text it.
	bob := Actor{User: "bob", Address: "192.0.2.9"}
	bs, _, _ := r.SignIn(ctx, bob, SignIn{User: "bob"})
	if _, err := r.StartMethod(ctx, bob, bs.Session, MethodSMS, "+44 7700 900123"); !errors.As(err, &limit) {
		t.Fatalf("a fourth text to one number from another user: %v", err)
	}
	// The window passes; a code older than SentCodeTTL no longer works.
	clk.add(SendWindow)
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+44 7700 900123"); err != nil {
		t.Fatal(err)
	}
	_, code = tx.lastCode(t)
	clk.add(SentCodeTTL + time.Second)
	if _, _, err := r.ConfirmMethod(ctx, alice, s, MethodSMS, code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("an expired code: %v", err)
	}
}

// TestSeveralMethods: a user holds TOTP, email and SMS, picks the primary,
// adds methods only at AAL2, and removes them with fresh proof; removing
// the last is turning 2FA off.
func TestSeveralMethods(t *testing.T) {
	svc, r, clk, box, tx := methodsRealm(t)
	ctx := context.Background()
	secret, done, codes := enrol(t, r, clk)
	s := done.Session

	// A password-only session of a user with a factor cannot add a method.
	old := &session.Session{User: "alice", State: session.Active, AAL: 1}
	if _, err := r.StartMethod(ctx, alice, old, MethodEmail, "alice@example.com"); !errors.Is(err, ErrAAL2Required) {
		t.Fatalf("adding a method at AAL1: %v", err)
	}
	if _, err := r.StartMethod(ctx, alice, s, MethodEmail, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	_, code := box.lastCode(t)
	ch, more, err := r.ConfirmMethod(ctx, alice, s, MethodEmail, code)
	if err != nil || len(more) != 0 {
		t.Fatalf("a second method: %v, %d new recovery codes (want none: hers stay)", err, len(more))
	}
	s = ch.Session
	if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+14155550100"); err != nil {
		t.Fatal(err)
	}
	_, code = tx.lastCode(t)
	if ch, _, err = r.ConfirmMethod(ctx, alice, s, MethodSMS, code); err != nil {
		t.Fatal(err)
	}
	s = ch.Session
	u, _ := svc.User(ctx, "alice")
	if got := strings.Join(Methods(u), ","); got != "totp,email,sms" {
		t.Fatalf("methods %s", got)
	}
	if err := r.SetPrimary(ctx, alice, s, "webauthn"); !errors.Is(err, ErrMethodNotSetUp) {
		t.Fatalf("primary of a method she lacks: %v", err)
	}
	if err := r.SetPrimary(ctx, alice, s, MethodSMS); err != nil {
		t.Fatal(err)
	}
	u, _ = svc.User(ctx, "alice")
	if got := strings.Join(Methods(u), ","); got != "sms,totp,email" || methodOf(u) != MethodSMS {
		t.Fatalf("methods after the primary changed: %s", got)
	}

	// Removing one takes fresh proof.
	if err := r.RemoveMethod(ctx, alice, s, MethodSMS, ""); !errors.Is(err, ErrProofRequired) {
		t.Fatalf("removal without proof: %v", err)
	}
	clk.add(30 * time.Second)
	if err := r.RemoveMethod(ctx, alice, s, MethodSMS, totp.Code(secret, clk.now())); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveMethod(ctx, alice, s, MethodTOTP, codes[0]); err != nil {
		t.Fatal(err)
	}
	u, _ = svc.User(ctx, "alice")
	if got := strings.Join(Methods(u), ","); got != "email" || len(u.RecoveryHashes) != 9 {
		t.Fatalf("after two removals: %s, %d codes", got, len(u.RecoveryHashes))
	}
	// An email-only user proves with a code sent to confirm the change.
	clk.add(ResendAfter)
	if _, err := r.SendConfirmCode(ctx, alice, s, MethodEmail); err != nil {
		t.Fatal(err)
	}
	_, code = box.lastCode(t)
	if err := r.RemoveMethod(ctx, alice, s, MethodEmail, otherThan(code)); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("a wrong sent code as proof: %v", err)
	}
	if err := r.RemoveMethod(ctx, alice, s, MethodEmail, code); err != nil {
		t.Fatalf("the last method with its sent code: %v", err)
	}
	u, _ = svc.User(ctx, "alice")
	if HasFactor(u) || len(u.RecoveryHashes) != 0 || len(u.Codes) != 0 {
		t.Fatalf("removing the last method left a factor: %+v", u)
	}
}

// TestRemoveLastMethodUnderPolicy: a team that requires 2FA keeps a user
// from removing their last method.
func TestRemoveLastMethodUnderPolicy(t *testing.T) {
	svc, r, clk, _, _ := methodsRealm(t)
	ctx := context.Background()
	secret, done, _ := enrol(t, r, clk)
	if _, _, err := svc.SetRequire2FA(ctx, Operator, "default", true); err != nil {
		t.Fatal(err)
	}
	clk.add(30 * time.Second)
	if err := r.RemoveMethod(ctx, alice, done.Session, MethodTOTP, totp.Code(secret, clk.now())); !errors.Is(err, ErrPolicyRequires) {
		t.Fatalf("removing the last method under require 2FA: %v", err)
	}
	if u, _ := svc.User(ctx, "alice"); !u.TOTPConfirmed {
		t.Fatal("the refused removal took the authenticator")
	}
}

// TestMethodsNotConfigured: without email or text messages configured, or
// when the operator allows only some methods, the others are refused.
func TestMethodsNotConfigured(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		allowed map[string]bool
	}{
		{"nothing configured", nil, map[string]bool{MethodTOTP: true}},
		{"email only allowed", func(c *Config) { c.Mailer, c.Texter, c.Methods = &outbox{}, &texts{}, []string{MethodEmail} },
			map[string]bool{MethodEmail: true}},
	} {
		r := newRealm(t, svc, tc.mod)
		for _, m := range []string{MethodTOTP, MethodEmail, MethodSMS} {
			if r.MethodAllowed(m) != tc.allowed[m] {
				t.Errorf("%s: %s allowed %v", tc.name, m, r.MethodAllowed(m))
			}
		}
		s := &session.Session{User: "zed", State: session.Active, AAL: 1}
		if _, err := r.StartMethod(ctx, alice, s, MethodSMS, "+14155550100"); !errors.Is(err, ErrMethodUnavailable) {
			t.Errorf("%s: sms: %v", tc.name, err)
		}
	}
}

// TestKeepDevices: expired records go, and past maxDevices the least
// recently used.
func TestKeepDevices(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var ds []storage.Device
	for i := range maxDevices + 3 {
		ds = append(ds, storage.Device{ID: fmt.Sprint(i), LastUsed: now.Add(time.Duration(i) * time.Minute), Expires: now.Add(time.Hour)})
	}
	ds = append(ds, storage.Device{ID: "old", LastUsed: now.Add(time.Hour), Expires: now})
	got := keepDevices(ds, now)
	if len(got) != maxDevices {
		t.Fatalf("%d kept, want %d", len(got), maxDevices)
	}
	for _, d := range got {
		if d.ID == "old" || d.ID == "0" || d.ID == "1" || d.ID == "2" {
			t.Fatalf("kept %s: expired or least recently used", d.ID)
		}
	}
}
