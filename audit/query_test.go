package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

func TestQueryFilters(t *testing.T) {
	l := newLog(t, nil, Options{})
	for i, e := range []Event{
		{Type: TypeSignIn, Actor: "alice", Subject: "alice"},
		{Type: TypeChallengeFailed, Actor: "alice", Subject: "alice"},
		{Type: TypeAdminReset, Actor: "bob", Subject: "alice"},
		{Type: TypeSignIn, Actor: "bob", Subject: "bob"},
		{Type: TypeForcedLogout, Actor: ActorSystem, Subject: "carol"},
		{Type: TypePolicyChanged, Actor: "bob"},
		{Type: TypeSignIn, Actor: `al"ice<&>`, Subject: `al"ice<&>`}, // needs JSON escaping
		{Type: TypeSignIn, Actor: "alice2"},                          // a prefix is no match
	} {
		e.Time = t0().Add(time.Duration(i) * time.Minute)
		e.Detail = map[string]string{"n": fmt.Sprint(i), "note": "alice"} // detail values do not match User
		l.Record(e)
	}
	flush(t, l)
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"7", "6", "5", "4", "3", "2", "1", "0"}},
		{"user as actor or subject", Filter{User: "alice"}, []string{"2", "1", "0"}},
		{"user bob", Filter{User: "bob"}, []string{"5", "3", "2"}},
		{"user needing escapes", Filter{User: `al"ice<&>`}, []string{"6"}},
		{"system", Filter{User: ActorSystem}, []string{"4"}},
		{"type", Filter{Type: TypeSignIn}, []string{"7", "6", "3", "0"}},
		{"user and type", Filter{User: "alice", Type: TypeSignIn}, []string{"0"}},
		{"since (inclusive)", Filter{Since: t0().Add(5 * time.Minute)}, []string{"7", "6", "5"}},
		{"until (exclusive)", Filter{Until: t0().Add(2 * time.Minute)}, []string{"1", "0"}},
		{"window", Filter{Since: t0().Add(time.Minute), Until: t0().Add(4 * time.Minute)}, []string{"3", "2", "1"}},
		{"window and user", Filter{User: "bob", Since: t0().Add(3 * time.Minute), Until: t0().Add(time.Hour)}, []string{"5", "3"}},
		{"no such user", Filter{User: "mallory"}, []string{}},
		{"no such type", Filter{Type: "nope"}, []string{}},
		{"empty window", Filter{Since: t0().Add(time.Hour), Until: t0()}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ns(queryAll(t, l, tc.f)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQueryPaging(t *testing.T) {
	const n = 60
	for _, tc := range []struct {
		name  string
		f     Filter
		limit int
		pages []int
	}{
		{"three pages", Filter{}, 25, []int{25, 25, 10}},
		{"filtered, three pages", Filter{User: "bob"}, 12, []int{12, 12, 6}},
		{"exact multiple", Filter{User: "alice"}, 10, []int{10, 10, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t, nil, Options{})
			for i := range n {
				actor := "alice"
				if i%2 == 1 {
					actor = "bob"
				}
				l.Record(Event{Time: t0().Add(time.Duration(i/3) * time.Second), Type: TypeSignIn, Actor: actor,
					Detail: map[string]string{"n": fmt.Sprint(i)}})
			}
			flush(t, l)
			var got, pages []int
			seen := map[string]bool{}
			cursor := ""
			for range 10 {
				page, next, err := l.Query(context.Background(), tc.f, cursor, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, len(page))
				for _, e := range page {
					if seen[e.Cursor] {
						t.Fatalf("event %s twice", e.Detail["n"])
					}
					seen[e.Cursor] = true
					var i int
					fmt.Sscan(e.Detail["n"], &i)
					got = append(got, i)
				}
				if next == "" {
					break
				}
				if next != page[len(page)-1].Cursor {
					t.Fatalf("next cursor %q is not the page's last event's", next)
				}
				cursor = next
				// A newer event between pages must not disturb paging.
				l.Record(Event{Time: t0().Add(time.Hour), Type: TypeSignIn, Actor: "alice", Subject: "bob"})
				flush(t, l)
			}
			if !reflect.DeepEqual(pages, tc.pages) {
				t.Fatalf("page sizes %v, want %v", pages, tc.pages)
			}
			// No gaps: exactly the matching events, newest first (same-time
			// events newest-recorded first).
			var want []int
			for i := n - 1; i >= 0; i-- {
				if tc.f.User == "" || (tc.f.User == "bob") == (i%2 == 1) {
					want = append(want, i)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("paged %v\nwant %v", got, want)
			}
		})
	}
}

func TestQueryLimit(t *testing.T) {
	l := newLog(t, nil, Options{})
	for i := range 600 {
		l.Record(Event{Time: t0().Add(time.Duration(i) * time.Millisecond), Type: TypePolicyChanged}) // a type never folded
	}
	flush(t, l)
	for _, tc := range []struct{ limit, want int }{{-1, 50}, {0, 50}, {1, 1}, {500, 500}, {501, 500}, {1 << 30, 500}} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			page, next, err := l.Query(context.Background(), Filter{}, "", tc.limit)
			if err != nil || len(page) != tc.want || next == "" {
				t.Fatalf("Query(limit %d) = %d events, next %q, %v; want %d", tc.limit, len(page), next, err, tc.want)
			}
		})
	}
}

func TestQueryBadCursor(t *testing.T) {
	l := newLog(t, nil, Options{})
	for _, c := range []string{"x", "00", strings.Repeat("g", 32), "../../etc/passwd"} {
		if _, _, err := l.Query(context.Background(), Filter{}, c, 10); !errors.Is(err, storage.ErrBadCursor) {
			t.Errorf("Query(cursor %q): err = %v, want storage.ErrBadCursor", c, err)
		}
	}
}
