// Package session holds the gateway's own sessions: the signed cookie that names
// one, and the in-memory table the per-request check reads without disk I/O.
package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// MaxCookieLen caps the cookie before any decoding work (fail closed on anything longer).
const MaxCookieLen = 512

const (
	cookieVersion = 1
	macLen        = 32
	idLen         = 16
	// version | aal | idle deadline (unix s) | id
	fixedLen = 1 + 1 + 8 + idLen
)

// ErrBadCookie is returned for every cookie the gateway cannot read: the caller
// treats it as "no session", never as a reason to let a request through.
var ErrBadCookie = errors.New("session: bad cookie")

// Claims is what the gateway cookie carries. The in-memory table is the
// authority; the claims let a check fail fast and let another instance read the
// cookie once sessions live in a shared store.
type Claims struct {
	ID           ID
	AAL          uint8
	IdleDeadline int64 // unix seconds
	User         string
}

// Codec signs and verifies gateway cookies with HMAC-SHA256.
type Codec struct {
	scratch sync.Pool // *scratch: a keyed MAC and decode buffers, so Decode allocates nothing
}

type scratch struct {
	mac     hash.Hash
	payload [MaxCookieLen]byte
	sum     [64]byte
	src     [MaxCookieLen]byte
}

// NewCodec returns a codec that signs with key (at least 32 bytes).
func NewCodec(key []byte) (*Codec, error) {
	if len(key) < 32 {
		return nil, errors.New("session: cookie key must be at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	c := &Codec{}
	c.scratch.New = func() any { return &scratch{mac: hmac.New(sha256.New, k)} }
	return c, nil
}

// Encode returns the cookie value for c: base64url(payload) "." base64url(mac).
func (c *Codec) Encode(cl Claims) string {
	payload := make([]byte, fixedLen, fixedLen+len(cl.User))
	payload[0] = cookieVersion
	payload[1] = cl.AAL
	binary.BigEndian.PutUint64(payload[2:10], uint64(cl.IdleDeadline))
	copy(payload[10:], cl.ID[:])
	payload = append(payload, cl.User...)
	sc := c.scratch.Get().(*scratch)
	mac := sc.sign(payload, nil)
	c.scratch.Put(sc)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(payload))+1+enc.EncodedLen(len(mac)))
	out = enc.AppendEncode(out, payload)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac)
	return string(out)
}

// strictB64 refuses non-canonical encodings (unused trailing bits set), so
// exactly one cookie string names a session.
var strictB64 = base64.RawURLEncoding.Strict()

// Decode verifies value and returns its claims. Any defect is ErrBadCookie.
// The user name is only decoded when withUser is set, so the per-request check
// allocates nothing.
func (c *Codec) Decode(value string, withUser bool) (Claims, error) {
	var cl Claims
	if len(value) > MaxCookieLen {
		return cl, ErrBadCookie
	}
	dot := -1
	for i := 0; i < len(value); i++ {
		if value[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 {
		return cl, ErrBadCookie
	}
	sc := c.scratch.Get().(*scratch)
	defer c.scratch.Put(sc)
	enc := strictB64
	pn, err := sc.decode(enc, sc.payload[:], value[:dot])
	if err != nil || pn < fixedLen {
		return cl, ErrBadCookie
	}
	var mac [macLen]byte
	mn, err := sc.decode(enc, mac[:], value[dot+1:])
	if err != nil || mn != macLen {
		return cl, ErrBadCookie
	}
	payload := sc.payload[:pn]
	if !hmac.Equal(sc.sign(payload, sc.sum[:0]), mac[:]) {
		return cl, ErrBadCookie
	}
	if payload[0] != cookieVersion {
		return cl, ErrBadCookie
	}
	cl.AAL = payload[1]
	cl.IdleDeadline = int64(binary.BigEndian.Uint64(payload[2:10]))
	copy(cl.ID[:], payload[10:fixedLen])
	if withUser {
		cl.User = string(payload[fixedLen:])
	}
	return cl, nil
}

// decode decodes s into dst through the scratch buffer (no []byte(s) copy).
func (sc *scratch) decode(enc *base64.Encoding, dst []byte, s string) (int, error) {
	if enc.DecodedLen(len(s)) > len(dst) || len(s) > len(sc.src) {
		return 0, ErrBadCookie
	}
	n := copy(sc.src[:], s)
	return enc.Decode(dst, sc.src[:n])
}

func (sc *scratch) sign(payload, dst []byte) []byte {
	sc.mac.Reset()
	sc.mac.Write(payload)
	return sc.mac.Sum(dst)
}
