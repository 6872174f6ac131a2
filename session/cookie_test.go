package session

import (
	"bytes"
	"strings"
	"testing"
)

func testCodec(t testing.TB) *Codec {
	c, err := NewCodec(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCookieRoundTrip(t *testing.T) {
	c := testCodec(t)
	for _, user := range []string{"", "alice", "ünïcødé@example.com", strings.Repeat("u", 200)} {
		in := Claims{ID: ID{1, 2, 3}, AAL: 2, IdleDeadline: 1_800_000_000, User: user}
		v := c.Encode(in)
		got, err := c.Decode(v, true)
		if err != nil {
			t.Fatalf("decode %q: %v", user, err)
		}
		if got != in {
			t.Fatalf("round trip: got %+v want %+v", got, in)
		}
		noUser, err := c.Decode(v, false)
		if err != nil || noUser.User != "" || noUser.ID != in.ID {
			t.Fatalf("decode without user: %+v %v", noUser, err)
		}
	}
}

func TestCookieRejects(t *testing.T) {
	c := testCodec(t)
	good := c.Encode(Claims{ID: ID{9}, AAL: 1, IdleDeadline: 42, User: "bob"})
	other, _ := NewCodec(bytes.Repeat([]byte{8}, 32))
	flipped := []byte(good)
	flipped[3] ^= 1
	cases := map[string]string{
		"empty":         "",
		"no dot":        "abc",
		"only dot":      ".",
		"bad base64":    "!!!.???",
		"short payload": "AAAA." + strings.Split(good, ".")[1],
		"tampered":      string(flipped),
		"other key":     other.Encode(Claims{ID: ID{9}, AAL: 2}),
		"too long":      strings.Repeat("A", MaxCookieLen+1),
		"mac truncated": good[:len(good)-2],
		"two dots":      good + ".x",
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Decode(v, true); err != ErrBadCookie {
				t.Fatalf("Decode(%q) = %v, want ErrBadCookie", v, err)
			}
		})
	}
}

func TestNewCodecShortKey(t *testing.T) {
	if _, err := NewCodec(make([]byte, 16)); err == nil {
		t.Fatal("short key accepted")
	}
}

func FuzzDecode(f *testing.F) {
	c := testCodec(f)
	f.Add(c.Encode(Claims{ID: ID{1}, AAL: 2, IdleDeadline: 5, User: "alice"}))
	f.Add("")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, v string) {
		cl, err := c.Decode(v, true)
		if err != nil {
			return
		}
		// Anything that verifies must re-encode to the same value: only the
		// gateway's own cookies verify.
		if again := c.Encode(cl); again != v {
			t.Fatalf("accepted a cookie the gateway did not make: %q (re-encodes to %q)", v, again)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	c := testCodec(b)
	v := c.Encode(Claims{ID: ID{1}, AAL: 2, IdleDeadline: 5, User: "alice"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(v, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeRefusesNonCanonical: only the exact encoding of a cookie
// verifies; a variant with other unused trailing bits does not.
func TestDecodeRefusesNonCanonical(t *testing.T) {
	c, err := NewCodec(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	tried := 0
	for i := range 50 {
		v := c.Encode(Claims{ID: ID{byte(i)}, AAL: 1, IdleDeadline: int64(i), User: "alice"})
		last := strings.IndexByte(alphabet, v[len(v)-1])
		// A MAC of 32 bytes is 43 characters: the last carries 4 bits, 2 unused.
		for _, alt := range []int{last ^ 1, last ^ 2} {
			tried++
			if _, err := c.Decode(v[:len(v)-1]+string(alphabet[alt]), false); err == nil {
				t.Fatalf("a non-canonical variant of %q verified", v)
			}
		}
	}
	if tried == 0 {
		t.Fatal("nothing tried")
	}
}
