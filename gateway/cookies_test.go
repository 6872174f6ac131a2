package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/session"
)

// boundSession is a session in state st with the given app cookies bound.
func boundSession(st session.State, nameValues ...string) *session.Session {
	s := &session.Session{State: st, User: "alice"}
	var bs []session.Binding
	for i := 0; i+1 < len(nameValues); i += 2 {
		bs = append(bs, session.Binding{Name: nameValues[i], Hash: session.HashValue(nameValues[i+1])})
	}
	s.SetBindings(bs)
	return s
}

func TestRewriteCookies(t *testing.T) {
	active := boundSession(session.Active, "sid", "good", "wp_logged_in_abc", "wpgood")
	pending := boundSession(session.Pending, "sid", "good")
	anonymous := boundSession(session.Anonymous, "sid", "anon")

	tests := []struct {
		name      string
		tls       bool
		lines     []string // Cookie header lines as sent
		sess      *session.Session
		want      []string // Cookie header lines the app gets (nil = none)
		gateway   string
		anyGW     bool // do not check gateway
		nStripped int  // check only how many were stripped (for respelled names)
		forwarded []appCookie
		stripped  []string
	}{
		{name: "no cookies", want: nil},
		{name: "unrelated cookies untouched", lines: []string{"theme=dark; lang=en"}, want: []string{"theme=dark; lang=en"}},
		{name: "gateway cookie removed", lines: []string{"theme=dark; mfa_session=GW; lang=en"}, want: []string{"theme=dark; lang=en"}, gateway: "GW"},
		{name: "only the gateway cookie: header removed", lines: []string{"mfa_session=GW"}, want: nil, gateway: "GW"},
		{name: "HTTPS reads __Host- and drops the plain name", tls: true, lines: []string{"mfa_session=PLAIN; __Host-mfa_session=HOST; a=1"}, want: []string{"a=1"}, gateway: "HOST"},
		{name: "HTTP drops a __Host- cookie without using it", lines: []string{"__Host-mfa_session=HOST; a=1"}, want: []string{"a=1"}, gateway: ""},

		{name: "app cookie without session stripped", lines: []string{"sid=stolen; theme=dark"}, want: []string{"theme=dark"}, stripped: []string{"sid"}},
		{name: "bound app cookie forwarded", sess: active, lines: []string{"sid=good; theme=dark; mfa_session=GW"}, want: []string{"sid=good; theme=dark"}, gateway: "GW", forwarded: []appCookie{{"sid", "good"}}},
		{name: "app cookie with another value stripped", sess: active, lines: []string{"sid=stolen"}, want: nil, stripped: []string{"sid"}},
		{name: "duplicate app cookie: only the bound one", sess: active, lines: []string{"sid=stolen; sid=good"}, want: []string{"sid=good"}, forwarded: []appCookie{{"sid", "good"}}, stripped: []string{"sid"}},
		{name: "glob name bound", sess: active, lines: []string{"wp_logged_in_abc=wpgood"}, want: []string{"wp_logged_in_abc=wpgood"}, forwarded: []appCookie{{"wp_logged_in_abc", "wpgood"}}},
		{name: "glob name unbound", sess: active, lines: []string{"wp_logged_in_xyz=wpgood; wp_settings=1"}, want: []string{"wp_settings=1"}, stripped: []string{"wp_logged_in_xyz"}},
		{name: "bound value under another name", sess: active, lines: []string{"wp_logged_in_xyz=good"}, want: nil, stripped: []string{"wp_logged_in_xyz"}},
		{name: "app cookie without =", lines: []string{"sid; a=1"}, want: []string{"a=1"}, stripped: []string{"sid"}},
		{name: "unchanged line passes as sent", lines: []string{";; a=1 ;  ; b=2;"}, want: []string{";; a=1 ;  ; b=2;"}},
		{name: "changed line: empty parts dropped", lines: []string{";; a=1 ; sid=x ; b=2;"}, want: []string{"a=1; b=2"}, stripped: []string{"sid"}},

		{name: "multiple lines joined", sess: active, lines: []string{"a=1", "sid=good; mfa_session=GW", "b=2"}, want: []string{"a=1; sid=good; b=2"}, gateway: "GW", forwarded: []appCookie{{"sid", "good"}}},
		{name: "multiple lines without change still joined", lines: []string{"a=1", "b=2"}, want: []string{"a=1; b=2"}},
		{name: "multiple lines, app cookie in the second", lines: []string{"a=1", "sid=stolen"}, want: []string{"a=1"}, stripped: []string{"sid"}},

		{name: "pending session forwards nothing", sess: pending, lines: []string{"sid=good; a=1"}, want: []string{"a=1"}, stripped: []string{"sid"}},
		{name: "anonymous session forwards its bound cookie", sess: anonymous, lines: []string{"sid=anon"}, want: []string{"sid=anon"}, forwarded: []appCookie{{"sid", "anon"}}},

		// Lenient servers trim blanks around a cookie name (net/http's
		// readCookies, Node's cookie, Python's http.cookies), so a name with
		// blanks before "=" is still the app's session cookie.
		{name: "app cookie with blank before =", lines: []string{"sid =stolen; a=1"}, want: []string{"a=1"}, nStripped: 1},
		{name: "app cookie with tab before =", lines: []string{"sid\t=stolen"}, want: nil, nStripped: 1},
		{name: "bound value with blank before = is not forwarded", sess: active, lines: []string{"sid =good"}, want: nil, nStripped: 1},
		{name: "gateway cookie with blank before =", lines: []string{"mfa_session =GW; a=1"}, want: []string{"a=1"}, anyGW: true},
		// PHP (WordPress, Nextcloud…) turns '.' and ' ' in a cookie name into
		// '_', so "wp.logged.in.abc" is $_COOKIE["wp_logged_in_abc"].
		{name: "PHP-mangled app cookie name", lines: []string{"wp.logged.in.abc=stolen; a=1"}, want: []string{"a=1"}, nStripped: 1},
		{name: "PHP-mangled name with blanks", lines: []string{"wp logged in abc=stolen"}, want: nil, nStripped: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGateway(t, func(c *Config) { c.AppCookies = []string{"sid", "wp_logged_in_*"} })
			r := httptest.NewRequest("GET", "/page", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.lines != nil {
				r.Header["Cookie"] = append([]string(nil), tt.lines...)
			}
			sc := g.rewriteCookies(r, tt.sess)
			if got := r.Header["Cookie"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
			if !tt.anyGW && sc.gateway != tt.gateway {
				t.Errorf("gateway = %q, want %q", sc.gateway, tt.gateway)
			}
			if !reflect.DeepEqual(sc.forwarded, tt.forwarded) {
				t.Errorf("forwarded = %v, want %v", sc.forwarded, tt.forwarded)
			}
			if tt.nStripped > 0 {
				if len(sc.stripped) != tt.nStripped {
					t.Errorf("stripped = %q, want %d names", sc.stripped, tt.nStripped)
				}
			} else if !reflect.DeepEqual(sc.stripped, tt.stripped) {
				t.Errorf("stripped = %q, want %q", sc.stripped, tt.stripped)
			}
			// What a Go app reads must agree: no unbound session cookie.
			for _, c := range r.Cookies() {
				if g.cfg.appCookie(c.Name) && (tt.sess == nil || !tt.sess.Bound(c.Name, c.Value) || tt.sess.State == session.Pending) {
					t.Errorf("the app reads unbound session cookie %s=%s", c.Name, c.Value)
				}
				if c.Name == "mfa_session" || c.Name == "__Host-mfa_session" {
					t.Errorf("the app reads the gateway cookie %s", c.Name)
				}
			}
		})
	}
}

// FuzzRewriteCookies checks, with net/http's cookie parser standing in for
// the app, that no request reaches the app with an app session cookie that is
// not bound, or with the gateway cookie.
func FuzzRewriteCookies(f *testing.F) {
	for _, s := range []string{
		"sid=good", "sid=stolen; a=1", "mfa_session=x; sid=good", "a=1; wp_logged_in_1=v",
		"sid =x", " sid=x", "sid= x", `sid="good"`, "sid=good, sid=x", ";;sid", "=sid", "\tsid\t=\tx",
	} {
		f.Add(s, s)
	}
	g := newTestGateway(f, func(c *Config) { c.AppCookies = []string{"sid", "wp_logged_in_*"} })
	sess := boundSession(session.Active, "sid", "good")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		for _, s := range []*session.Session{nil, sess} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Cookie"] = []string{line1, line2}
			sc := g.rewriteCookies(r, s)
			for _, c := range r.Cookies() {
				if g.cfg.appCookie(c.Name) && !(s != nil && c.Name == "sid" && c.Value == "good") {
					t.Fatalf("Cookie %q forwarded %s=%q (Cookie now %q)", []string{line1, line2}, c.Name, c.Value, r.Header["Cookie"])
				}
				if c.Name == g.cfg.CookieName || c.Name == g.hostCookieName {
					t.Fatalf("Cookie %q forwarded the gateway cookie (Cookie now %q)", []string{line1, line2}, r.Header["Cookie"])
				}
			}
			if len(r.Header["Cookie"]) > 1 {
				t.Fatalf("Cookie lines not joined: %q", r.Header["Cookie"])
			}
			for _, fw := range sc.forwarded {
				if s == nil || !s.Bound(fw.name, fw.value) {
					t.Fatalf("forwarded unbound %v", fw)
				}
			}
		}
	})
}

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
