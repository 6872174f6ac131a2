package audit

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// FuzzAppendEntry checks that the hand-written encoder writes exactly what
// encoding/json writes for the same Event (so Query's decoder reads it back
// unchanged), whatever the strings hold: quotes, control characters, HTML,
// U+2028, invalid UTF-8.
func FuzzAppendEntry(f *testing.F) {
	f.Add(int64(0), "sign_in", "alice", "alice", "192.0.2.1:1", "Mozilla/5.0", "reason", "ok", "n", "1")
	f.Add(int64(1741964966123456789), "t", `a"b\c`, "<script>&", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "é\xc3", "", "")
	f.Add(int64(-5), "", "", "", "", "", "same", "1", "same", "2")
	f.Fuzz(func(t *testing.T, ns int64, typ, actor, subject, remote, ua, k1, v1, k2, v2 string) {
		at := time.Unix(0, ns).UTC()
		if ns < 0 {
			at = time.Time{}.UTC()
		}
		e := entry{Time: at, Type: typ, Actor: actor, Subject: subject, Remote: remote, UserAgent: ua}
		ev := Event{Time: at, Type: typ, Actor: actor, Subject: subject, Remote: remote, UserAgent: ua}
		if k1 != k2 { // a map cannot hold a key twice; clean never makes pairs that do
			e.detail = []string{k1, v1, k2, v2}
			ev.Detail = map[string]string{k1: v1, k2: v2}
		}
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Skip(err)
		}
		if got := appendEntry(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("appendEntry:\n got %s\nwant %s", got, want)
		}
	})
}

func TestSortPairs(t *testing.T) {
	p := []string{"d", "4", "b", "2", "a", "1", "c", "3"}
	sortPairs(p)
	if want := []string{"a", "1", "b", "2", "c", "3", "d", "4"}; !slices.Equal(p, want) {
		t.Fatalf("sorted %q, want %q", p, want)
	}
}
