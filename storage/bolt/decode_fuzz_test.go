package bolt

import (
	"encoding/json"
	"testing"

	"github.com/mfagate/mfagate/storage"
)

// FuzzDecode feeds arbitrary bytes to the record decoder, as a damaged or
// tampered database file would: it must fail cleanly, never panic, and what
// it accepts must survive a re-encode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("u1"), []byte(`{"id":"u1","totp_secret":"AQI=","recovery_hashes":["qg=="],"enrolled_at":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte("s1"), []byte(`{"id":"s1","state":2,"aal":2,"bindings":[{"name":"a","hash":"AQ=="}],"expires_at":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(""), []byte(`null`))
	f.Add([]byte("x"), []byte(`{"id":"x","state":300}`))
	f.Fuzz(func(t *testing.T, key, data []byte) {
		if u, err := decode(bucketUsers, key, data, func(u *storage.User) string { return u.ID }); err == nil {
			roundTrip(t, key, u)
		}
		if s, err := decode(bucketSessions, key, data, func(s *storage.Session) string { return s.ID }); err == nil {
			roundTrip(t, key, s)
		}
	})
}

func roundTrip[R any](t *testing.T, key []byte, rec R) {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	again, err := decode(bucketUsers, key, data, func(r *R) string {
		switch r := any(r).(type) {
		case *storage.User:
			return r.ID
		case *storage.Session:
			return r.ID
		}
		return ""
	})
	if err != nil {
		t.Fatalf("re-decode %s: %v", data, err)
	}
	if normalise(rec) != normalise(again) {
		t.Fatalf("round trip changed record:\n%+v\n%+v", rec, again)
	}
}

// normalise re-encodes a record so that differences JSON cannot express
// (a nil versus empty slice, a time's location) do not count.
func normalise(rec any) string {
	b, _ := json.Marshal(rec)
	return string(b)
}
