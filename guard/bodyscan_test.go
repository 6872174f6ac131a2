package guard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestBodyFields: the field names of the bodies the gateway reads, the body
// put back as it was, and "not sure" for every body it does not read whole.
func TestBodyFields(t *testing.T) {
	mp, mpType := multipartBody(t, "auth_user", "alice", "auth_pass", "x")
	g := &Guard{cfg: Config{MaxBodyBytes: 512}}
	for _, tc := range []struct {
		name, ctype, body string
		chunked           bool
		want              []string
		sure              bool
		verdict           bodyVerdict
	}{
		{name: "form", ctype: "application/x-www-form-urlencoded", body: "a=1&new_password=2;c", want: []string{"a", "new_password", "c"}, sure: true,
			verdict: bodyVerdict{password: true, credential: true, sure: true}},
		{name: "form, escaped name", ctype: "application/x-www-form-urlencoded", body: "pass%77ord=1", want: []string{"password"}, sure: true,
			verdict: bodyVerdict{password: true, credential: true, sure: true}},
		{name: "JSON, nested", ctype: "application/json; charset=utf-8", body: `{"user":{"login":"a","pwd":"b"},"list":[{"token":1}]}`, want: []string{"user", "login", "pwd", "list", "token"}, sure: true,
			verdict: bodyVerdict{password: true, credential: true, sure: true}},
		{name: "JSON suffix type", ctype: "application/vnd.api+json", body: `{"author":"bob"}`, want: []string{"author"}, sure: true,
			verdict: bodyVerdict{credential: true, sure: true}},
		{name: "JSON, broken", ctype: "application/json", body: `{"password":`, sure: false},
		{name: "multipart", ctype: mpType, body: mp, want: []string{"auth_user", "auth_pass"}, sure: true,
			verdict: bodyVerdict{password: true, credential: true, sure: true}},
		{name: "multipart, no boundary", ctype: "multipart/form-data", body: mp, sure: false},
		{name: "another type", ctype: "text/plain", body: "password=x", sure: false},
		{name: "no type", body: "password=x", sure: false},
		{name: "past the limit", ctype: "application/x-www-form-urlencoded", body: "a=" + strings.Repeat("x", 600), sure: false},
		{name: "chunked past the limit", ctype: "application/x-www-form-urlencoded", body: "a=" + strings.Repeat("x", 600), chunked: true, sure: false},
		{name: "chunked within", ctype: "application/x-www-form-urlencoded", body: "password=1", chunked: true, want: []string{"password"}, sure: true,
			verdict: bodyVerdict{password: true, credential: true, sure: true}},
		{name: "harmless", ctype: "application/x-www-form-urlencoded", body: "q=search&page=2", want: []string{"q", "page"}, sure: true,
			verdict: bodyVerdict{sure: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/any", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(iotest.HalfReader(strings.NewReader(tc.body)))
			}
			names, sure, err := g.bodyFields(r)
			if err != nil {
				t.Fatal(err)
			}
			if sure != tc.sure || (tc.sure && !slices.Equal(sortedCopy(names), sortedCopy(tc.want))) {
				t.Fatalf("names %q sure %v, want %q %v", names, sure, tc.want, tc.sure)
			}
			if tc.sure {
				if v := judgeBody(names, sure); v != tc.verdict {
					t.Errorf("verdict %+v, want %+v", v, tc.verdict)
				}
			}
			rest, err := io.ReadAll(r.Body)
			if err != nil || string(rest) != tc.body {
				t.Fatalf("the body the app gets: %q, %v; want it as sent", rest, err)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// FuzzBodyFields: whatever the body and its type, reading it neither
// panics nor changes what the app gets.
func FuzzBodyFields(f *testing.F) {
	mp, mpType := multipartBody(f, "user", "a", "password", "b")
	f.Add("application/x-www-form-urlencoded", "a=1&password=2")
	f.Add("application/json", `{"a":[{"pwd":1}]}`)
	f.Add(mpType, mp)
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n")
	g := &Guard{cfg: Config{MaxBodyBytes: 1 << 12}}
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		names, sure, err := g.bodyFields(r)
		if err != nil {
			t.Fatal(err)
		}
		_ = judgeBody(names, sure)
		rest, _ := io.ReadAll(r.Body)
		if string(rest) != body {
			t.Fatalf("the body changed: %q -> %q", body, rest)
		}
	})
}
