package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signedBySecret is an independent check that token is an HS256 JWT signed
// with secret: three parts, header alg exactly "HS256", and the third part
// the strict base64url of HMAC-SHA256 over the first two.
func signedBySecret(token string, secret []byte) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &header) != nil || header.Alg != "HS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, m.Sum(nil))
}

// FuzzVerify: whatever the token and claimed id, Verify never panics, never
// says Verified for a token not signed with the secret, and answers the
// same from its cache as from a parse.
func FuzzVerify(f *testing.F) {
	exp := t0.Add(time.Hour).Unix()
	f.Add(userToken(f, secretA, "u1"), "u1")
	f.Add(userToken(f, secretA, "u1"), "u2")
	f.Add(userToken(f, secretB, "u1"), "u1")
	f.Add(mint(f, secretA, map[string]any{"user_id": 42, "exp": exp}), "42")
	f.Add(mint(f, secretA, map[string]any{"sub": "u1", "exp": t0.Add(-time.Hour).Unix()}), "u1")
	f.Add(mintRaw(nil, "", `{"alg":"none"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1")
	f.Add(mintRaw(secretA, "HS512", `{"alg":"HS512"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)), "u1")
	f.Add("a.b.c", "u1")
	f.Add("", "u1")
	f.Add("garbage", "")

	clk := newClock(t0)
	cached := newTestVerifier(f, clk, nil)
	uncached := newTestVerifier(f, clk, func(o *VerifierOptions) { o.CacheSize = -1 })
	f.Fuzz(func(t *testing.T, token, user string) {
		v1, c1 := cached.Verify(token, user)
		v2, c2 := cached.Verify(token, user) // possibly from the cache
		v3, c3 := uncached.Verify(token, user)
		if v1 != v2 || c1 != c2 || v1 != v3 || c1 != c3 {
			t.Fatalf("inconsistent: %v %q / cached %v %q / uncached %v %q", v1, c1, v2, c2, v3, c3)
		}
		switch v1 {
		case Verified:
			if !signedBySecret(token, secretA) {
				t.Fatalf("verified a token not signed with the secret: %q", token)
			}
			if user == "" || c1 != "" {
				t.Fatalf("verified with user %q, cause %q", user, c1)
			}
		case Anonymous:
			if user != "" {
				t.Fatal("anonymous with a claimed user")
			}
		case Unverified:
			if _, ok := c1.index(); !ok {
				t.Fatalf("unverified with cause %q", c1)
			}
		default:
			t.Fatalf("verdict %d", v1)
		}
	})
}

// FuzzVerifyClaims signs arbitrary headers and payloads with the secret, so
// that the claim handling behind the signature check is reached: a
// Verified token must name HS256, carry an exp still valid, and have the
// claimed user as its subject (user_id if present, else sub), as decoded
// here independently.
func FuzzVerifyClaims(f *testing.F) {
	exp := t0.Add(time.Hour).Unix()
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp), "u1")
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":7,"sub":"x","exp":%d}`, exp), "7")
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":null,"sub":"u1","exp":%d.5,"nbf":%d}`, exp, exp-7200), "u1")
	f.Add(`{"alg":"HS256","crit":[]}`, fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp), "u1")
	f.Add(`{"alg":"none"}`, `{"sub":"u1"}`, "u1")
	f.Add(`{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":-12,"exp":%d}`, exp), "-12")

	clk := newClock(t0)
	v := newTestVerifier(f, clk, nil)
	f.Fuzz(func(t *testing.T, header, payload, user string) {
		token := mintRaw(secretA, "HS256", header, payload)
		got, cause := v.Verify(token, user)
		if got != Verified {
			return
		}
		var h map[string]any
		if err := json.Unmarshal([]byte(header), &h); err != nil || h["alg"] != "HS256" {
			t.Fatalf("verified with header %s", header)
		}
		if _, crit := h["crit"]; crit {
			t.Fatalf("verified with crit: %s", header)
		}
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.UseNumber() // keep numbers' digits as written
		var p map[string]any
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("verified with payload %s", payload)
		}
		e, ok := p["exp"].(json.Number)
		ef, err := e.Float64()
		if !ok || err != nil || float64(clk.Now().Add(-DefaultLeeway).Unix()) >= ef+1 {
			t.Fatalf("verified with exp %v: %s", p["exp"], payload)
		}
		subject := ""
		for _, k := range []string{"user_id", "sub"} {
			switch x := p[k].(type) {
			case string:
				subject = x
			case json.Number:
				if _, err := strconv.ParseInt(string(x), 10, 64); err == nil || isDigits(string(x)) {
					subject = string(x)
				}
			}
			if subject != "" {
				break
			}
		}
		if subject != user || cause != "" {
			t.Fatalf("verified user %q, subject %q: %s", user, subject, payload)
		}
	})
}

// isDigits reports whether s is an optional minus and decimal digits (an
// integer too large for int64 is still an integer).
func isDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// refClaims decodes the five claims with encoding/json alone: a map keeps
// names exact, the last duplicate wins, and the values follow the rules
// claims.UnmarshalJSON documents (dates converted by the same formula, so
// that only the JSON handling is compared).
func refClaims(payload []byte) (c claims, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil || m == nil {
		return claims{}, false
	}
	date := func(name string) (*jwt.NumericDate, bool) {
		raw, present := m[name]
		if !present || string(raw) == "null" {
			return nil, true
		}
		var n json.Number
		if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
			return nil, false
		}
		f, err := n.Float64()
		if err != nil {
			return nil, false
		}
		round, frac := math.Modf(f)
		return jwt.NewNumericDate(time.Unix(int64(round), int64(frac*1e9))), true
	}
	id := func(name string) (string, bool) {
		raw, present := m[name]
		if !present || string(raw) == "null" {
			return "", true
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		if isDigits(string(raw)) {
			return string(raw), true
		}
		return "", false
	}
	var good [5]bool
	c.Sub, good[0] = id("sub")
	c.UserID, good[1] = id("user_id")
	c.Exp, good[2] = date("exp")
	c.Nbf, good[3] = date("nbf")
	c.Iat, good[4] = date("iat")
	for _, g := range good {
		if !g {
			return claims{}, false
		}
	}
	return c, true
}

func sameDate(a, b *jwt.NumericDate) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b.Time)
}

// FuzzClaimsDecode: the claims scanner agrees with encoding/json on every
// valid JSON payload, and never panics on invalid ones.
func FuzzClaimsDecode(f *testing.F) {
	for _, s := range []string{
		`{"sub":"u1","exp":1700000000}`,
		`{"user_id":42,"sub":"x","exp":1.5e9,"nbf":null,"iat":-3}`,
		`{"SUB":"a","User_Id":"b","ſub":"c","\u0073ub":"d"}`,
		`{"sub":"a","sub":"b","x":{"sub":"c","y":[1,"}",{"z":"\""}]}}`,
		`{"exp":"1700000000","sub":"é\n"}`,
		`{"user_id":1.0}`, `{"user_id":true}`, `{"sub":"\ud800"}`, `{"sub":"ÿ"}`,
		`[]`, `null`, `{`, `{"a":}`, `{"a":1,}`, ` { } `, `{"exp":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var got claims
		err := got.UnmarshalJSON(payload)
		if !json.Valid(payload) {
			return // only: no panic
		}
		want, ok := refClaims(payload)
		if ok != (err == nil) {
			t.Fatalf("%s: scanner error %v, reference ok %v", payload, err, ok)
		}
		if !ok {
			return
		}
		if got.Sub != want.Sub || got.UserID != want.UserID || !sameDate(got.Exp, want.Exp) || !sameDate(got.Nbf, want.Nbf) || !sameDate(got.Iat, want.Iat) {
			t.Fatalf("%s:\n got %+v\nwant %+v", payload, got, want)
		}
	})
}
