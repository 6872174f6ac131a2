package identity

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Defaults for VerifierOptions.
const (
	DefaultLeeway        = 30 * time.Second
	DefaultMaxTokenBytes = 4096
	DefaultCacheSize     = 65536
	DefaultCacheBytes    = 32 << 20

	// MinSecretBytes is the shortest secret NewVerifier accepts: RFC 7518
	// 3.2 requires an HS256 key of at least the hash size, 256 bits.
	MinSecretBytes = 32
)

// VerifierOptions configures NewVerifier.
type VerifierOptions struct {
	// Current is the identity secret tokens are signed with: the bytes of
	// the secret string as the customer's backend holds it (HMAC libraries
	// take the string as its UTF-8 bytes). Required, at least
	// MinSecretBytes long.
	Current []byte

	// Previous is the secret Current replaced, still accepted until
	// PrevUntil so that customers can redeploy their minting without an
	// outage. Ignored when empty or when PrevUntil is zero.
	Previous  []byte
	PrevUntil time.Time

	// Leeway is the allowed clock skew for exp, nbf and iat. 0 means
	// DefaultLeeway (30s); negative means none.
	Leeway time.Duration

	// MaxTokenBytes refuses longer tokens before any parsing
	// (token_too_large). 0 means DefaultMaxTokenBytes (4096).
	MaxTokenBytes int

	// CacheSize bounds the number of cached verified tokens. 0 means
	// DefaultCacheSize (65536); negative turns the cache off. Failed tokens
	// go in a separate cache an eighth of this size.
	CacheSize int

	// CacheBytes bounds the memory of the verified-token cache (tokens and
	// subjects). 0 means DefaultCacheBytes (32 MiB).
	CacheBytes int

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks widget identity tokens: HS256 JWTs whose user_id (or
// sub) claim must equal the claimed user id. Safe for concurrent use.
//
// A Verifier is immutable: to change the secrets or the mode, build a new
// one. It owns no goroutine, so once the last reference to an old Verifier
// is dropped, its cache is garbage.
//
// # Rules
//
// HS256 only (RFC 7518 3.2); "none" and every other alg are refused with
// algorithm_not_allowed, and the key is never chosen by alg. exp is
// required; exp, nbf and iat are honoured with Leeway. A token with a "crit"
// header is refused as malformed (RFC 7515 4.1.11: we understand no
// extensions). Base64 is decoded strictly (RFC 4648 3.5), so one signature
// has one spelling. The signature is compared in constant time
// (crypto/hmac.Equal). The checks run in golang-jwt's order, so a token
// with several defects gets the cause golang-jwt's parser would give it (a
// forged and expired token is a signature mismatch); see token.go for why
// the token is not handed to jwt.Parser, and the tests that hold the two
// to the same answers.
//
// The token is tried with Current first and, if the signature does not
// match and it is before PrevUntil, with Previous.
//
// # Cache
//
// Verified tokens are cached with their subject, their expiry (exp plus
// Leeway) and which secret verified them, so a hit costs a hash, a map
// lookup and a constant-time compare instead of a parse. Every hit checks
// the expiry against the clock, refuses a token verified by Previous once
// PrevUntil has passed, and compares the claimed user id with the cached
// subject: a user mismatch is never served from the cache as a success.
//
// Failures that depend on the token alone and cannot heal with time
// (malformed, algorithm, signature, expired) are cached separately, in a
// smaller cache, so a misconfigured client that keeps sending the same bad
// token (the usual state while integrating, in Monitor) is not parsed on
// every request, and a flood of distinct bad tokens cannot evict the good
// ones. "Not yet valid" is not cached: it heals once the clock catches up.
type Verifier struct {
	macCur    *macKey
	macPrev   *macKey // nil when there is no previous secret
	prevUntil time.Time
	leeway    time.Duration
	maxToken  int
	now       func() time.Time

	good *cache[goodEntry]
	bad  *cache[Cause]

	parses atomic.Uint64 // uncached checks, plus retries with Previous (test hook)
}

// goodEntry is what the cache remembers about a verified token.
type goodEntry struct {
	sub      string
	deadline int64 // Unix ns: the token is valid while now < deadline (exp + leeway)
	prev     bool  // verified by the previous secret
}

// NewVerifier builds a Verifier. The secrets are copied.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if len(o.Current) < MinSecretBytes {
		return nil, fmt.Errorf("identity: secret is %d bytes, want at least %d", len(o.Current), MinSecretBytes)
	}
	v := &Verifier{
		leeway:   o.Leeway,
		maxToken: o.MaxTokenBytes,
		now:      o.Now,
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	if v.maxToken <= 0 {
		v.maxToken = DefaultMaxTokenBytes
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.macCur = newMACKey(o.Current)
	if len(o.Previous) > 0 && !o.PrevUntil.IsZero() {
		if len(o.Previous) < MinSecretBytes {
			return nil, fmt.Errorf("identity: previous secret is %d bytes, want at least %d", len(o.Previous), MinSecretBytes)
		}
		v.macPrev = newMACKey(o.Previous)
		v.prevUntil = o.PrevUntil
	}
	size := o.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	bytes := o.CacheBytes
	if bytes <= 0 {
		bytes = DefaultCacheBytes
	}
	if size > 0 {
		v.good = newCache[goodEntry](size, bytes)
		v.bad = newCache[Cause](max(1, size/8), max(1, bytes/8))
	}
	return v, nil
}

// String never shows the secrets.
func (v *Verifier) String() string { return "identity.Verifier{secrets redacted}" }

// GoString never shows the secrets.
func (v *Verifier) GoString() string { return v.String() }

// Verify checks that token proves claimedUser.
//
//   - claimedUser "": Anonymous (whatever the token).
//   - token "": Unverified, missing_token.
//   - Verified with an empty Cause when the token is valid for claimedUser,
//     otherwise Unverified with the cause.
func (v *Verifier) Verify(token, claimedUser string) (Verdict, Cause) {
	if claimedUser == "" {
		return Anonymous, ""
	}
	return v.verifyAt(v.now(), token, claimedUser)
}

// verifyAt is Verify for a claimed user, with the clock already read (the
// Service reads it once per request for the cache and the health count).
func (v *Verifier) verifyAt(now time.Time, token, claimedUser string) (Verdict, Cause) {
	if claimedUser == "" {
		return Anonymous, ""
	}
	if token == "" {
		return Unverified, CauseMissingToken
	}
	if len(token) > v.maxToken {
		return Unverified, CauseTokenTooLarge
	}
	var h uint64
	if v.good != nil {
		h = v.good.hash(token)
		if e, ok := v.good.get(h, token); ok {
			return v.checkCached(now, h, token, e, claimedUser)
		}
		if c, ok := v.bad.get(h, token); ok {
			return Unverified, c
		}
	}
	return v.verifyUncached(now, h, token, claimedUser)
}

func (v *Verifier) checkCached(now time.Time, h uint64, token string, e goodEntry, claimedUser string) (Verdict, Cause) {
	// The same order as a parse: the signature (here, whether the secret
	// that verified it is still accepted) before the claims.
	if e.prev && !now.Before(v.prevUntil) {
		// Signed with the secret that was rotated out: a fresh parse would
		// no longer try that secret and would report a signature mismatch.
		v.good.remove(h, token)
		return Unverified, CauseSignatureMismatch
	}
	if now.UnixNano() >= e.deadline {
		v.good.remove(h, token)
		return Unverified, CauseExpiredToken
	}
	if e.sub != claimedUser {
		return Unverified, CauseUserMismatch
	}
	return Verified, ""
}

// verifyUncached checks a token the caches do not know (checkToken, in
// token.go) and caches the outcome.
func (v *Verifier) verifyUncached(now time.Time, h uint64, token, claimedUser string) (Verdict, Cause) {
	var c claims
	v.parses.Add(1)
	prev, cause := v.checkToken(now, token, &c)
	if cause != "" {
		if v.bad != nil && cause != CauseNotYetValid {
			v.bad.put(h, token, cause, 0)
		}
		return Unverified, cause
	}
	sub := c.subject()
	if v.good != nil {
		e := goodEntry{sub: sub, deadline: unixNanoSat(c.Exp.Add(v.leeway)), prev: prev}
		v.good.put(h, token, e, len(sub))
	}
	if sub != claimedUser {
		return Unverified, CauseUserMismatch
	}
	return Verified, ""
}

// unixNanoSat is t.UnixNano, saturated instead of overflowing for times
// outside 1678–2262 (an exp of year 3000 must not wrap into the past).
func unixNanoSat(t time.Time) int64 {
	if t.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	if t.Before(time.Unix(0, math.MinInt64)) {
		return math.MinInt64
	}
	return t.UnixNano()
}
