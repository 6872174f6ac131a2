package identity

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func newTestVerifier(t testing.TB, clk *clock, mod func(*VerifierOptions)) *Verifier {
	t.Helper()
	o := VerifierOptions{Current: secretA, Now: clk.Now}
	if mod != nil {
		mod(&o)
	}
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyCauses(t *testing.T) {
	exp := t0.Add(time.Hour).Unix()
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	valid := userToken(t, secretA, "u1")
	parts := strings.Split(valid, ".")
	// The same payload with another user, keeping the original signature.
	tampered := parts[0] + "." + b64([]byte(fmt.Sprintf(`{"sub":"u2","exp":%d}`, exp))) + "." + parts[2]
	// The signature's last base64 character carries 4 bits of the MAC and 2
	// padding bits; flipping a padding bit gives a second spelling of the
	// same bytes, which strict decoding refuses.
	sig := []byte(parts[2])
	sig[len(sig)-1] ^= 0x01
	nonCanonical := parts[0] + "." + parts[1] + "." + string(sig)

	tests := []struct {
		name    string
		token   string
		user    string
		verdict Verdict
		cause   Cause
	}{
		{"anonymous without token", "", "", Anonymous, ""},
		{"anonymous with token", valid, "", Anonymous, ""},
		{"anonymous with garbage", "garbage", "", Anonymous, ""},
		{"valid sub", valid, "u1", Verified, ""},
		{"valid user_id", mint(t, secretA, map[string]any{"user_id": "u1", "exp": exp}), "u1", Verified, ""},
		{"numeric user_id", mint(t, secretA, map[string]any{"user_id": 42, "exp": exp}), "42", Verified, ""},
		{"user_id wins over sub", mint(t, secretA, map[string]any{"sub": "tenant", "user_id": "u1", "exp": exp}), "u1", Verified, ""},
		{"sub ignored when user_id present", mint(t, secretA, map[string]any{"sub": "tenant", "user_id": "u1", "exp": exp}), "tenant", Unverified, CauseUserMismatch},
		{"unknown claims ignored", mint(t, secretA, map[string]any{"sub": "u1", "exp": exp, "name": "Ann", "aud": []string{"x"}}), "u1", Verified, ""},

		{"missing token", "", "u1", Unverified, CauseMissingToken},

		{"expired", mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(-time.Minute).Unix()}), "u1", Unverified, CauseExpiredToken},
		{"expired within leeway", mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(-10 * time.Second).Unix()}), "u1", Verified, ""},
		{"expired at leeway edge", mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(-30 * time.Second).Unix()}), "u1", Unverified, CauseExpiredToken},
		{"nbf in future", mint(t, secretA, map[string]any{"sub": "u1", "exp": exp, "nbf": t0.Add(5 * time.Minute).Unix()}), "u1", Unverified, CauseNotYetValid},
		{"nbf within leeway", mint(t, secretA, map[string]any{"sub": "u1", "exp": exp, "nbf": t0.Add(10 * time.Second).Unix()}), "u1", Verified, ""},
		{"iat in future", mint(t, secretA, map[string]any{"sub": "u1", "exp": exp, "iat": t0.Add(5 * time.Minute).Unix()}), "u1", Unverified, CauseNotYetValid},
		{"exp missing", mint(t, secretA, map[string]any{"sub": "u1"}), "u1", Unverified, CauseMalformedToken},
		{"exp not a number", mint(t, secretA, map[string]any{"sub": "u1", "exp": "tomorrow"}), "u1", Unverified, CauseMalformedToken},

		{"signature by another secret", userToken(t, secretB, "u1"), "u1", Unverified, CauseSignatureMismatch},
		{"payload tampered", tampered, "u2", Unverified, CauseSignatureMismatch},
		{"signature stripped", parts[0] + "." + parts[1] + ".", "u1", Unverified, CauseSignatureMismatch},
		{"forged and expired reports the signature", mint(t, secretB, map[string]any{"sub": "u1", "exp": t0.Add(-time.Hour).Unix()}), "u1", Unverified, CauseSignatureMismatch},
		{"non-canonical base64", nonCanonical, "u1", Unverified, CauseMalformedToken},

		{"user mismatch", userToken(t, secretA, "u2"), "u1", Unverified, CauseUserMismatch},
		{"user mismatch user_id", mint(t, secretA, map[string]any{"user_id": "u2", "exp": exp}), "u1", Unverified, CauseUserMismatch},
		{"user id case matters", userToken(t, secretA, "U1"), "u1", Unverified, CauseUserMismatch},

		{"garbage", "garbage", "u1", Unverified, CauseMalformedToken},
		{"two parts", parts[0] + "." + parts[1], "u1", Unverified, CauseMalformedToken},
		{"four parts", valid + ".x", "u1", Unverified, CauseMalformedToken},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], "u1", Unverified, CauseMalformedToken},
		{"bad base64 payload", parts[0] + ".%%%." + parts[2], "u1", Unverified, CauseMalformedToken},
		{"header not JSON", mintRaw(secretA, "HS256", `{alg:HS256}`, `{"sub":"u1","exp":1}`), "u1", Unverified, CauseMalformedToken},
		{"payload not JSON", mintRaw(secretA, "HS256", hs256, `{"sub":"u1",`), "u1", Unverified, CauseMalformedToken},
		{"payload an array", mintRaw(secretA, "HS256", hs256, `["u1"]`), "u1", Unverified, CauseMalformedToken},
		{"sub an object", mint(t, secretA, map[string]any{"sub": map[string]string{"id": "u1"}, "exp": exp}), "u1", Unverified, CauseMalformedToken},
		{"user_id a fraction", mint(t, secretA, map[string]any{"user_id": 4.5, "exp": exp}), "4.5", Unverified, CauseMalformedToken},
		{"no subject", mint(t, secretA, map[string]any{"exp": exp}), "u1", Unverified, CauseMalformedToken},
		{"no alg", mintRaw(secretA, "HS256", `{"typ":"JWT"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseMalformedToken},
		{"crit header", mintRaw(secretA, "HS256", `{"alg":"HS256","crit":["x"],"x":1}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseMalformedToken},

		{"alg none", mintRaw(nil, "", `{"alg":"none"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},
		{"alg None", mintRaw(nil, "", `{"alg":"None"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},
		{"alg HS512", mintRaw(secretA, "HS512", `{"alg":"HS512"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},
		{"alg RS256", mintRaw(secretA, "HS256", `{"alg":"RS256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},
		{"alg lowercase", mintRaw(secretA, "HS256", `{"alg":"hs256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},
		{"alg unknown", mintRaw(secretA, "HS256", `{"alg":"XX999"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1", Unverified, CauseAlgorithm},

		{"too large", valid + strings.Repeat("x", DefaultMaxTokenBytes), "u1", Unverified, CauseTokenTooLarge},
		{"too large garbage", strings.Repeat(".", DefaultMaxTokenBytes+1), "u1", Unverified, CauseTokenTooLarge},
	}
	for _, cached := range []bool{true, false} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("cache=%v/%s", cached, tc.name), func(t *testing.T) {
				v := newTestVerifier(t, newClock(t0), func(o *VerifierOptions) {
					if !cached {
						o.CacheSize = -1
					}
				})
				// Twice: the second answer may come from a cache and must
				// be the same.
				for i := range 2 {
					verdict, cause := v.Verify(tc.token, tc.user)
					if verdict != tc.verdict || cause != tc.cause {
						t.Fatalf("call %d: Verify = %v, %q; want %v, %q", i+1, verdict, cause, tc.verdict, tc.cause)
					}
				}
			})
		}
	}
}

func TestMaxTokenBytes(t *testing.T) {
	tok := userToken(t, secretA, "u1")
	v := newTestVerifier(t, newClock(t0), func(o *VerifierOptions) { o.MaxTokenBytes = len(tok) })
	if got, c := v.Verify(tok, "u1"); got != Verified {
		t.Fatalf("at the limit: %v %q", got, c)
	}
	v = newTestVerifier(t, newClock(t0), func(o *VerifierOptions) { o.MaxTokenBytes = len(tok) - 1 })
	if got, c := v.Verify(tok, "u1"); got != Unverified || c != CauseTokenTooLarge {
		t.Fatalf("over the limit: %v %q", got, c)
	}
	if n := v.parses.Load(); n != 0 {
		t.Fatalf("a too-large token was parsed (%d)", n)
	}
}

func TestLeewayOption(t *testing.T) {
	tok := mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(-10 * time.Second).Unix()})
	for _, tc := range []struct {
		leeway time.Duration
		want   Verdict
	}{
		{0, Verified}, // default 30s
		{-1, Unverified},
		{5 * time.Second, Unverified},
		{time.Minute, Verified},
	} {
		v := newTestVerifier(t, newClock(t0), func(o *VerifierOptions) { o.Leeway = tc.leeway })
		if got, _ := v.Verify(tok, "u1"); got != tc.want {
			t.Errorf("leeway %v: %v, want %v", tc.leeway, got, tc.want)
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	for _, o := range []VerifierOptions{
		{},
		{Current: []byte("short")},
		{Current: secretA, Previous: []byte("short"), PrevUntil: t0},
	} {
		if _, err := NewVerifier(o); err == nil {
			t.Errorf("NewVerifier(%d-byte secret, %d-byte previous) succeeded", len(o.Current), len(o.Previous))
		}
	}
}

func TestVerifierCache(t *testing.T) {
	clk := newClock(t0)
	v := newTestVerifier(t, clk, nil)
	tok := mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(10 * time.Minute).Unix()})

	check := func(step string, user string, wantV Verdict, wantC Cause, wantParses uint64) {
		t.Helper()
		gotV, gotC := v.Verify(tok, user)
		if gotV != wantV || gotC != wantC {
			t.Fatalf("%s: Verify = %v %q, want %v %q", step, gotV, gotC, wantV, wantC)
		}
		if n := v.parses.Load(); n != wantParses {
			t.Fatalf("%s: %d parses, want %d", step, n, wantParses)
		}
	}
	check("first", "u1", Verified, "", 1)
	check("second is cached", "u1", Verified, "", 1)
	check("other user from cache", "u2", Unverified, CauseUserMismatch, 1)
	check("right user still verified", "u1", Verified, "", 1)
	check("anonymous", "", Anonymous, "", 1)
	clk.Advance(10*time.Minute + 29*time.Second)
	check("within leeway after exp", "u1", Verified, "", 1)
	clk.Advance(time.Second)
	check("expired in cache", "u1", Unverified, CauseExpiredToken, 1)
	if n := v.good.len(); n != 0 {
		t.Fatalf("expired entry kept (%d entries)", n)
	}
	check("expired, parsed again", "u1", Unverified, CauseExpiredToken, 2)
	check("expired, negative cache", "u1", Unverified, CauseExpiredToken, 2)
}

func TestVerifierNegativeCache(t *testing.T) {
	clk := newClock(t0)
	v := newTestVerifier(t, clk, nil)
	forged := userToken(t, secretB, "u1")
	for range 3 {
		if _, c := v.Verify(forged, "u1"); c != CauseSignatureMismatch {
			t.Fatalf("cause %q", c)
		}
	}
	if n := v.parses.Load(); n != 1 {
		t.Fatalf("forged token parsed %d times, want 1", n)
	}
	// Not yet valid heals with time, so it is not cached.
	early := mint(t, secretA, map[string]any{"sub": "u1", "exp": t0.Add(time.Hour).Unix(), "nbf": t0.Add(time.Minute).Unix()})
	if _, c := v.Verify(early, "u1"); c != CauseNotYetValid {
		t.Fatalf("early: %q", c)
	}
	clk.Advance(time.Minute)
	if got, c := v.Verify(early, "u1"); got != Verified {
		t.Fatalf("once valid: %v %q", got, c)
	}
	// A failure is never turned into a success by the good cache and vice
	// versa: a verified token stays verified after a failure was cached.
	good := userToken(t, secretA, "u1")
	v.Verify(good, "u1")
	v.Verify(forged, "u1")
	if got, _ := v.Verify(good, "u1"); got != Verified {
		t.Fatal("good token no longer verified")
	}
}

func TestVerifierRotation(t *testing.T) {
	clk := newClock(t0)
	until := t0.Add(time.Hour)
	v := newTestVerifier(t, clk, func(o *VerifierOptions) {
		o.Current, o.Previous, o.PrevUntil = secretB, secretA, until
	})
	exp := t0.Add(3 * time.Hour).Unix()
	oldCached := mint(t, secretA, map[string]any{"sub": "u1", "exp": exp})
	oldFresh := mint(t, secretA, map[string]any{"sub": "u2", "exp": exp})
	newTok := mint(t, secretB, map[string]any{"sub": "u1", "exp": exp})
	otherTok := mint(t, []byte("ha_secret_some_other_secret_that_nobody_has_000"), map[string]any{"sub": "u1", "exp": exp})

	expect := func(step, tok, user string, want Verdict, wantC Cause) {
		t.Helper()
		if got, c := v.Verify(tok, user); got != want || c != wantC {
			t.Fatalf("%s: %v %q, want %v %q", step, got, c, want, wantC)
		}
	}
	expect("new secret", newTok, "u1", Verified, "")
	expect("old secret inside the window", oldCached, "u1", Verified, "")
	expect("old secret, cached", oldCached, "u1", Verified, "")
	expect("old secret, cached, other user", oldCached, "u2", Unverified, CauseUserMismatch)
	expect("neither secret", otherTok, "u1", Unverified, CauseSignatureMismatch)
	parses := v.parses.Load()

	clk.Set(until.Add(-time.Nanosecond))
	expect("old secret, last moment", oldCached, "u1", Verified, "")
	clk.Set(until)
	expect("old secret, cached, after the window", oldCached, "u1", Unverified, CauseSignatureMismatch)
	if n := v.parses.Load(); n != parses {
		t.Fatalf("cached refusal parsed (%d → %d)", parses, n)
	}
	expect("old secret, uncached, after the window", oldFresh, "u2", Unverified, CauseSignatureMismatch)
	expect("old secret, after the window, again", oldCached, "u1", Unverified, CauseSignatureMismatch)
	expect("new secret after the window", newTok, "u1", Verified, "")
}

func TestVerifierCacheBounded(t *testing.T) {
	v := newTestVerifier(t, newClock(t0), func(o *VerifierOptions) { o.CacheSize = 16 })
	for i := range 200 {
		user := fmt.Sprintf("user-%d", i)
		if got, c := v.Verify(userToken(t, secretA, user), user); got != Verified {
			t.Fatalf("%s: %v %q", user, got, c)
		}
	}
	if n := v.good.len(); n > 16 || n == 0 {
		t.Fatalf("cache holds %d entries, want 1..16", n)
	}
	// Byte bound: entries of ~1 KiB against a 4 KiB budget.
	v = newTestVerifier(t, newClock(t0), func(o *VerifierOptions) { o.CacheSize, o.CacheBytes = 1000, 4096 })
	for i := range 50 {
		user := fmt.Sprintf("%s-%d", strings.Repeat("u", 500), i)
		if got, _ := v.Verify(userToken(t, secretA, user), user); got != Verified {
			t.Fatal("not verified")
		}
	}
	if n := v.good.len(); n > 4 {
		t.Fatalf("cache holds %d ~1 KiB entries within 4 KiB", n)
	}
}

func TestCacheCollision(t *testing.T) {
	c := newCache[goodEntry](16, 1<<20)
	c.put(7, "token-a", goodEntry{sub: "alice", deadline: 1}, 5)
	if _, ok := c.get(7, "token-b"); ok {
		t.Fatal("a different token with the same hash hit the cache")
	}
	if e, ok := c.get(7, "token-a"); !ok || e.sub != "alice" {
		t.Fatal("the stored token missed")
	}
	c.remove(7, "token-b")
	if _, ok := c.get(7, "token-a"); !ok {
		t.Fatal("remove of another token deleted the entry")
	}
	c.put(7, "token-b", goodEntry{sub: "bob"}, 3)
	if _, ok := c.get(7, "token-a"); ok {
		t.Fatal("replaced entry still answers")
	}
	if e, ok := c.get(7, "token-b"); !ok || e.sub != "bob" {
		t.Fatal("replacement missing")
	}
	if c.len() != 1 {
		t.Fatalf("len %d", c.len())
	}
}

func TestVerifierNoSecretInFormatting(t *testing.T) {
	v := newTestVerifier(t, newClock(t0), nil)
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v)} {
		if strings.Contains(s, string(secretA)) || strings.Contains(s, fmt.Sprint(secretA)) {
			t.Fatalf("secret in %q", s)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"off": Off, "Monitor": Monitor, " ENFORCE ": Enforce} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "on", "enforced"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) succeeded", in)
		}
	}
}

func TestWordsAndStrings(t *testing.T) {
	want := map[Cause]string{
		CauseMissingToken:      "missing token",
		CauseExpiredToken:      "expired token",
		CauseSignatureMismatch: "signature mismatch",
		CauseUserMismatch:      "user mismatch",
		CauseMalformedToken:    "malformed token",
		CauseAlgorithm:         "algorithm not allowed",
		CauseTokenTooLarge:     "token too large",
		CauseNotYetValid:       "token not yet valid",
		"":                     "",
		"some_new_cause":       "some new cause",
	}
	for c, w := range want {
		if got := c.Words(); got != w {
			t.Errorf("%q.Words() = %q, want %q", c, got, w)
		}
	}
	for i, c := range Causes() {
		if j, ok := c.index(); !ok || j != i {
			t.Errorf("%q: index %d, %v; want %d", c, j, ok, i)
		}
	}
	for v, w := range map[Verdict]string{Anonymous: "anonymous", Verified: "verified", Unverified: "unverified", Verdict(9): "unverified"} {
		if got := v.String(); got != w {
			t.Errorf("Verdict(%d) = %q, want %q", v, got, w)
		}
	}
}

// Claim names are case-sensitive (RFC 7519 4): a token whose only identity
// claim is spelled "User_Id" or "SUB" has no subject.
func TestClaimNamesExact(t *testing.T) {
	exp := t0.Add(time.Hour).Unix()
	v := newTestVerifier(t, newClock(t0), nil)
	for _, claims := range []map[string]any{
		{"User_Id": "alice", "exp": exp},
		{"SUB": "alice", "exp": exp},
		{"sub": "bob", "USER_ID": "alice", "exp": exp},
		{"sub": "alice", "EXP": exp},
	} {
		got, c := v.Verify(mint(t, secretA, claims), "alice")
		if got == Verified {
			t.Errorf("%v verified as alice", claims)
		}
		if c != CauseMalformedToken && c != CauseUserMismatch {
			t.Errorf("%v: cause %q", claims, c)
		}
	}
}
