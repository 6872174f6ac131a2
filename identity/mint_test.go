package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"sync"
	"testing"
	"time"
)

// Tokens in these tests are minted by hand, as a customer's backend would:
// base64url(header) "." base64url(payload) "." base64url(HMAC(secret,
// signing input)), with crypto/hmac, never with golang-jwt or any code of
// this package, so that a bug shared by minting and verifying cannot hide.

var (
	secretA = []byte("ha_secret_q3Jx0vYt2mC8bW1nR5sLk9pZ4eH7uD6aF0gT3iO2yVw")
	secretB = []byte("ha_secret_Zp8Lm2Qw5Er7Ty1Ui3Op9As4Df6Gh0Jk2Lz5Xc8Vb1")
)

var t0 = time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// mintRaw signs header and payload, given as JSON text, with secret under
// the named HMAC; alg "" leaves the signature empty (alg none).
func mintRaw(secret []byte, mac, header, payload string) string {
	input := b64([]byte(header)) + "." + b64([]byte(payload))
	var h func() hash.Hash
	switch mac {
	case "":
		return input + "."
	case "HS256":
		h = sha256.New
	case "HS512":
		h = sha512.New
	default:
		panic("unknown mac " + mac)
	}
	m := hmac.New(h, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

// mint makes an HS256 token with the given claims.
func mint(tb testing.TB, secret []byte, claims map[string]any) string {
	tb.Helper()
	p, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return mintRaw(secret, "HS256", `{"alg":"HS256","typ":"JWT"}`, string(p))
}

// userToken is a valid token for user, expiring an hour after t0.
func userToken(tb testing.TB, secret []byte, user string) string {
	return mint(tb, secret, map[string]any{"sub": user, "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()})
}

// clock is an injectable, adjustable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
