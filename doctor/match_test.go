package doctor

import (
	"net/http"
	"testing"

	"github.com/mfagate/mfagate/guard"
)

func TestPathMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/login", "/login", true},
		{"/login", "/LOGIN", true},
		{"/login", "/login/", false},
		{"/index.php/*", "/index.php/Special:UserLogin", true},
		{"/index.php/*", "/index.php", false},
		{"*.php", "/api.php", true},
		{"*login*", "/x/login/y", true},
		{"/a/*/b", "/a/x/b", true},
	} {
		if got := pathMatch(tc.pattern, tc.path); got != tc.want {
			t.Errorf("pathMatch(%q, %q) = %v", tc.pattern, tc.path, got)
		}
	}
}

func TestSendable(t *testing.T) {
	m, target, ok := sendable(Match{Methods: []string{"POST"}, Paths: []string{"/index.php/*", "/index.php"}, Query: map[string][]string{"title": {"Special:UserLogout"}}}, http.MethodGet)
	if m != "POST" || target != "/index.php?title=Special%3AUserLogout" || !ok {
		t.Errorf("got %s %s %v", m, target, ok)
	}
	if _, _, ok := sendable(Match{Methods: []string{"GET"}, Paths: []string{"/oauth/callback"}}, http.MethodPost); ok {
		t.Error("a GET sign-in is not sendable with credentials")
	}
}

func TestSignInForm(t *testing.T) {
	page := []byte(`<form method="get" action="/search"><input name="q"></form>
<form method="post" action="/index.php?title=Special:UserLogin&amp;returnto=Main+Page">
<input type="hidden" name="wpLoginToken" value="abc+\">
<input id="wpName1" name="wpName" type="text" value="">
<input name='wpPassword' type=password>
<input type="checkbox" name="wpRemember" value="1">
<button type="submit" name="wploginattempt" value="Log in">Log in</button>
<button type="submit" name="other" value="x">Other</button>
</form>`)
	f, ok := signInForm(page)
	if !ok {
		t.Fatal("no sign-in form")
	}
	if f.Action != "/index.php?title=Special:UserLogin&returnto=Main+Page" || f.Method != "POST" || f.User != "wpName" || f.Password != "wpPassword" {
		t.Errorf("form %+v", f)
	}
	if f.Fields.Get("wpLoginToken") != `abc+\` || f.Fields.Get("wploginattempt") != "Log in" || f.Fields.Has("wpRemember") || f.Fields.Has("other") {
		t.Errorf("fields %v", f.Fields)
	}
}

func TestUserFrom(t *testing.T) {
	who := guard.IdentitySource{Kind: guard.FromWhoami, Field: "query.userinfo.name", Nobody: "query.userinfo.anon"}
	for _, tc := range []struct {
		status     int
		body, want string
		known      bool
		src        guard.IdentitySource
	}{
		{200, `{"query":{"userinfo":{"name":"Alice"}}}`, "Alice", true, who},
		{200, `{"query":{"userinfo":{"name":"127.0.0.1","anon":""}}}`, "", true, who},
		{401, ``, "", true, who},
		{302, ``, "", true, who},
		{500, ``, "", false, who},
		{200, `<html>`, "", false, who},
		{200, `{"data":{"users":[{"login":"bob"}]}}`, "bob", true, guard.IdentitySource{Kind: guard.FromWhoami, Field: "data.users.0.login"}},
		{200, `<strong id="user">O&#39;Brien</strong>`, "O'Brien", true, guard.IdentitySource{Kind: guard.FromPage, Match: `<strong id="user">([^<]+)</strong>`}},
	} {
		got, known := userFrom(tc.src, &answer{Status: tc.status, Body: []byte(tc.body)})
		if got != tc.want || known != tc.known {
			t.Errorf("%d %s: got %q %v, want %q %v", tc.status, tc.body, got, known, tc.want, tc.known)
		}
	}
}
