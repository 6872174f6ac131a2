package session

import (
	"testing"
	"time"
)

// The pieces of the per-request session check, one by one. BenchmarkDecode
// (cookie_test.go) is the HMAC verification.

func BenchmarkKey(b *testing.B) {
	id := ID{1, 2, 3}
	b.ReportAllocs()
	var k Key
	for b.Loop() {
		k = id.Key()
	}
	_ = k
}

func benchTable(b *testing.B, n int) (*Table, *Session) {
	t := NewTable()
	now := time.Now()
	for i := range n {
		id := ID{0xff, byte(i), byte(i >> 8), byte(i >> 16)}
		s := &Session{Key: id.Key(), State: Active, ExpiresAt: now.Add(time.Hour)}
		s.SetLastSeen(now)
		t.Put(s)
	}
	s := &Session{Key: ID{1}.Key(), State: Active, AAL: 2, ExpiresAt: now.Add(time.Hour)}
	s.SetLastSeen(now)
	s.SetBindings([]Binding{{Name: "demo_session", Hash: HashValue("3f8a1c0e9b7d4a6f2e5c8b1a0d9e7f6c")}})
	t.Put(s)
	return t, s
}

func BenchmarkTableGet(b *testing.B) {
	t, s := benchTable(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		if t.Get(s.Key) != s {
			b.Fatal("not found")
		}
	}
}

func BenchmarkTableGetParallel(b *testing.B) {
	t, s := benchTable(b, 10000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if t.Get(s.Key) != s {
				b.Fatal("not found")
			}
		}
	})
}

func BenchmarkCheckTouch(b *testing.B) {
	_, s := benchTable(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		if s.Check(now, 4*time.Hour) != Valid {
			b.Fatal("not valid")
		}
		s.Touch(now)
	}
}

// BenchmarkBound is the bound-app-cookie check rewriteCookies makes per
// request: a SHA-256 of the cookie value and a constant-time compare.
func BenchmarkBound(b *testing.B) {
	_, s := benchTable(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		if !s.Bound("demo_session", "3f8a1c0e9b7d4a6f2e5c8b1a0d9e7f6c") {
			b.Fatal("not bound")
		}
	}
}

// BenchmarkSessionCheck is the whole check as the gateway makes it: verify
// the cookie, hash the id to its key, look it up, check and touch it.
func BenchmarkSessionCheck(b *testing.B) {
	c := testCodec(b)
	t, s := benchTable(b, 10000)
	v := c.Encode(Claims{ID: ID{1}, AAL: 2, IdleDeadline: time.Now().Add(time.Hour).Unix(), User: "alice"})
	b.ReportAllocs()
	for b.Loop() {
		cl, err := c.Decode(v, false)
		if err != nil {
			b.Fatal(err)
		}
		got := t.Get(cl.ID.Key())
		now := time.Now()
		if got != s || got.Check(now, 4*time.Hour) != Valid || got.AAL != cl.AAL {
			b.Fatal("bad session")
		}
		got.Touch(now)
	}
}
