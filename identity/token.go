package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The uncached check: a token verified without golang-jwt's Parser.
//
// Why not jwt.Parser.ParseWithClaims: for one HS256 token of ~200 bytes it
// costs ~6 µs and 44 allocations (a Token, a header map, interface boxing,
// base64 copies, joined errors, and an hmac.New that rehashes the key's
// pads on every call: jwt.SigningMethodHS256.Verify alone is ~1.9 µs and 7
// allocations). With a fresh token on every request that is ~10 µs of
// gateway CPU per request. checkToken does the same checks, in the same
// order, decoding into stack buffers and reusing keyed HMAC states, for
// about a fifth of the time and a few allocations.
//
// Same rules, same answers: TestFastPathMatchesJWT and FuzzFastPathMatchesJWT
// run golang-jwt's full parser, configured as this package used to configure
// it, next to checkToken, and require the same cause, subject and secret for
// every token. The order golang-jwt checks in (and so which cause a token
// with several defects gets) is:
//
//  1. exactly three segments;
//  2. the header: strict base64url, then JSON (an object, into a
//     map[string]any);
//  3. the payload: strict base64url, then JSON (claims.UnmarshalJSON);
//  4. alg: absent, not a string or "" is malformed; a name golang-jwt does
//     not know is algorithm_not_allowed;
//  5. the signature: strict base64url;
//  6. the allow-list: any alg but HS256 is algorithm_not_allowed;
//  7. the HMAC, compared in constant time: signature_mismatch, after
//     trying the previous secret inside its window;
//  8. the claims: expired, else not yet valid (nbf or iat), else a missing
//     exp (malformed);
//  9. then, in this package: a crit header, and no subject, are malformed.
//
// So a forged token never learns anything about its claims, and the
// allow-list is enforced before any key is used, from the header as
// written: alg must be exactly "HS256" (after JSON unescaping) or the token
// is refused, whatever else it carries, and the key is never chosen by alg.
// golang-jwt is still the reference for the alg names it knows
// (jwt.GetSigningMethod, which only orders the causes of refused tokens),
// for the allow-listed name (jwt.SigningMethodHS256), and for NumericDate.
//
// The HMAC is crypto/hmac with SHA-256 and hmac.Equal, as in
// jwt.SigningMethodHMAC.Verify; only the keyed state is reused (see macKey).

// b64Strict decodes strictly (RFC 4648 3.5), as jwt.WithStrictDecoding: the
// unused bits of the last character must be zero, so a signature has one
// spelling. A package variable because Strict returns a new Encoding.
var b64Strict = base64.RawURLEncoding.Strict()

// hs256 is the only alg accepted.
var hs256 = jwt.SigningMethodHS256.Alg()

// stackBuf is the decoded size of header, payload and signature together
// that checkToken decodes on the stack; a larger token costs one
// allocation. Widget tokens are 200–400 bytes (about 150–300 decoded).
const stackBuf = 1024

// checkToken verifies token (already under the size limit) and fills c
// with its claims. It returns the cause ("" for a valid token) and whether
// the previous secret verified it; the caller still compares the subject
// with the claimed user. now decides exp, nbf, iat and the previous
// secret's window.
func (v *Verifier) checkToken(now time.Time, token string, c *claims) (prev bool, cause Cause) {
	// 1. Three segments.
	d1 := strings.IndexByte(token, '.')
	if d1 < 0 {
		return false, CauseMalformedToken
	}
	d2 := strings.IndexByte(token[d1+1:], '.')
	if d2 < 0 {
		return false, CauseMalformedToken
	}
	d2 += d1 + 1
	if strings.IndexByte(token[d2+1:], '.') >= 0 {
		return false, CauseMalformedToken
	}
	hSeg, pSeg, sSeg := token[:d1], token[d1+1:d2], token[d2+1:]

	var stack [stackBuf]byte
	buf := stack[:]
	if n := b64Strict.DecodedLen(len(hSeg)) + b64Strict.DecodedLen(len(pSeg)) + b64Strict.DecodedLen(len(sSeg)); n > len(buf) {
		buf = make([]byte, n)
	}

	// 2. Header.
	header, buf, ok := decodeSeg(buf, hSeg)
	if !ok || !json.Valid(header) {
		return false, CauseMalformedToken
	}
	h, ok := parseHeader(header)
	if !ok {
		return false, CauseMalformedToken
	}

	// 3. Payload. encoding/json checks the whole input before it calls an
	// Unmarshaler, and claims.UnmarshalJSON relies on that: so does this.
	payload, buf, ok := decodeSeg(buf, pSeg)
	if !ok || !json.Valid(payload) {
		return false, CauseMalformedToken
	}
	*c = claims{}
	if !isNull(payload) { // encoding/json sets the Claims interface to nil and leaves the claims empty
		if c.UnmarshalJSON(payload) != nil {
			return false, CauseMalformedToken
		}
	}

	// 4. alg known to golang-jwt.
	if !h.algSet || h.alg == "" {
		return false, CauseMalformedToken
	}
	isHS256 := h.alg == hs256
	if !isHS256 && jwt.GetSigningMethod(h.alg) == nil {
		return false, CauseAlgorithm // "hs256", "XX999"
	}

	// 5. Signature encoding.
	sig, _, ok := decodeSeg(buf, sSeg)
	if !ok {
		return false, CauseMalformedToken
	}

	// 6. The allow-list: HS256 only ("none", HS512, RS256…).
	if !isHS256 {
		return false, CauseAlgorithm
	}

	// 7. The signature, with Current, then Previous inside its window.
	input := token[:d2]
	if !v.macCur.verify(input, sig) {
		if v.macPrev == nil || !now.Before(v.prevUntil) {
			return false, CauseSignatureMismatch
		}
		v.parses.Add(1)
		if !v.macPrev.verify(input, sig) {
			return false, CauseSignatureMismatch
		}
		prev = true
	}

	// 8. Claims, as jwt.Validator with WithExpirationRequired, WithIssuedAt
	// and WithLeeway: the same comparisons on the same values.
	expired := c.Exp != nil && !now.Before(c.Exp.Add(v.leeway))
	early := (c.Nbf != nil && now.Before(c.Nbf.Add(-v.leeway))) ||
		(c.Iat != nil && now.Before(c.Iat.Add(-v.leeway)))
	switch {
	case expired:
		return prev, CauseExpiredToken
	case early:
		return prev, CauseNotYetValid
	case c.Exp == nil:
		return prev, CauseMalformedToken
	}

	// 9. This package's rules.
	if h.crit {
		return prev, CauseMalformedToken // RFC 7515 4.1.11: no extension is understood
	}
	if c.subject() == "" {
		return prev, CauseMalformedToken // nothing to compare the claimed id with
	}
	return prev, ""
}

// decodeSeg decodes the base64url segment seg strictly into the front of
// buf and returns it and the rest of buf.
func decodeSeg(buf []byte, seg string) (dec, rest []byte, ok bool) {
	n, err := b64Strict.Decode(buf[:b64Strict.DecodedLen(len(seg))], []byte(seg))
	if err != nil {
		return nil, nil, false
	}
	return buf[:n:n], buf[n:], true
}

func isNull(b []byte) bool {
	i := skipSpace(b, 0)
	return len(b)-i >= 4 && string(b[i:i+4]) == "null" && trailing(b, i+4) == nil
}

// header is what the verifier reads from the JOSE header.
type header struct {
	alg    string
	algSet bool // alg present and a JSON string
	crit   bool // crit present, whatever its value
}

// parseHeader reads the header as golang-jwt does, json.Unmarshal into a
// map[string]any (exact key names, the last duplicate wins, escapes decoded,
// every number a float64, so a number out of float64's range is an error).
// b has been checked with json.Valid. ok is false where json.Unmarshal
// fails (not an object, or a number out of range).
//
// The usual header, a flat object of plain keys and plain string, number,
// true, false or null values, is scanned without allocating; anything else
// (escapes, bytes over 0x7f, nested values, null) is handed to
// json.Unmarshal into a map, exactly as golang-jwt does, so the two cannot
// differ on the odd cases.
func parseHeader(b []byte) (h header, ok bool) {
	if h, simple := scanHeader(b); simple {
		return h, true
	}
	var m map[string]any
	if json.Unmarshal(bytes.Clone(b), &m) != nil { // a copy, so that b does not escape
		return header{}, false
	}
	h = header{}
	h.alg, h.algSet = m["alg"].(string)
	_, h.crit = m["crit"]
	return h, true
}

// scanHeader is parseHeader for the usual header; simple is false when b
// is anything else.
func scanHeader(b []byte) (h header, simple bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return header{}, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return h, trailing(b, i+1) == nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return header{}, false
		}
		end, err := skipString(b, i)
		if err != nil {
			return header{}, false
		}
		key := b[i+1 : end-1]
		if hasEscapeOrHigh(key) {
			return header{}, false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return header{}, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return header{}, false
		}
		vend, err := skipValue(b, i)
		if err != nil {
			return header{}, false
		}
		val := b[i:vend]
		isString := false
		switch c := val[0]; {
		case c == '"':
			if hasEscapeOrHigh(val[1 : len(val)-1]) {
				return header{}, false
			}
			isString = true
		case c == '-' || (c >= '0' && c <= '9'):
			if _, err := strconv.ParseFloat(string(val), 64); err != nil {
				return header{}, false // out of range: json.Unmarshal refuses it
			}
		case c == 't' || c == 'f':
		default: // null, objects, arrays
			return header{}, false
		}
		switch string(key) {
		case "alg":
			h.algSet = isString
			h.alg = ""
			if isString {
				h.alg = hs256
				if s := val[1 : len(val)-1]; string(s) != hs256 {
					h.alg = string(s) // a refused token: may allocate
				}
			}
		case "crit":
			h.crit = true
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return header{}, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return h, trailing(b, i+1) == nil
		default:
			return header{}, false
		}
	}
}

// macKey computes HMAC-SHA256 with one key. hmac.New hashes the key's
// inner and outer pads, two SHA-256 blocks, and allocates the state; a
// pooled state is Reset instead, which restores the pads from a saved copy
// (crypto/hmac does this after the first Reset). A state holds only what
// the Verifier already holds: material derived from the key.
type macKey struct {
	pool sync.Pool
}

type macState struct {
	h   hash.Hash
	in  []byte // the signing input, copied: hash.Hash.Write takes a []byte
	sum [sha256.Size]byte
}

// maxPooledInput bounds the input buffer a pooled state keeps.
const maxPooledInput = 8 << 10

func newMACKey(key []byte) *macKey {
	key = append([]byte(nil), key...)
	m := &macKey{}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return m
}

// verify reports, in constant time for a signature of the right length,
// whether sig is the HMAC of input.
func (m *macKey) verify(input string, sig []byte) bool {
	s := m.pool.Get().(*macState)
	s.h.Reset()
	s.in = append(s.in[:0], input...)
	s.h.Write(s.in)
	ok := hmac.Equal(sig, s.h.Sum(s.sum[:0]))
	if cap(s.in) > maxPooledInput {
		s.in = nil
	}
	m.pool.Put(s)
	return ok
}
