package guard

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWidgetUser: every copy of the claim counts; copies that disagree are
// ambiguous, so no token can prove them.
func TestWidgetUser(t *testing.T) {
	wc := &WidgetConfig{UserHeader: "X-Widget-User-Id", UserQuery: "uid", UserJSON: "user_id"}
	tests := []struct {
		name   string
		query  string
		header [][2]string
		body   string
		want   string
	}{
		{name: "none", want: ""},
		{name: "header", header: [][2]string{{"X-Widget-User-Id", "alice"}}, want: "alice"},
		{name: "header twice, same value", header: [][2]string{{"X-Widget-User-Id", "alice"}, {"X-Widget-User-Id", "alice"}}, want: "alice"},
		{name: "header twice", header: [][2]string{{"X-Widget-User-Id", "alice"}, {"X-Widget-User-Id", "bob"}}, want: ambiguousClaim},
		{name: "underscore spelling", header: [][2]string{{"X-Widget-User-Id", "alice"}, {"X_widget_user_id", "bob"}}, want: ambiguousClaim},
		{name: "query", query: "uid=alice", want: "alice"},
		{name: "query twice", query: "uid=alice&uid=bob", want: ambiguousClaim},
		{name: "query key in another case", query: "uid=alice&UID=bob", want: ambiguousClaim},
		{name: "header and query agree", query: "uid=alice", header: [][2]string{{"X-Widget-User-Id", "alice"}}, want: "alice"},
		{name: "header and query differ", query: "uid=bob", header: [][2]string{{"X-Widget-User-Id", "alice"}}, want: ambiguousClaim},
		{name: "header and body differ", header: [][2]string{{"X-Widget-User-Id", "alice"}}, body: `{"user_id":"bob"}`, want: ambiguousClaim},
		{name: "body", body: `{"user_id":"bob"}`, want: "bob"},
		{name: "empty header beside a query claim", query: "uid=bob", header: [][2]string{{"X-Widget-User-Id", ""}}, want: ambiguousClaim},
		// Spellings Go's parser drops or keeps apart, and other apps read.
		{name: "after a semicolon", query: "x=1;uid=bob", want: "bob"},
		{name: "PHP dot", query: "u.id=bob", want: ""}, // not the name: "u_id"
		{name: "bad escape elsewhere", query: "x=%zz&uid=bob", want: "bob"},
		{name: "NUL-cut name", query: "uid%00=bob", want: "bob"},
		{name: "semicolon copy differs", query: "uid=alice;uid=bob", want: ambiguousClaim},
	}
	phpName := &WidgetConfig{UserQuery: "user_id"}
	for _, q := range []string{"user.id=bob", "user+id=bob", "user%20id=bob", "user[id=bob", "%20user_id=bob", "x=1;user_id=bob", "USER_ID=bob"} {
		r := httptest.NewRequest("GET", "/widget?"+q, nil)
		if got, err := widgetUser(phpName, r); err != nil || got != "bob" {
			t.Errorf("query %q: claim %q, %v; want bob, as PHP and ;-splitting apps read it", q, got, err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/widget?"+tt.query, strings.NewReader(tt.body))
			if tt.body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			for _, h := range tt.header {
				r.Header[h[0]] = append(r.Header[h[0]], h[1])
			}
			got, err := widgetUser(wc, r)
			if err != nil || got != tt.want {
				t.Errorf("widgetUser = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestWidgetToken: the token from the header (Bearer for Authorization),
// then the query; copies of the header that differ are no token at all.
func TestWidgetToken(t *testing.T) {
	wc := &WidgetConfig{TokenHeader: "Authorization", TokenQuery: "t"}
	for _, tc := range []struct {
		name   string
		header []string
		query  string
		want   string
	}{
		{name: "bearer", header: []string{"Bearer abc"}, want: "abc"},
		{name: "bearer twice, same", header: []string{"Bearer abc", "Bearer abc"}, want: "abc"},
		{name: "two different tokens", header: []string{"Bearer abc", "Bearer xyz"}, want: ""},
		{name: "two different, query given", header: []string{"Bearer abc", "Bearer xyz"}, query: "t=q", want: ""},
		{name: "not bearer", header: []string{"Basic abc"}, query: "t=q", want: "q"},
		{name: "query", query: "t=q", want: "q"},
		{name: "none", want: ""},
	} {
		r := httptest.NewRequest("GET", "/widget?"+tc.query, nil)
		r.Header["Authorization"] = tc.header
		if got := widgetToken(wc, r); got != tc.want {
			t.Errorf("%s: token %q, want %q", tc.name, got, tc.want)
		}
	}
}
