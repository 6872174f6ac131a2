package guard

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestStripTrusted(t *testing.T) {
	tests := []struct {
		name       string
		userHeader string
		aalHeader  string
		keys       []string // header map keys as received (any spelling)
		kept       []string
	}{
		{
			name: "default headers in every spelling",
			keys: []string{
				"X-Mfa-User", "X_Mfa_User", "x-mfa-user", "X-MFA-USER", "x_mfa_user", "X-Mfa_User",
				"X-Mfa-Aal", "X_MFA_AAL", "x-mfa-aal",
				"X-Mfa-Users", "X-Mfa-User-Agent", "Xmfa-User", "X-Mfa", "User-Agent", "X", "Authorization",
			},
			kept: []string{"Authorization", "User-Agent", "X", "X-Mfa", "X-Mfa-User-Agent", "X-Mfa-Users", "Xmfa-User"},
		},
		{
			name:       "configured header names",
			userHeader: "Remote-User", aalHeader: "Remote_Aal",
			keys: []string{"Remote-User", "REMOTE_USER", "remote-aal", "Remote-Aal", "X-Mfa-User", "Remote-Users"},
			kept: []string{"Remote-Users", "X-Mfa-User"},
		},
		{
			// The Kelvin sign folds to 'k': a non-ASCII first byte is
			// always compared in full.
			name:       "non-ASCII spelling",
			userHeader: "Kid-User",
			keys:       []string{"\u212aid-User", "\u212aid_user", "Kid-Users", "Accept"},
			kept:       []string{"Accept", "Kid-Users"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGateway(t, func(c *Config) { c.UserHeader, c.AALHeader = tt.userHeader, tt.aalHeader })
			h := http.Header{}
			for _, k := range tt.keys {
				h[k] = []string{"forged"}
			}
			g.stripTrusted(h)
			var kept []string
			for k := range h {
				kept = append(kept, k)
			}
			sortStrings(kept)
			if !reflect.DeepEqual(kept, tt.kept) {
				t.Errorf("kept %q, want %q", kept, tt.kept)
			}
		})
	}
}

// TestStripTrustedThroughServeHTTP checks the end result the app sees: a
// forged user header never arrives, and without a session none is set.
func TestStripTrustedThroughServeHTTP(t *testing.T) {
	g := newTestGateway(t, nil)
	r := httptest.NewRequest("GET", "/page", nil)
	r.Header["X-Mfa-User"] = []string{"admin"}
	r.Header["X_mfa_user"] = []string{"admin"}
	r.Header["X-Mfa-Aal"] = []string{"2"}
	var seen http.Header
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	if err := g.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	for k := range seen {
		if hk := headerKey(k); hk == "x-mfa-user" || hk == "x-mfa-aal" {
			t.Errorf("app received %s: %q", k, seen[k])
		}
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b"},
		{"a/b", "/a/b"},
		{"_mfa/challenge", "/_mfa/challenge"},
		{"//_mfa", "/_mfa"},
		{"///_mfa//x", "/_mfa/x"},
		{"/x/../_mfa/", "/_mfa"},
		{"/../", "/"},
		{"/../../etc/passwd", "/etc/passwd"},
		{"/./a/./b/.", "/a/b"},
		{"/a/..", "/"},
		{"..", "/"},
		{"/_mfa/..", "/"},
		{"/_mfa/../app", "/app"},
		{"/%2e%2e/", "/%2e%2e"}, // cleanPath gets net/http's decoded Path: still-encoded dots are a name
		{"/a\\..\\_mfa", "/a\\..\\_mfa"},
	}
	for _, tt := range tests {
		if got := cleanPath(tt.in); got != tt.want {
			t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeaderKey(t *testing.T) {
	for in, want := range map[string]string{
		"X-Mfa-User": "x-mfa-user", "X_MFA_USER": "x-mfa-user", "x-mfa_user": "x-mfa-user", "": "",
	} {
		if got := headerKey(in); got != want {
			t.Errorf("headerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && strings.Compare(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

// TestServeHTTPStripsUnboundAppCookie is the end-to-end view of
// rewriteCookies: a client without a gateway session cannot hand the app a
// session cookie, however it spells the Cookie header.
func TestServeHTTPStripsUnboundAppCookie(t *testing.T) {
	for _, line := range []string{
		"sid=stolen",
		"a=1; sid=stolen",
		"sid =stolen",
		"sid\t=stolen",
		" sid = stolen ",
	} {
		t.Run(line, func(t *testing.T) {
			g := newTestGateway(t, nil)
			r := httptest.NewRequest("GET", "/account", nil)
			r.Header["Cookie"] = []string{line}
			var got *http.Cookie
			next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				got, _ = r.Cookie("sid") // as a Go app reads it
				w.WriteHeader(http.StatusOK)
				return nil
			})
			if err := g.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if got != nil {
				t.Errorf("BUG: the app got sid=%q from Cookie %q without a gateway session", got.Value, line)
			}
		})
	}
}
