package demoapp

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// client is a browser-like client on a loopback test server: a real cookie
// jar, redirects not followed so each step can be checked.
type client struct {
	t   *testing.T
	app *App
	srv *httptest.Server
	hc  *http.Client
}

func newClient(t *testing.T, opts Options) *client {
	t.Helper()
	app := New(opts)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &client{t: t, app: app, srv: srv, hc: hc}
}

// do sends a request and returns the response with its body read.
func (c *client) do(method, path, contentType, body string, hdr http.Header) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	return c.do(http.MethodGet, path, "", "", nil)
}

func (c *client) postForm(path string, v url.Values) (*http.Response, string) {
	c.t.Helper()
	return c.do(http.MethodPost, path, "application/x-www-form-urlencoded", v.Encode(), nil)
}

// cookie returns the session cookie value held in the jar, or "".
func (c *client) cookie() string {
	u, _ := url.Parse(c.srv.URL)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == c.app.CookieName() {
			return ck.Value
		}
	}
	return ""
}

// setCookie returns the response's Set-Cookie for the session cookie.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// shape describes where one app shape keeps its pages.
type shape struct {
	name     string
	opts     func(*Options)
	form     string // GET path of the sign-in form
	post     string // POST path of the sign-in form
	extra    url.Values
	home     string
	logout   string // GET path that signs out
	loginURL string
}

func shapes() []shape {
	normal := shape{form: "/login", post: "/login", home: "/", logout: "/logout", loginURL: "/login"}
	shared := shape{form: "/index.php?do=login", post: "/index.php", extra: url.Values{"do": {"login"}},
		home: "/index.php?do=show", logout: "/index.php?do=logout", loginURL: "/index.php?do=login"}
	with := func(s shape, name string, f func(*Options)) shape {
		s.name, s.opts = name, f
		return s
	}
	return []shape{
		with(normal, "default", func(*Options) {}),
		with(normal, "no rotate", func(o *Options) { o.Rotate = false }),
		with(normal, "csrf", func(o *Options) { o.CSRF = true }),
		with(normal, "no rotate csrf", func(o *Options) { o.Rotate, o.CSRF = false, true }),
		with(normal, "derived cookie", func(o *Options) { o.CookieDerived, o.BaseURL = true, "http://127.0.0.1/app" }),
		with(shared, "shared path", func(o *Options) { o.SharedPath = true }),
		with(shared, "shared path no rotate csrf", func(o *Options) { o.SharedPath, o.Rotate, o.CSRF = true, false, true }),
	}
}

func TestShapesSignInAndOut(t *testing.T) {
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			opts := DefaultOptions()
			sh.opts(&opts)
			c := newClient(t, opts)

			resp, body := c.get(sh.form)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="username"`) {
				t.Fatalf("GET form: %d %q", resp.StatusCode, body)
			}
			before := c.cookie()
			if !opts.Rotate && before == "" {
				t.Fatal("no anonymous session cookie on first visit")
			}
			if _, ok := c.app.SessionUser(before); ok {
				t.Fatal("anonymous session already signed in")
			}
			form := url.Values{"username": {"alice"}, "password": {"alice-password"}}
			for k, v := range sh.extra {
				form[k] = v
			}
			if opts.CSRF {
				m := regexp.MustCompile(`name="csrf_token" value="([0-9a-f]+)"`).FindStringSubmatch(body)
				if m == nil {
					t.Fatal("form has no CSRF token")
				}
				form.Set("csrf_token", m[1])
			}

			resp, _ = c.postForm(sh.post, form)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != sh.home {
				t.Fatalf("sign-in: %d Location %q, want 303 %q", resp.StatusCode, resp.Header.Get("Location"), sh.home)
			}
			if got := resp.Header.Get("X-Demo-User"); got != "alice" {
				t.Errorf("X-Demo-User = %q", got)
			}
			after := c.cookie()
			sc := setCookie(resp, c.app.CookieName())
			if opts.Rotate {
				if sc == nil || after == before {
					t.Errorf("rotate: Set-Cookie %v, before %q after %q", sc, before, after)
				}
			} else if sc != nil || after != before {
				t.Errorf("no rotate: Set-Cookie %v, before %q after %q", sc, before, after)
			}
			if u, ok := c.app.SessionUser(after); !ok || u != "alice" {
				t.Fatalf("SessionUser = %q, %v", u, ok)
			}
			if len(after) != 64 {
				t.Errorf("session id %q is not 32 hex bytes", after)
			}

			resp, body = c.get(sh.home)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<h1>Dashboard</h1>`) ||
				!strings.Contains(body, `Signed in as <strong id="user">alice</strong>`) {
				t.Fatalf("dashboard: %d %q", resp.StatusCode, body)
			}
			resp, body = c.get("/api/me")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"role":"member"`) {
				t.Fatalf("/api/me: %d %q", resp.StatusCode, body)
			}

			resp, _ = c.get(sh.logout)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != sh.loginURL {
				t.Fatalf("sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if sc := setCookie(resp, c.app.CookieName()); sc == nil || sc.MaxAge >= 0 {
				t.Errorf("sign-out did not clear the cookie: %v", sc)
			}
			if _, ok := c.app.SessionUser(after); ok {
				t.Error("session still signed in after sign-out")
			}
			if resp, _ = c.get("/api/me"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("/api/me after sign-out: %d", resp.StatusCode)
			}
			if resp, _ = c.get(sh.home); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != sh.loginURL {
				t.Errorf("dashboard after sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func TestFormSignInRefusals(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(*Options)
		visit   bool // GET the form first
		ctype   string
		body    string
		status  int
		message string
	}{
		{"bad password", func(*Options) {}, true, "application/x-www-form-urlencoded", "username=alice&password=nope", 401, "Invalid username or password"},
		{"unknown user", func(*Options) {}, true, "application/x-www-form-urlencoded", "username=mallory&password=x", 401, "Invalid username or password"},
		{"missing password", func(*Options) {}, true, "application/x-www-form-urlencoded", "username=alice", 400, ""},
		{"garbage encoding", func(*Options) {}, true, "application/x-www-form-urlencoded", "username=%zz&password=%", 400, ""},
		{"json body", func(*Options) {}, true, "application/json", `{"username":"alice","password":"alice-password"}`, 400, ""},
		{"csrf missing", func(o *Options) { o.CSRF = true }, true, "application/x-www-form-urlencoded", "username=alice&password=alice-password", 403, "expired"},
		{"csrf wrong", func(o *Options) { o.CSRF = true }, true, "application/x-www-form-urlencoded", "username=alice&password=alice-password&csrf_token=00", 403, "expired"},
		{"csrf no session", func(o *Options) { o.CSRF = true }, false, "application/x-www-form-urlencoded", "username=alice&password=alice-password&csrf_token=00", 403, "expired"},
		{"csrf no rotate missing", func(o *Options) { o.CSRF, o.Rotate = true, false }, true, "application/x-www-form-urlencoded", "username=alice&password=alice-password", 403, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultOptions()
			tt.opts(&opts)
			c := newClient(t, opts)
			if tt.visit {
				c.get("/login")
			}
			resp, body := c.do(http.MethodPost, "/login", tt.ctype, tt.body, nil)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.message) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tt.status, tt.message)
			}
			if resp.Header.Get("X-Demo-User") != "" {
				t.Error("X-Demo-User set on a refused sign-in")
			}
			if _, ok := c.app.SessionUser(c.cookie()); ok {
				t.Error("refused sign-in left a signed-in session")
			}
		})
	}
}

func TestAPILogin(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"good", `{"username":"alice","password":"alice-password"}`, 200, `{"ok":true,"user":"alice"}`},
		{"bad", `{"username":"alice","password":"wrong"}`, 401, `{"ok":false}`},
		{"garbage", `{"username":`, 400, `"ok":false`},
		{"missing field", `{"username":"alice"}`, 400, `"ok":false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, DefaultOptions())
			resp, body := c.do(http.MethodPost, "/api/login", "application/json", tt.body, nil)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.want)
			}
			signedIn := tt.status == http.StatusOK
			if got := setCookie(resp, c.app.CookieName()) != nil; got != signedIn {
				t.Errorf("Set-Cookie present = %v, want %v", got, signedIn)
			}
			if u, _ := c.app.SessionUser(c.cookie()); (u == "alice") != signedIn {
				t.Errorf("SessionUser = %q", u)
			}
		})
	}
}

func TestLegacyCredentialsFromAnyURL(t *testing.T) {
	basic := func(u, p string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	tests := []struct {
		name   string
		rotate bool
		path   string
		hdr    http.Header
		status int
	}{
		{"basic api data", true, "/api/data", basic("bob", "bob-password"), 200},
		{"basic api data no rotate", false, "/api/data", basic("bob", "bob-password"), 200},
		{"basic dashboard", true, "/", basic("bob", "bob-password"), 200},
		{"query params", true, "/api/data?auth_user=bob&auth_pass=bob-password", nil, 200},
		{"bad basic", true, "/api/data", basic("bob", "wrong"), 401},
		{"bad query params", true, "/api/data?auth_user=bob&auth_pass=wrong", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Rotate = tt.rotate
			c := newClient(t, opts)
			resp, body := c.do(http.MethodGet, tt.path, "", "", tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			sc := setCookie(resp, c.app.CookieName())
			if tt.status != http.StatusOK {
				if sc != nil || resp.Header.Get("X-Demo-User") != "" {
					t.Error("failed credentials set a cookie or X-Demo-User")
				}
				return
			}
			if sc == nil || resp.Header.Get("X-Demo-User") != "bob" || !strings.Contains(body, "bob") {
				t.Fatalf("Set-Cookie %v, X-Demo-User %q, body %q", sc, resp.Header.Get("X-Demo-User"), body)
			}
			if u, ok := c.app.SessionUser(sc.Value); !ok || u != "bob" {
				t.Errorf("SessionUser = %q, %v", u, ok)
			}
			// The cookie alone now carries the sign-in.
			if resp, _ := c.get("/api/me"); resp.StatusCode != http.StatusOK {
				t.Errorf("/api/me with the issued cookie: %d", resp.StatusCode)
			}
		})
	}
}

func TestSharedPathOtherActionsAreNotSignIn(t *testing.T) {
	opts := DefaultOptions()
	opts.SharedPath = true
	c := newClient(t, opts)
	creds := url.Values{"username": {"alice"}, "password": {"alice-password"}}

	for _, do := range []string{"search", "show", ""} {
		form := url.Values{"q": {"x"}}
		for k, v := range creds {
			form[k] = v
		}
		if do != "" {
			form.Set("do", do)
		}
		resp, body := c.postForm("/index.php", form)
		if resp.Header.Get("X-Demo-User") != "" || setCookie(resp, c.app.CookieName()) != nil ||
			strings.Contains(body, `id="user"`) {
			t.Fatalf("do=%q acted as a sign-in: %d %v", do, resp.StatusCode, resp.Header)
		}
	}

	// Signed in, do=search behaves as a normal page.
	form := url.Values{"do": {"login"}}
	for k, v := range creds {
		form[k] = v
	}
	if resp, _ := c.postForm("/index.php", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("do=login: %d", resp.StatusCode)
	}
	before := c.cookie()
	resp, body := c.postForm("/index.php", url.Values{"do": {"search"}, "q": {"widgets"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="results"`) ||
		resp.Header.Get("X-Demo-User") != "" || c.cookie() != before {
		t.Fatalf("do=search: %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.get("/login"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/login in shared-path shape: %d", resp.StatusCode)
	}
}

func TestDerivedCookieName(t *testing.T) {
	mk := func(base string) string {
		return New(Options{CookieDerived: true, BaseURL: base, CookieName: "ignored"}).CookieName()
	}
	a, b := mk("https://dash.example.com/"), mk("https://dash.example.com/")
	if a != b {
		t.Fatalf("not stable: %q vs %q", a, b)
	}
	if !regexp.MustCompile(`^SESS[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("name %q is not SESS + 12 hex", a)
	}
	if a == mk("https://other.example.com/") {
		t.Error("different base URLs give the same name")
	}
	if got := New(Options{}).CookieName(); got != DefaultCookieName {
		t.Errorf("default name %q", got)
	}
}

func TestMiscRoutes(t *testing.T) {
	opts := DefaultOptions()
	opts.SecureCookie = true
	c := newClient(t, opts)

	if resp, body := c.get("/healthz"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("anonymous dashboard: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := c.get("/api/data"); resp.StatusCode != 401 || !strings.Contains(body, "not signed in") {
		t.Errorf("anonymous /api/data: %d %q", resp.StatusCode, body)
	}

	for next, want := range map[string]string{"/api/me?x=1": "/api/me?x=1", "//evil.example": "/", "https://evil.example/": "/", `/\evil`: "/"} {
		form := url.Values{"username": {"admin"}, "password": {"admin-password"}, "next": {next}}
		resp, _ := c.postForm("/login", form)
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("next %q: Location %q, want %q", next, got, want)
		}
		sc := setCookie(resp, c.app.CookieName())
		if sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" {
			t.Errorf("cookie attributes: %+v", sc)
		}
		if u, _ := c.app.SessionUser(sc.Value); u != "admin" {
			t.Errorf("SessionUser = %q", u)
		}
	}
}
