package identity

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The reference for checkToken: golang-jwt's full parser, configured and
// classified exactly as this package did before checkToken replaced it on
// the uncached path (the parser options below, classify, the retry with
// the previous secret, then crit and the subject).

// refCheck verifies token with jwt.Parser.ParseWithClaims. It returns what
// checkToken returns, plus the parsed claims.
func (v *Verifier) refCheck(now time.Time, token string, cur, prevKey []byte) (c claims, prev bool, cause Cause) {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	keyFunc := func(key []byte) jwt.Keyfunc {
		return func(*jwt.Token) (any, error) { return key, nil }
	}
	tok, err := parser.ParseWithClaims(token, &c, keyFunc(cur))
	if err != nil && v.macPrev != nil && errors.Is(err, jwt.ErrTokenSignatureInvalid) &&
		refIsHS256(tok) && now.Before(v.prevUntil) {
		c = claims{}
		tok, err = parser.ParseWithClaims(token, &c, keyFunc(prevKey))
		prev = true
	}
	switch {
	case err != nil:
		cause = refClassify(tok, err)
	case refHasCrit(tok):
		cause = CauseMalformedToken
	case c.subject() == "":
		cause = CauseMalformedToken
	}
	if cause == CauseSignatureMismatch || cause == CauseAlgorithm || cause == CauseMalformedToken && err != nil && !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		prev = false // the signature was not (or not validly) checked: which key was tried last does not matter
	}
	return c, prev, cause
}

func refIsHS256(tok *jwt.Token) bool {
	return tok != nil && tok.Method != nil && tok.Method.Alg() == jwt.SigningMethodHS256.Alg()
}

func refHasCrit(tok *jwt.Token) bool {
	_, ok := tok.Header["crit"]
	return ok
}

// refClassify is the former classify: golang-jwt's error to a Cause.
func refClassify(tok *jwt.Token, err error) Cause {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return CauseMalformedToken
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		if tok != nil {
			if alg, ok := tok.Header["alg"].(string); ok && alg != "" {
				return CauseAlgorithm
			}
		}
		return CauseMalformedToken
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && !refIsHS256(tok) {
			return CauseAlgorithm
		}
		return CauseSignatureMismatch
	case errors.Is(err, jwt.ErrTokenExpired):
		return CauseExpiredToken
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return CauseNotYetValid
	}
	return CauseMalformedToken
}

// fastVsRef checks token both ways and fails the test when they differ in
// cause, in the secret that verified it, or, for a valid token, in the
// subject and the expiry.
func fastVsRef(t *testing.T, v *Verifier, now time.Time, token string, cur, prev []byte) Cause {
	t.Helper()
	var got claims
	gotPrev, gotCause := v.checkToken(now, token, &got)
	want, wantPrev, wantCause := v.refCheck(now, token, cur, prev)
	if gotCause != wantCause || gotPrev != wantPrev {
		t.Fatalf("token %q at %v:\n fast   %q prev=%v\n golang-jwt %q prev=%v", token, now, gotCause, gotPrev, wantCause, wantPrev)
	}
	if gotCause == "" && (got.subject() != want.subject() || !got.Exp.Equal(want.Exp.Time)) {
		t.Fatalf("token %q: fast subject %q exp %v, golang-jwt %q exp %v", token, got.subject(), got.Exp, want.subject(), want.Exp)
	}
	return gotCause
}

// refTokens is a table of tokens: valid ones and one per defect, alone and
// combined, each signed with secretA (Current in the rotation verifier),
// secretB (Previous) or another secret.
func refTokens(t testing.TB) []string {
	exp := t0.Add(time.Hour).Unix()
	past := t0.Add(-time.Hour).Unix()
	future := t0.Add(time.Hour / 2).Unix()
	other := []byte("ha_secret_some_other_secret_that_nobody_has_000")
	hs := `{"alg":"HS256","typ":"JWT"}`
	ok := fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)
	valid := mintRaw(secretA, "HS256", hs, ok)
	parts := strings.Split(valid, ".")
	sig := []byte(parts[2])
	sig[len(sig)-1] ^= 0x01

	var toks []string
	headers := []string{
		hs, `{"alg":"HS256"}`, ` { "alg" : "HS256" } `, `{"alg":"HS\u0032\u0035\u0036"}`, `{"\u0061lg":"HS256"}`,
		`{"alg":"HS256","kid":12,"x5u":null,"b":true,"n":[1,{"a":"b"}]}`, `{"alg":"HS256","kid":1e400}`,
		`{"alg":"none","alg":"HS256"}`, `{"alg":"HS256","alg":"none"}`, `{"alg":"HS256","alg":1}`,
		`{"ALG":"HS256"}`, `{"Alg":"HS256","alg":"HS256"}`, `{"alg":"HS256\u0000"}`, "{\"alg\":\"HS256\xff\"}",
		`{"alg":"HS256","crit":["exp"]}`, `{"alg":"HS256","crit":null}`, `{"alg":"HS256","cr\u0069t":1}`,
		`{"typ":"JWT"}`, `{"alg":null}`, `{"alg":""}`, `{"alg":256}`, `{"alg":["HS256"]}`,
		`{"alg":"none"}`, `{"alg":"None"}`, `{"alg":"HS512"}`, `{"alg":"HS384"}`, `{"alg":"RS256"}`, `{"alg":"ES256"}`, `{"alg":"EdDSA"}`,
		`{"alg":"hs256"}`, `{"alg":"XX999"}`,
		`null`, `[]`, `"HS256"`, `1`, `{}`, `{alg:HS256}`, `{"alg":"HS256",}`, `{"alg":"HS256"}x`, ``, `{"alg":"HS256","x":"a` + "\x01" + `"}`,
	}
	payloads := []string{
		ok, fmt.Sprintf(`{"user_id":"u1","sub":"t","exp":%d}`, exp), fmt.Sprintf(`{"user_id":42,"exp":%d.75}`, exp),
		fmt.Sprintf(`{"sub":"u1","exp":%d,"nbf":%d,"iat":%d}`, exp, t0.Unix(), t0.Unix()),
		fmt.Sprintf(`{"sub":"u1","exp":%d}`, past), fmt.Sprintf(`{"sub":"u1","exp":%d,"nbf":%d}`, exp, future),
		fmt.Sprintf(`{"sub":"u1","exp":%d,"iat":%d}`, exp, future), fmt.Sprintf(`{"sub":"u1","exp":%d,"nbf":%d}`, past, future),
		fmt.Sprintf(`{"sub":"u1","nbf":%d}`, future), `{"sub":"u1"}`, fmt.Sprintf(`{"exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"u1","exp":"%d"}`, exp), fmt.Sprintf(`{"sub":{"id":"u1"},"exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"u1","exp":%d,"x":1e400}`, exp), fmt.Sprintf(`{"SUB":"u1","exp":%d}`, exp),
		`{"sub":"u1","exp":1e400}`, fmt.Sprintf(`{"sub":"u1","exp":%d}   `, exp),
		`null`, ` null `, `[]`, `"x"`, `1`, `{}`, `{"sub":"u1",`, ``, fmt.Sprintf(`{"sub":"u1","exp":%d,"x":[}`, exp),
	}
	for _, h := range headers {
		for _, p := range payloads {
			for _, key := range [][]byte{secretA, secretB, other} {
				toks = append(toks, mintRaw(key, "HS256", h, p))
			}
			if strings.Contains(h, "HS512") {
				toks = append(toks, mintRaw(secretA, "HS512", h, p))
			}
			in := b64([]byte(h)) + "." + b64([]byte(p))
			toks = append(toks, in+".", in+".!!!", in+"."+string(sig), in+"."+parts[2]+"A")
		}
	}
	return append(toks,
		valid, "", "garbage", ".", "..", "...", "a.b", "a.b.c", "a.b.c.d", valid+".", "."+valid,
		parts[0]+"."+parts[1], parts[0]+".."+parts[2], "!!!."+parts[1]+"."+parts[2], parts[0]+".%%%."+parts[2],
		parts[0]+"="+"."+parts[1]+"."+parts[2], parts[0]+"."+parts[1]+"."+parts[2]+"=",
		parts[0]+"."+parts[1]+"."+string(sig), strings.Repeat("A", 3000)+"."+parts[1]+"."+parts[2],
	)
}

// refVerifiers returns a verifier without and one with a previous secret,
// and the clock readings to test them at (inside and after the window).
func refVerifiers(t testing.TB) (plain, rotating *Verifier, nows []time.Time) {
	plain = newTestVerifier(t, newClock(t0), nil)
	rotating = newTestVerifier(t, newClock(t0), func(o *VerifierOptions) {
		o.Previous, o.PrevUntil = secretB, t0.Add(time.Minute)
	})
	return plain, rotating, []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Hour)}
}

// TestFastPathMatchesJWT: checkToken and golang-jwt's parser give every
// token of the table the same cause, subject and secret.
func TestFastPathMatchesJWT(t *testing.T) {
	plain, rotating, nows := refVerifiers(t)
	seen := map[Cause]int{}
	for _, tok := range refTokens(t) {
		for _, now := range nows {
			seen[fastVsRef(t, plain, now, tok, secretA, nil)]++
			seen[fastVsRef(t, rotating, now, tok, secretA, secretB)]++
		}
	}
	// The table must reach every cause checkToken can give.
	for _, c := range []Cause{"", CauseMalformedToken, CauseAlgorithm, CauseSignatureMismatch, CauseExpiredToken, CauseNotYetValid} {
		if seen[c] == 0 {
			t.Errorf("no token in the table gives %q", c)
		}
	}
	t.Logf("causes: %v", seen)
}

// FuzzFastPathMatchesJWT: the same comparison on fuzzed tokens. mode picks
// how header, payload and sig become a token: raw text joined with dots, or
// base64url-encoded header and payload signed with Current, with Previous,
// with another secret, or followed by sig as the signature; and the clock.
//
// There is no intended difference: any token on which they disagree is a
// bug in checkToken.
func FuzzFastPathMatchesJWT(f *testing.F) {
	exp := t0.Add(time.Hour).Unix()
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp), "", byte(1))
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp), "", byte(2))
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp), "", byte(6))
	f.Add(`{"alg":"HS256","crit":[]}`, fmt.Sprintf(`{"user_id":7,"exp":%d.5,"nbf":%d}`, exp, exp), "", byte(3))
	f.Add(`{"alg":"none"}`, `{"sub":"u1"}`, "", byte(4))
	f.Add(`{"alg":"HS512"}`, `null`, "!!", byte(4))
	f.Add(`{"alg":"XX"}`, `[]`, "abc", byte(4))
	f.Add("eyJhbGciOiJIUzI1NiJ9", "e30", "abc", byte(0))
	plain, rotating, nows := refVerifiers(f)
	f.Fuzz(func(t *testing.T, header, payload, sig string, mode byte) {
		var token string
		in := b64([]byte(header)) + "." + b64([]byte(payload))
		switch mode % 5 {
		case 0:
			token = header + "." + payload + "." + sig
		case 1:
			token = mintRaw(secretA, "HS256", header, payload)
		case 2:
			token = mintRaw(secretB, "HS256", header, payload)
		case 3:
			token = mintRaw([]byte("ha_secret_some_other_secret_that_nobody_has_000"), "HS256", header, payload)
		case 4:
			token = in + "." + sig
		}
		now := nows[int(mode/5)%len(nows)]
		fastVsRef(t, plain, now, token, secretA, nil)
		fastVsRef(t, rotating, now, token, secretA, secretB)
	})
}

// BenchmarkVerifyTokenCheck: the uncached check alone (no cache, no clock
// read), checkToken against golang-jwt's ParseWithClaims as it was used.
func BenchmarkVerifyTokenCheck(b *testing.B) {
	v := benchVerifier(b, nil)
	tok := benchToken(b, "user-8f3a2c")
	now := time.Now()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c claims
			if _, cause := v.checkToken(now, tok, &c); cause != "" {
				b.Fatal(cause)
			}
		}
	})
	b.Run("golang-jwt", func(b *testing.B) {
		parser := jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(v.leeway),
			jwt.WithTimeFunc(time.Now), jwt.WithStrictDecoding(),
		)
		var key any = secretA
		keyFunc := func(*jwt.Token) (any, error) { return key, nil }
		b.ReportAllocs()
		for b.Loop() {
			var c claims
			if _, err := parser.ParseWithClaims(tok, &c, keyFunc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
