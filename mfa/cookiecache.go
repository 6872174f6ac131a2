package mfa

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/mfagate/mfagate/session"
)

// cookieCacheSlots bounds the verified-cookie cache (a power of two). A slot
// holds the last cookie that hashed to it; a collision only costs a re-check.
const cookieCacheSlots = 4096

// cookieCache remembers gateway cookies whose signature has been checked,
// with their claims and session key. A browser sends the same cookie until it
// is re-stamped (about once a minute), so this turns the per-request HMAC,
// base64 decode and key derivation into one hash of the cookie and a string
// compare. Only good cookies are added, and since Decode is a pure function of
// the value and the service's key, a hit answers exactly what Decode would:
// revocation and deadlines are still checked on the session every time.
type cookieCache struct {
	seed  maphash.Seed
	slots [cookieCacheSlots]atomic.Pointer[verifiedCookie]
}

type verifiedCookie struct {
	value string
	cl    session.Claims // User is not decoded (Decode with withUser false)
	key   session.Key
}

func newCookieCache() *cookieCache { return &cookieCache{seed: maphash.MakeSeed()} }

// verify returns the claims and session key of a gateway cookie value.
func (c *cookieCache) verify(codec *session.Codec, v string) (session.Claims, session.Key, error) {
	slot := &c.slots[maphash.String(c.seed, v)&(cookieCacheSlots-1)]
	if e := slot.Load(); e != nil && e.value == v {
		return e.cl, e.key, nil
	}
	cl, err := codec.Decode(v, false)
	if err != nil {
		return cl, session.Key{}, err
	}
	key := cl.ID.Key()
	// Cloned: v is a slice of the request's whole Cookie header.
	slot.Store(&verifiedCookie{value: strings.Clone(v), cl: cl, key: key})
	return cl, key, nil
}
