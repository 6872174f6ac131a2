package mfa

import (
	"bytes"
	"testing"
	"time"

	"github.com/mfagate/mfagate/session"
)

// TestCookieCacheAnswersAsDecode: a cached cookie gives what Decode gives,
// and a cookie that does not verify is refused whatever the cache holds.
func TestCookieCacheAnswersAsDecode(t *testing.T) {
	codec, err := session.NewCodec(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := newCookieCache()
	good := codec.Encode(session.Claims{ID: session.ID{1, 2, 3}, AAL: 2, IdleDeadline: time.Now().Unix(), User: "alice"})
	want, err := codec.Decode(good, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // a miss, then hits
		cl, key, err := c.verify(codec, good)
		if err != nil || cl != want || key != want.ID.Key() {
			t.Fatalf("verify #%d = %+v %x %v, want %+v %x", i, cl, key, err, want, want.ID.Key())
		}
	}
	// One character off, after the good one is cached: still refused.
	for i := range good {
		bad := []byte(good)
		bad[i] ^= 1
		if _, _, err := c.verify(codec, string(bad)); err == nil {
			t.Fatalf("tampered cookie (byte %d) verified", i)
		}
	}
	if _, _, err := c.verify(codec, good+"x"); err == nil {
		t.Fatal("cookie with a suffix verified")
	}
	if _, _, err := c.verify(codec, good[:len(good)-1]); err == nil {
		t.Fatal("truncated cookie verified")
	}
	// More cookies than slots: evictions only cost a re-check.
	other, _ := session.NewCodec(bytes.Repeat([]byte{8}, 32))
	for i := range 3 * cookieCacheSlots {
		id := session.ID{byte(i), byte(i >> 8), byte(i >> 16)}
		v := codec.Encode(session.Claims{ID: id, AAL: 1})
		if cl, key, err := c.verify(codec, v); err != nil || cl.ID != id || key != id.Key() {
			t.Fatalf("cookie %d: %+v %v", i, cl, err)
		}
		// Signed with another key: never verified, cached or not.
		if _, _, err := c.verify(codec, other.Encode(session.Claims{ID: id, AAL: 1})); err == nil {
			t.Fatalf("cookie %d signed with another key verified", i)
		}
	}
	if cl, _, err := c.verify(codec, good); err != nil || cl != want {
		t.Fatalf("good cookie after evictions: %+v %v", cl, err)
	}
}
