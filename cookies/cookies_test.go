package cookies

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/session"
)

func testJar(tb testing.TB) *Jar {
	tb.Helper()
	j, err := NewJar("mfa_session", []string{"sid", "wp_logged_in_*"})
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// TestClassify: the one reading of the app's Set-Cookie lines.
func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	j := testJar(t)
	tests := []struct {
		line          string
		name, value   string
		deleted, isOK bool
	}{
		{"sid=abc; Path=/; HttpOnly", "sid", "abc", false, true},
		{"wp_logged_in_1=v", "wp_logged_in_1", "v", false, true},
		{"wp.logged.in.1=v", "wp.logged.in.1", "v", false, true},
		{"sid=; Max-Age=0", "sid", "", true, true},
		{"sid=x; Max-Age=-1", "sid", "x", true, true},
		{"sid=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "sid", "x", true, true},
		{"sid=x; Expires=Thu, 01 Jan 2099 00:00:00 GMT", "sid", "x", false, true},
		{"theme=dark", "", "", false, false},
		{"mfa_session=x", "", "", false, false},
		{"garbage", "", "", false, false},
		{"", "", "", false, false},
	}
	for _, tt := range tests {
		name, value, deleted, ok := j.Classify(tt.line, now)
		if name != tt.name || value != tt.value || deleted != tt.deleted || ok != tt.isOK {
			t.Errorf("Classify(%q) = %q, %q, deleted %v, ok %v; want %q, %q, %v, %v", tt.line, name, value, deleted, ok, tt.name, tt.value, tt.deleted, tt.isOK)
		}
	}
	h := http.Header{"Set-Cookie": {"sid=new", "theme=dark", "wp_logged_in_2=; Max-Age=0"}}
	as := j.AppSetCookies(h, now)
	if len(as.Set) != 1 || as.Values[0] != (Pair{Name: "sid", Value: "new"}) || !reflect.DeepEqual(as.Deleted, []string{"wp_logged_in_2"}) || len(as.Lines) != 2 {
		t.Fatalf("AppSetCookies = %+v", as)
	}
	bound := boundSession(session.Active, "sid", "new")
	if j.SetsNew(h, bound, now) {
		t.Error("a bound value (rolling refresh) counted as new")
	}
	if !j.SetsNew(h, nil, now) || !j.SetsNew(h, boundSession(session.Active, "sid", "old"), now) {
		t.Error("a value nobody bound was not noticed")
	}
}

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
	dotted := boundSession(session.Active, "wp.logged.in.abc", "wpgood")

	tests := []struct {
		name      string
		tls       bool
		lines     []string // Cookie header lines as sent
		sess      *session.Session
		want      []string // Cookie header lines the app gets (nil = none)
		gateway   string
		anyGW     bool // do not check gateway
		nStripped int  // check only how many were stripped (for respelled names)
		forwarded []Pair
		stripped  []string
	}{
		{name: "no cookies", want: nil},
		{name: "unrelated cookies untouched", lines: []string{"theme=dark; lang=en"}, want: []string{"theme=dark; lang=en"}},
		{name: "gateway cookie removed", lines: []string{"theme=dark; mfa_session=GW; lang=en"}, want: []string{"theme=dark; lang=en"}, gateway: "GW"},
		{name: "only the gateway cookie: header removed", lines: []string{"mfa_session=GW"}, want: nil, gateway: "GW"},
		{name: "HTTPS reads __Host- and drops the plain name", tls: true, lines: []string{"mfa_session=PLAIN; __Host-mfa_session=HOST; a=1"}, want: []string{"a=1"}, gateway: "HOST"},
		{name: "HTTP drops a __Host- cookie without using it", lines: []string{"__Host-mfa_session=HOST; a=1"}, want: []string{"a=1"}, gateway: ""},

		{name: "app cookie without session stripped", lines: []string{"sid=stolen; theme=dark"}, want: []string{"theme=dark"}, stripped: []string{"sid"}},
		{name: "bound app cookie forwarded", sess: active, lines: []string{"sid=good; theme=dark; mfa_session=GW"}, want: []string{"sid=good; theme=dark"}, gateway: "GW", forwarded: []Pair{{"sid", "good"}}},
		{name: "app cookie with another value stripped", sess: active, lines: []string{"sid=stolen"}, want: nil, stripped: []string{"sid"}},
		{name: "duplicate app cookie: only the bound one", sess: active, lines: []string{"sid=stolen; sid=good"}, want: []string{"sid=good"}, forwarded: []Pair{{"sid", "good"}}, stripped: []string{"sid"}},
		{name: "glob name bound", sess: active, lines: []string{"wp_logged_in_abc=wpgood"}, want: []string{"wp_logged_in_abc=wpgood"}, forwarded: []Pair{{"wp_logged_in_abc", "wpgood"}}},
		{name: "glob name unbound", sess: active, lines: []string{"wp_logged_in_xyz=wpgood; wp_settings=1"}, want: []string{"wp_settings=1"}, stripped: []string{"wp_logged_in_xyz"}},
		{name: "bound value under another name", sess: active, lines: []string{"wp_logged_in_xyz=good"}, want: nil, stripped: []string{"wp_logged_in_xyz"}},
		{name: "app cookie without =", lines: []string{"sid; a=1"}, want: []string{"a=1"}, stripped: []string{"sid"}},
		{name: "unchanged line passes as sent", lines: []string{";; a=1 ;  ; b=2;"}, want: []string{";; a=1 ;  ; b=2;"}},
		{name: "changed line: empty parts dropped", lines: []string{";; a=1 ; sid=x ; b=2;"}, want: []string{"a=1; b=2"}, stripped: []string{"sid"}},

		{name: "multiple lines joined", sess: active, lines: []string{"a=1", "sid=good; mfa_session=GW", "b=2"}, want: []string{"a=1; sid=good; b=2"}, gateway: "GW", forwarded: []Pair{{"sid", "good"}}},
		{name: "multiple lines without change still joined", lines: []string{"a=1", "b=2"}, want: []string{"a=1; b=2"}},
		{name: "multiple lines, app cookie in the second", lines: []string{"a=1", "sid=stolen"}, want: []string{"a=1"}, stripped: []string{"sid"}},

		{name: "pending session forwards nothing", sess: pending, lines: []string{"sid=good; a=1"}, want: []string{"a=1"}, stripped: []string{"sid"}},
		{name: "anonymous session forwards its bound cookie", sess: anonymous, lines: []string{"sid=anon"}, want: []string{"sid=anon"}, forwarded: []Pair{{"sid", "anon"}}},

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
		{name: "dotted name bound as sent is forwarded", sess: dotted, lines: []string{"wp.logged.in.abc=wpgood"}, want: []string{"wp.logged.in.abc=wpgood"}, forwarded: []Pair{{"wp.logged.in.abc", "wpgood"}}},
		{name: "dotted bound name respelled is stripped", sess: dotted, lines: []string{"wp_logged_in_abc=wpgood"}, want: nil, stripped: []string{"wp_logged_in_abc"}},
		// ASP.NET Core and others read cookie names case-insensitively.
		{name: "app cookie in upper case stripped", lines: []string{"SID=stolen; a=1"}, want: []string{"a=1"}, stripped: []string{"SID"}},
		{name: "bound value in another case stripped", sess: active, lines: []string{"sid=good; Sid=good"}, want: []string{"sid=good"}, forwarded: []Pair{{"sid", "good"}}, stripped: []string{"Sid"}},
		{name: "glob name in upper case stripped", lines: []string{"WP_LOGGED_IN_X=v"}, want: nil, stripped: []string{"WP_LOGGED_IN_X"}},
		{name: "gateway cookie in another case dropped unread", lines: []string{"MFA_SESSION=GW; a=1"}, want: []string{"a=1"}, gateway: ""},
		// Python's SimpleCookie, among others, also splits on ','.
		{name: "app cookie hidden after a comma", lines: []string{"x=1, sid=stolen; a=1"}, want: []string{"a=1"}, stripped: []string{"sid"}},
		{name: "gateway cookie hidden after a comma", lines: []string{"x=1,mfa_session=GW"}, want: nil, stripped: []string{"mfa_session"}},
		{name: "comma in an unrelated value kept", lines: []string{"prefs=a,b; theme=dark"}, want: []string{"prefs=a,b; theme=dark"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testJar(t)
			r := httptest.NewRequest("GET", "/page", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.lines != nil {
				r.Header["Cookie"] = append([]string(nil), tt.lines...)
			}
			sc := g.Rewrite(r, tt.sess)
			if got := r.Header["Cookie"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
			if !tt.anyGW && sc.Gateway != tt.gateway {
				t.Errorf("gateway = %q, want %q", sc.Gateway, tt.gateway)
			}
			if !reflect.DeepEqual(sc.Forwarded, tt.forwarded) {
				t.Errorf("forwarded = %v, want %v", sc.Forwarded, tt.forwarded)
			}
			if tt.nStripped > 0 {
				if len(sc.Stripped) != tt.nStripped {
					t.Errorf("stripped = %q, want %d names", sc.Stripped, tt.nStripped)
				}
			} else if !reflect.DeepEqual(sc.Stripped, tt.stripped) {
				t.Errorf("stripped = %q, want %q", sc.Stripped, tt.stripped)
			}
			// What a Go app reads must agree: no unbound session cookie.
			for _, c := range r.Cookies() {
				if g.IsApp(c.Name) && (tt.sess == nil || !tt.sess.Bound(c.Name, c.Value) || tt.sess.State == session.Pending) {
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
		"SID=x", "a=1, sid=x", "a=1,mfa_session=x", "Sid=good",
	} {
		f.Add(s, s)
	}
	g := testJar(f)
	sess := boundSession(session.Active, "sid", "good")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		for _, s := range []*session.Session{nil, sess} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Cookie"] = []string{line1, line2}
			want := joinedRewrite(g, []string{line1, line2}, s)
			sc := g.Rewrite(r, s)
			if !reflect.DeepEqual(r.Header["Cookie"], want) {
				t.Fatalf("Cookie %q became %q, want %q", []string{line1, line2}, r.Header["Cookie"], want)
			}
			for _, c := range append(r.Cookies(), laxCookies(r.Header["Cookie"])...) {
				if g.IsApp(c.Name) && !(s != nil && c.Name == "sid" && c.Value == "good") {
					t.Fatalf("Cookie %q forwarded %s=%q (Cookie now %q)", []string{line1, line2}, c.Name, c.Value, r.Header["Cookie"])
				}
				if g.isGateway(Key(c.Name)) {
					t.Fatalf("Cookie %q forwarded the gateway cookie (Cookie now %q)", []string{line1, line2}, r.Header["Cookie"])
				}
			}
			if len(r.Header["Cookie"]) > 1 {
				t.Fatalf("Cookie lines not joined: %q", r.Header["Cookie"])
			}
			for _, fw := range sc.Forwarded {
				if s == nil || !s.Bound(fw.Name, fw.Value) {
					t.Fatalf("forwarded unbound %v", fw)
				}
			}
		}
	})
}

// laxCookies parses Cookie lines the laxest way common frameworks do: split
// on ';' and ',', names and values trimmed, surrounding quotes dropped.
func laxCookies(lines []string) []*http.Cookie {
	var out []*http.Cookie
	for _, line := range lines {
		for _, part := range strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == ',' }) {
			n, v, _ := strings.Cut(part, "=")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			out = append(out, &http.Cookie{Name: strings.TrimSpace(n), Value: v})
		}
	}
	return out
}

// FuzzClassify: any Set-Cookie line is classified without a panic, and a
// line classified as the app's names one of its session cookies.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"sid=x", "sid=; Max-Age=0", "wp_logged_in_1=v; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "=", "", "a=b; sid=c", "SID=x"} {
		f.Add(s)
	}
	j := testJar(f)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		name, _, _, ok := j.Classify(line, now)
		if ok && !j.IsApp(name) {
			t.Fatalf("Classify(%q) names %q, not an app session cookie", line, name)
		}
	})
}

// joinedRewrite is what Rewrite computes, done the plain way: every
// kept part, trimmed, joined by "; " whenever anything was dropped or there
// were several lines. Rewrite must give the same header (it returns a
// substring of the line when it can, and builds the rest).
func joinedRewrite(g *Jar, lines []string, sess *session.Session) []string {
	forward := sess != nil && sess.State != session.Pending
	var kept []string
	changed := len(lines) > 1
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			n, v, _ := strings.Cut(part, "=")
			key := Key(strings.TrimSpace(n))
			switch {
			case g.isGateway(key):
				changed = true
				continue
			case g.IsApp(key):
				if !(forward && sess.Bound(n, v)) {
					changed = true
					continue
				}
			case g.hiddenProtected(part) != "":
				changed = true
				continue
			}
			kept = append(kept, part)
		}
	}
	switch {
	case !changed:
		return lines
	case len(kept) == 0:
		return nil
	}
	return []string{strings.Join(kept, "; ")}
}

func TestRewriteCookiesSameAsJoined(t *testing.T) {
	g, err := NewJar("mfa_session", []string{"sid"})
	if err != nil {
		t.Fatal(err)
	}
	sess := boundSession(session.Active, "sid", "good")
	parts := []string{"a=1", "b=2", "mfa_session=GW", "sid=good", "sid=bad", "", " ", "c=3 ", " d=4", "e", "\u00a0f=5", "g=6\u00a0", "\u0085mfa_session=x",
		"SID=good", "x=1, sid=bad", "p=a,b", "MFA_Session=GW"}
	seps := []string{"; ", ";", ";  ", " ; "}
	rng := uint32(1)
	next := func(n int) int { rng = rng*1664525 + 1013904223; return int(rng>>8) % n }
	for i := range 20000 {
		var lines []string
		for range 1 + next(4)/3 { // mostly one line, as browsers send
			var b strings.Builder
			for j := range next(6) {
				if j > 0 {
					b.WriteString(seps[next(len(seps))])
				}
				b.WriteString(parts[next(len(parts))])
			}
			lines = append(lines, b.String())
		}
		for _, s := range []*session.Session{nil, sess} {
			want := joinedRewrite(g, append([]string(nil), lines...), s)
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Cookie"] = append([]string(nil), lines...)
			g.Rewrite(r, s)
			if got := r.Header["Cookie"]; !reflect.DeepEqual(got, want) {
				t.Fatalf("case %d: Cookie %q became %q, want %q", i, lines, got, want)
			}
		}
	}
}

// TestIsGateway: the gateway's cookies, its session, a remembered browser
// and the browser-recognition cookie, in either scheme's spelling and any
// letter case, and nothing else.
func TestIsGateway(t *testing.T) {
	j, err := NewJar("mfa_session", []string{"sid"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"mfa_session": true, "MFA_Session": true, "__Host-mfa_session": true, "__host-MFA_SESSION": true,
		"mfa_session_device": true, "__Host-mfa_session_device": true, "MFA_SESSION_SEEN": true, "__Host-mfa_session_seen": true,
		"mfa_sessionx": false, "mfa_session_devices": false, "mfa_session_": false, "mfa": false, "sid": false, "": false,
		"x__Host-mfa_session": false, "__Host-mfa_session_other": false,
	} {
		if got := j.isGateway(name); got != want {
			t.Errorf("isGateway(%q) = %v, want %v", name, got, want)
		}
	}
}
