package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestMethodFirst: a set's method matchers move to its front, the others
// keep their order, and the set matches exactly what it matched before.
func TestMethodFirst(t *testing.T) {
	path, host := caddyhttp.MatchPath{"/login"}, caddyhttp.MatchHost{"example.com"}
	method := caddyhttp.MatchMethod{"POST"}
	for _, set := range []caddyhttp.MatcherSet{
		{path, host, &method},
		{path, &method, host},
		{&method, path, host},
		{path, host},
	} {
		before := append(caddyhttp.MatcherSet(nil), set...)
		methodFirst(set)
		var rest []any
		for i, m := range set {
			if isMethod(m) {
				if i != 0 {
					t.Fatalf("method matcher at %d of %v", i, set)
				}
				continue
			}
			rest = append(rest, m)
		}
		if len(rest) < 2 || rest[0].(caddyhttp.MatchPath)[0] != "/login" || rest[1].(caddyhttp.MatchHost)[0] != "example.com" {
			t.Fatalf("the other matchers moved: %v", set)
		}
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "http://example.com/login", nil),
			httptest.NewRequest(http.MethodGet, "http://example.com/login", nil),
			httptest.NewRequest(http.MethodPost, "http://example.com/other", nil),
			httptest.NewRequest(http.MethodPost, "http://other.example/login", nil),
		} {
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), &caddyhttp.Server{})
			want, err1 := before.MatchWithError(r)
			got, err2 := set.MatchWithError(r)
			if got != want || err1 != nil || err2 != nil {
				t.Fatalf("%s %s: %v, %v after, %v, %v before", r.Method, r.URL, got, err2, want, err1)
			}
		}
	}
}
