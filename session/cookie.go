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
	macs sync.Pool
}

// NewCodec returns a codec that signs with key (at least 32 bytes).
func NewCodec(key []byte) (*Codec, error) {
	if len(key) < 32 {
		return nil, errors.New("session: cookie key must be at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	c := &Codec{}
	c.macs.New = func() any { return hmac.New(sha256.New, k) }
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
	mac := c.sum(payload, nil)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(payload))+1+enc.EncodedLen(len(mac)))
	out = enc.AppendEncode(out, payload)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac)
	return string(out)
}

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
	enc := base64.RawURLEncoding
	var pbuf [MaxCookieLen]byte
	var mbuf [64]byte
	pn, err := decodeString(enc, pbuf[:], value[:dot])
	if err != nil || pn < fixedLen {
		return cl, ErrBadCookie
	}
	mn, err := decodeString(enc, mbuf[:], value[dot+1:])
	if err != nil || mn != macLen {
		return cl, ErrBadCookie
	}
	payload := pbuf[:pn]
	var sum [macLen]byte
	if !hmac.Equal(c.sum(payload, sum[:0]), mbuf[:mn]) {
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

// decodeString decodes s into dst without converting s to a new []byte.
func decodeString(enc *base64.Encoding, dst []byte, s string) (int, error) {
	if enc.DecodedLen(len(s)) > len(dst) {
		return 0, ErrBadCookie
	}
	var src [((MaxCookieLen + 2) / 3) * 4]byte
	if len(s) > len(src) {
		return 0, ErrBadCookie
	}
	n := copy(src[:], s)
	return enc.Decode(dst, src[:n])
}

func (c *Codec) sum(payload, dst []byte) []byte {
	m := c.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(payload)
	dst = m.Sum(dst)
	c.macs.Put(m)
	return dst
}
