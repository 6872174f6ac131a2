package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// tricky are events whose fields need escaping in one format or another.
func tricky() []Event {
	return []Event{
		{Type: TypeSignIn, Actor: "alice", Subject: "alice", Remote: "[2001:db8::1]:443",
			UserAgent: `Mozilla/5.0 (X11; Linux x86_64) "quoted", with commas`,
			Detail:    map[string]string{"n": "0", "reason": "ok"}},
		{Type: TypeSignInRefused, Actor: "=cmd()", Subject: "+1", Remote: "-2",
			UserAgent: "@SUM(A1)", Detail: map[string]string{"n": "1", "why": "line1\nline2\r\nline3"}},
		{Type: TypePolicyChanged, Actor: "bob", UserAgent: "\tTab", Detail: map[string]string{"n": "2", "a;b": "c=d", `e\`: "f;g"}},
		{Type: TypeLockout, Subject: "日本語ユーザー", Detail: map[string]string{"n": "3"}},
	}
}

func recordAll(t *testing.T, l *Log, events []Event) {
	t.Helper()
	for i, e := range events {
		e.Time = t0().Add(time.Duration(i) * time.Second)
		l.Record(e)
	}
	flush(t, l)
}

func export(t *testing.T, l *Log, f Filter, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := l.Export(context.Background(), &buf, f, format); err != nil {
		t.Fatalf("Export(%s): %v", format, err)
	}
	return buf.Bytes()
}

func TestExportJSONL(t *testing.T) {
	l := newLog(t, nil, Options{})
	recordAll(t, l, tricky())
	want := queryAll(t, l, Filter{})
	for i := range want {
		want[i].Cursor = ""
	}
	var got []Event
	sc := bufio.NewScanner(bytes.NewReader(export(t, l, Filter{}, FormatJSONL)))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		got = append(got, e)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSONL parsed back:\n%+v\nwant\n%+v", got, want)
	}

	if got := bytes.Count(export(t, l, Filter{User: "alice"}, FormatJSONL), []byte("\n")); got != 1 {
		t.Fatalf("filtered export: %d lines, want 1", got)
	}
	empty := export(t, l, Filter{User: "nobody"}, FormatJSONL)
	if len(empty) != 0 {
		t.Fatalf("export of nothing: %q", empty)
	}
}

func TestExportCSV(t *testing.T) {
	l := newLog(t, nil, Options{})
	recordAll(t, l, tricky())
	rows, err := csv.NewReader(bytes.NewReader(export(t, l, Filter{}, FormatCSV))).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v", err)
	}
	ts := func(i int) string { return t0().Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano) }
	want := [][]string{
		{"time", "type", "actor", "subject", "remote_addr", "user_agent", "detail"},
		{ts(3), "lockout", "", "日本語ユーザー", "", "", "n=3"},
		{ts(2), "policy_changed", "bob", "", "", "'\tTab", `a\;b=c\=d;e\\=f\;g;n=2`},
		{ts(1), "sign_in_refused", "'=cmd()", "'+1", "'-2", "'@SUM(A1)", "n=1;why=line1\nline2\r\nline3"},
		{ts(0), "sign_in", "alice", "alice", "[2001:db8::1]:443", `Mozilla/5.0 (X11; Linux x86_64) "quoted", with commas`, "n=0;reason=ok"},
	}
	// encoding/csv reads \r\n inside a quoted field as \n.
	want[3][6] = "n=1;why=line1\nline2\nline3"
	if !reflect.DeepEqual(rows, want) {
		for i := range max(len(rows), len(want)) {
			if i >= len(rows) || i >= len(want) || !reflect.DeepEqual(rows[i], want[i]) {
				t.Errorf("row %d:\n got %q\nwant %q", i, at(rows, i), at(want, i))
			}
		}
	}

	// Only the header when nothing matches.
	if got := export(t, l, Filter{Type: "nope"}, FormatCSV); string(got) != "time,type,actor,subject,remote_addr,user_agent,detail\n" {
		t.Fatalf("empty CSV export: %q", got)
	}
}

func at(rows [][]string, i int) []string {
	if i < len(rows) {
		return rows[i]
	}
	return nil
}

func TestDefuseCell(t *testing.T) {
	for in, want := range map[string]string{
		"":        "",
		"=1+1":    "'=1+1",
		"+1":      "'+1",
		"-1":      "'-1",
		"@x":      "'@x",
		"\tx":     "'\tx",
		"\rx":     "'\rx",
		"a=b":     "a=b",
		"'=x":     "'=x",
		" =x":     " =x",
		"alice":   "alice",
		"１=fullw": "１=fullw",
	} {
		if got := defuseCell(in); got != want {
			t.Errorf("defuseCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExportPagesAndFormats(t *testing.T) {
	l := newLog(t, nil, Options{})
	const n = 1234 // more than two Query pages
	for i := range n {
		l.Record(Event{Time: t0().Add(time.Duration(i) * time.Millisecond), Type: TypePolicyChanged, Actor: fmt.Sprint(i % 2)}) // a type never folded
	}
	flush(t, l)
	for _, tc := range []struct {
		format string
		f      Filter
		lines  int
	}{
		{FormatJSONL, Filter{}, n},
		{FormatCSV, Filter{}, n + 1},
		{FormatJSONL, Filter{User: "1"}, n / 2},
		{FormatCSV, Filter{Since: t0().Add(time.Second)}, n - 1000 + 1},
	} {
		t.Run(fmt.Sprintf("%s %+v", tc.format, tc.f), func(t *testing.T) {
			if got := bytes.Count(export(t, l, tc.f, tc.format), []byte("\n")); got != tc.lines {
				t.Fatalf("%d lines, want %d", got, tc.lines)
			}
		})
	}
	for _, format := range []string{"", "json", "CSV", "xlsx"} {
		var buf bytes.Buffer
		if err := l.Export(context.Background(), &buf, Filter{}, format); err == nil || buf.Len() != 0 {
			t.Errorf("Export(%q): err = %v, wrote %d bytes; want an error and nothing written", format, err, buf.Len())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf, Filter{}, FormatJSONL); err == nil {
		t.Fatal("Export with a canceled context succeeded")
	}
}
