package identity

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
// has one spelling. The signature is compared in constant time by
// golang-jwt (crypto/hmac.Equal).
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
	parser    *jwt.Parser
	keyCur    jwt.Keyfunc
	keyPrev   jwt.Keyfunc // nil when there is no previous secret
	prevUntil time.Time
	leeway    time.Duration
	maxToken  int
	now       func() time.Time

	good *cache[goodEntry]
	bad  *cache[Cause]

	parses atomic.Uint64 // jwt parses made (test hook)
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
	// The keys are boxed into interfaces once, here: returning a []byte
	// as `any` from the Keyfunc would allocate on every parse.
	var cur any = append([]byte(nil), o.Current...)
	v.keyCur = func(*jwt.Token) (any, error) { return cur, nil }
	if len(o.Previous) > 0 && !o.PrevUntil.IsZero() {
		if len(o.Previous) < MinSecretBytes {
			return nil, fmt.Errorf("identity: previous secret is %d bytes, want at least %d", len(o.Previous), MinSecretBytes)
		}
		var prev any = append([]byte(nil), o.Previous...)
		v.keyPrev = func(*jwt.Token) (any, error) { return prev, nil }
		v.prevUntil = o.PrevUntil
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithStrictDecoding(),
	)
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

// verifyUncached parses the token. The library reads the clock itself
// (WithTimeFunc) for exp, nbf and iat; now only decides whether the
// previous secret is still accepted.
func (v *Verifier) verifyUncached(now time.Time, h uint64, token, claimedUser string) (Verdict, Cause) {
	var c claims
	v.parses.Add(1)
	tok, err := v.parser.ParseWithClaims(token, &c, v.keyCur)
	prev := false
	if err != nil && v.keyPrev != nil && errors.Is(err, jwt.ErrTokenSignatureInvalid) &&
		isHS256(tok) && now.Before(v.prevUntil) {
		c = claims{}
		v.parses.Add(1)
		tok, err = v.parser.ParseWithClaims(token, &c, v.keyPrev)
		prev = true
	}
	cause := Cause("")
	switch {
	case err != nil:
		cause = classify(tok, err)
	case hasCrit(tok):
		cause = CauseMalformedToken
	case c.subject() == "":
		cause = CauseMalformedToken // nothing to compare the claimed id with
	}
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

// isHS256 reports whether tok's header names HS256, the only alg for which
// trying the other secret makes sense.
func isHS256(tok *jwt.Token) bool {
	return tok != nil && tok.Method != nil && tok.Method.Alg() == jwt.SigningMethodHS256.Alg()
}

func hasCrit(tok *jwt.Token) bool {
	_, ok := tok.Header["crit"]
	return ok
}

// classify maps a golang-jwt error to a Cause. The library checks, in
// order: shape and base64 and JSON (ErrTokenMalformed), a known alg
// (ErrTokenUnverifiable), the alg allow-list and then the signature (both
// ErrTokenSignatureInvalid), and last the claims (ErrTokenInvalidClaims
// joined with the reasons). So a token that is both forged and expired
// reports the signature, and nothing about claims leaks to a forger.
func classify(tok *jwt.Token, err error) Cause {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return CauseMalformedToken
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An alg the library does not know ("hs256", "foo"), or none at
		// all: a string alg is an algorithm problem, its absence a shape
		// problem.
		if tok != nil {
			if alg, ok := tok.Header["alg"].(string); ok && alg != "" {
				return CauseAlgorithm
			}
		}
		return CauseMalformedToken
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && !isHS256(tok) {
			return CauseAlgorithm // refused by WithValidMethods: none, HS512, RS256…
		}
		return CauseSignatureMismatch
	case errors.Is(err, jwt.ErrTokenExpired):
		return CauseExpiredToken
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return CauseNotYetValid
	}
	// A missing exp (ErrTokenRequiredClaimMissing), a claim of the wrong
	// type, anything new: fail closed.
	return CauseMalformedToken
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
