package guard

import (
	"net/http"
	"strings"
	"testing"
)

func TestJSONAt(t *testing.T) {
	doc := []byte(`{"user":"alice","query":{"userinfo":{"id":7,"name":"Alice"}},"items":[{"login":"a"},{"login":"b"}],"n":null}`)
	for path, want := range map[string]string{
		"user": `"alice"`, "query.userinfo.name": `"Alice"`, "query.userinfo.id": `7`,
		"items.1.login": `"b"`, "items.2.login": ``, "items.x": ``, "user.x": ``, "missing": ``, "n": `null`,
	} {
		if got := string(jsonAt(doc, path)); got != want {
			t.Errorf("jsonAt(%q) = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{``, `   `, `[`, `{"a":`} {
		if got := jsonAt([]byte(bad), "a"); got != nil {
			t.Errorf("jsonAt(%q) = %q, want nil", bad, got)
		}
	}
}

func TestWhoamiSourceValidation(t *testing.T) {
	for _, tc := range []struct {
		path, field string
		ok          bool
	}{
		{"/api/me", "user", true},
		{"/api.php?action=query&meta=userinfo&format=json", "query.userinfo.name", true},
		{"api/me", "user", false},
		{"//evil.example/me", "user", false},
		{"/api/me", "", false},
		{"/api/me", "a..b", false},
		{"/api/me", ".a", false},
	} {
		err := IdentitySource{Kind: FromWhoami, Path: tc.path, Field: tc.field}.Check()
		if (err == nil) != tc.ok {
			t.Errorf("whoami %q %q: err %v, want ok %v", tc.path, tc.field, err, tc.ok)
		}
	}
}

// TestUserFrom: how the app's answer names the user, names nobody, or
// cannot be read.
func TestUserFrom(t *testing.T) {
	whoami := IdentitySource{Kind: FromWhoami, Path: "/me", Field: "q.user.name", Nobody: "q.user.anon"}
	page := IdentitySource{Kind: FromPage, Path: "/", Match: `<b id="u">([^<]*)</b>`}
	for _, s := range []*IdentitySource{&whoami, &page} {
		if err := s.validate(); err != nil {
			t.Fatal(err)
		}
	}
	const unknown = "\x00unknown"
	tests := []struct {
		name string
		src  *IdentitySource
		a    answer
		want string // "" nobody, unknown: could not be read
	}{
		{"whoami names", &whoami, answer{status: 200, body: []byte(`{"q":{"user":{"name":" alice "}}}`)}, "alice"},
		{"whoami number id", &whoami, answer{status: 200, body: []byte(`{"q":{"user":{"name":42}}}`)}, "42"},
		{"whoami empty field", &whoami, answer{status: 200, body: []byte(`{"q":{"user":{"name":""}}}`)}, ""},
		{"whoami absent field", &whoami, answer{status: 200, body: []byte(`{"q":{}}`)}, ""},
		{"whoami nobody marker", &whoami, answer{status: 200, body: []byte(`{"q":{"user":{"name":"10.0.0.1","anon":""}}}`)}, ""},
		{"whoami marker false", &whoami, answer{status: 200, body: []byte(`{"q":{"user":{"name":"alice","anon":false}}}`)}, "alice"},
		{"whoami 401", &whoami, answer{status: 401}, ""},
		{"whoami 403", &whoami, answer{status: 403}, ""},
		{"whoami redirect", &whoami, answer{status: 302}, ""},
		{"whoami 500", &whoami, answer{status: 500}, unknown},
		{"whoami 404", &whoami, answer{status: 404}, unknown},
		{"whoami not JSON", &whoami, answer{status: 200, body: []byte(`<html>`)}, unknown},
		{"whoami error", &whoami, answer{err: errAnswerTooLarge}, unknown},
		{"page names", &page, answer{status: 200, body: []byte(`<p>Hi <b id="u">O&#39;Brien</b></p>`)}, "O'Brien"},
		{"page no match", &page, answer{status: 200, body: []byte(`<form>Sign in</form>`)}, ""},
		{"page redirect to the sign-in form", &page, answer{status: 303}, ""},
		{"page 502", &page, answer{status: 502}, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, known := tt.src.userFrom(&tt.a)
			if !known {
				got = unknown
			}
			if got != tt.want {
				t.Errorf("userFrom = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPageSourceValidation(t *testing.T) {
	for _, tc := range []struct {
		match string
		ok    bool
	}{
		{`id="user">([^<]+)<`, true},
		{`no group`, false},
		{`(unclosed`, false},
	} {
		err := IdentitySource{Kind: FromPage, Path: "/", Match: tc.match}.Check()
		if (err == nil) != tc.ok {
			t.Errorf("page %q: err %v, want ok %v", tc.match, err, tc.ok)
		}
	}
}

func TestSetsOneOf(t *testing.T) {
	h := http.Header{"Set-Cookie": {"sid=abc; Path=/", "Logged_In=1", "gone=; Max-Age=0", "remember_me=x"}}
	for names, want := range map[string]bool{
		"logged_in": true, "LOGGED_IN": true, "remember_*": true, "sid": true,
		"gone": false, "other": false, "other,gone": false,
	} {
		if got := setsOneOf(h, strings.Split(names, ",")); got != want {
			t.Errorf("setsOneOf(%s) = %v, want %v", names, got, want)
		}
	}
}

func TestQueryHas(t *testing.T) {
	for raw, want := range map[string]bool{
		"": false, "a=1&b=2": false, "a=1&auth_pass=x": true, "a=1;PWD=x": true, "x%5Fpass=1": true,
		"pass": true, "q=password": false, "&&=&": false, "%zz=1": false, "api%2Btoken=1": true,
	} {
		if got := queryHas(raw, CredentialName); got != want {
			t.Errorf("queryHas(%q) = %v, want %v", raw, got, want)
		}
	}
}
