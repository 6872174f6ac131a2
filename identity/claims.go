package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims is the JWT payload the gateway reads. checkToken (token.go) checks
// exp, nbf and iat as golang-jwt's validator does; claims implements
// jwt.Claims so that the tests can run that validator as the reference.
//
// Unknown claims are ignored. iss and aud are not checked: the secret is per
// workspace, so a token it verifies was minted by that workspace's backend.
type claims struct {
	Exp    *jwt.NumericDate
	Nbf    *jwt.NumericDate
	Iat    *jwt.NumericDate
	Sub    string
	UserID string
}

func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat, nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf, nil }
func (c *claims) GetIssuer() (string, error)                   { return "", nil }
func (c *claims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// subject is the user the token vouches for: user_id when present, else sub.
//
// Not "either of them": a backend that puts something else in sub (a
// workspace or tenant id, say) next to the user in user_id would otherwise
// let that user claim the other id. user_id is the more specific of the two,
// and it is what widget SDKs name the field.
func (c *claims) subject() string {
	if c.UserID != "" {
		return c.UserID
	}
	return c.Sub
}

var (
	errClaimsObject = errors.New("claims: not a JSON object")
	errClaimsSyntax = errors.New("claims: bad JSON")
	errUserIDType   = errors.New("claims: sub and user_id must be a string or an integer")
	errDateType     = errors.New("claims: exp, nbf and iat must be numbers")
)

// UnmarshalJSON reads the five claims it needs from the top-level object,
// by their exact names, and skips everything else.
//
// Why not encoding/json into a struct: it matches field names
// case-insensitively (and folds "ſ" to "s"), so {"User_Id": …} or {"SUB": …}
// would fill the identity claim, while JWT claim names are case-sensitive
// (RFC 7519 4), and a backend that copies user-chosen attribute names into
// its tokens must not have one read as the identity. Decoding into a map
// first is exact but costs a dozen allocations per token; this scan costs
// the subject string and one NumericDate per date claim present. The whole
// payload has been validated as JSON before this is called (by checkToken
// with json.Valid, as encoding/json does before it calls an Unmarshaler);
// the scan still refuses, never panics on, invalid input (FuzzClaimsDecode
// compares it with encoding/json).
//
// Duplicate names: the last one wins, as with encoding/json.
func (c *claims) UnmarshalJSON(b []byte) error {
	*c = claims{}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errClaimsObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errClaimsSyntax
		}
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errClaimsSyntax
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := c.set(key, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return errClaimsSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return errClaimsSyntax
		}
	}
}

// set stores val if key (the raw text between the quotes) names a claim.
func (c *claims) set(key, val []byte) error {
	if hasEscapeOrHigh(key) {
		// A name spelled with escapes ("\u0073ub") is still that name.
		var name string
		if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &name); err != nil {
			return errClaimsSyntax
		}
		key = []byte(name)
	}
	var err error
	switch string(key) { // no allocation: only compared
	case "exp":
		c.Exp, err = numericDate(val)
	case "nbf":
		c.Nbf, err = numericDate(val)
	case "iat":
		c.Iat, err = numericDate(val)
	case "sub":
		c.Sub, err = userIDValue(val)
	case "user_id":
		c.UserID, err = userIDValue(val)
	}
	return err
}

// numericDate reads a NumericDate (RFC 7519 2): a JSON number of seconds,
// possibly fractional, converted as golang-jwt does. A number in a string
// is refused, as the RFC has it (golang-jwt would accept "exp": "17…").
func numericDate(val []byte) (*jwt.NumericDate, error) {
	if string(val) == "null" {
		return nil, nil
	}
	if len(val) == 0 || (val[0] != '-' && (val[0] < '0' || val[0] > '9')) {
		return nil, errDateType
	}
	if n, ok := smallInt(val); ok {
		// The usual exp: an integer, exact as a float64, so this is what
		// the conversion below gives, without parsing a float.
		return jwt.NewNumericDate(time.Unix(n, 0)), nil
	}
	f, err := strconv.ParseFloat(string(val), 64)
	if err != nil {
		return nil, errDateType
	}
	round, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(round), int64(frac*1e9))), nil
}

// smallInt reads val if it is an optional minus and 1 to 15 decimal digits
// (below 2^53, so exact as a float64).
func smallInt(val []byte) (int64, bool) {
	digits := val
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	if val[0] == '-' {
		n = -n
	}
	return n, true
}

// userIDValue reads sub or user_id: a JSON string, or an integer (backends
// often mint {"user_id": 42} straight from a database row), kept as its
// decimal text so that it compares equal to the claimed id "42". null is
// absent. Anything else (a fraction, an exponent, an object) is an error,
// which makes the token malformed.
func userIDValue(val []byte) (string, error) {
	if len(val) == 0 {
		return "", errUserIDType
	}
	switch {
	case string(val) == "null":
		return "", nil
	case val[0] == '"':
		if len(val) < 2 || val[len(val)-1] != '"' {
			return "", errUserIDType
		}
		inner := val[1 : len(val)-1]
		if !hasEscapeOrHigh(inner) {
			return string(inner), nil
		}
		// Escapes, or bytes that encoding/json would check as UTF-8 (and
		// replace with U+FFFD if invalid): let it decode.
		// (A copy: handing val itself to encoding/json would make every
		// caller's buffer escape to the heap, escapes or not.)
		var s string
		if err := json.Unmarshal(bytes.Clone(val), &s); err != nil {
			return "", errUserIDType
		}
		return s, nil
	}
	digits := val
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return "", errUserIDType
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return "", errUserIDType
		}
	}
	return string(val), nil
}

func hasEscapeOrHigh(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errClaimsSyntax
	}
	return nil
}

// skipValue returns the index just past the JSON value starting at b[i].
// It finds the value's extent only (the input has been validated); it
// returns an error rather than reading past the end.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errClaimsSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errClaimsSyntax
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, nil
	case c >= 'a' && c <= 'z': // true, false, null
		j := i + 1
		for j < len(b) && b[j] >= 'a' && b[j] <= 'z' {
			j++
		}
		switch string(b[i:j]) {
		case "true", "false", "null":
			return j, nil
		}
	}
	return 0, errClaimsSyntax
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte; \uXXXX's digits are plain bytes
		case '"':
			return j + 1, nil
		}
	}
	return 0, errClaimsSyntax
}
