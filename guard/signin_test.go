package guard

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage/bolt"
)

// newTestRuntime opens a mfa.Service on a bbolt file in a temporary directory.
func newTestRuntime(tb testing.TB) *mfa.Service {
	tb.Helper()
	store, err := bolt.Open(filepath.Join(tb.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		tb.Fatalf("OpenBolt: %v", err)
	}
	rt, err := mfa.Open(mfa.Options{Store: store, Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		store.Close()
		tb.Fatalf("OpenRuntime: %v", err)
	}
	tb.Cleanup(func() {
		if err := rt.Close(); err != nil {
			tb.Errorf("mfa.Service.Close: %v", err)
		}
	})
	return rt
}

// newTestGateway builds a Gateway on a fresh mfa.Service; mod adjusts the
// minimal config (POST /login, cookie "sid") before New normalizes it.
func newTestGateway(tb testing.TB, mod func(*Config)) *Guard {
	tb.Helper()
	cfg := minimalConfig()
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg, newTestRuntime(tb), nil)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return g
}

// multipartBody encodes fields as multipart/form-data.
func multipartBody(t testing.TB, fields ...string) (body, contentType string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), w.FormDataContentType()
}

const formType = "application/x-www-form-urlencoded"

func TestMatchSignIn(t *testing.T) {
	mpLogin, mpType := multipartBody(t, "username", "alice", "do", "login")
	mpSearch, mpSearchType := multipartBody(t, "username", "alice", "do", "search")
	doLogin := func(c *Config) { c.SignInField = &Field{Name: "do", Value: "login"} }
	doPresent := func(c *Config) { c.SignInField = &Field{Name: "remember"} }

	tests := []struct {
		name        string
		cfg         func(*Config)
		method      string
		target      string
		contentType string
		body        string
		match       bool
		user        string // form or JSON "username" seen by the gateway, if matched
		err         error  // refused: errUnreadable or errAmbiguousField
	}{
		{name: "other path", method: "POST", target: "/search", contentType: formType, body: "username=alice", match: false},
		{name: "GET /login", method: "GET", target: "/login", match: false},
		{name: "form sign-in", method: "POST", target: "/login", contentType: formType, body: "username=alice&password=x", match: true, user: "alice"},
		{name: "form with charset", method: "POST", target: "/login", contentType: formType + "; charset=UTF-8", body: "username=alice", match: true, user: "alice"},
		{name: "form content type in capitals", method: "POST", target: "/login", contentType: "Application/X-WWW-Form-URLencoded", body: "username=alice", match: true, user: "alice"},
		{name: "no body", method: "POST", target: "/login", match: true},
		// A body the gateway cannot parse may still be read by a laxer app.
		{name: "invalid form", method: "POST", target: "/login", contentType: formType, body: "username=%zz&a=b", err: errUnreadable},
		{name: "form with a semicolon", method: "POST", target: "/login", contentType: formType, body: "username=bob;username=alice", err: errUnreadable},

		{name: "field do=login", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "username=alice&do=login", match: true, user: "alice"},
		{name: "field do=search", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "username=alice&do=search", match: false},
		{name: "field missing", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "username=alice", match: false},
		{name: "field empty value", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "do=", match: false},
		{name: "field in query", cfg: doLogin, method: "POST", target: "/login?do=login", contentType: formType, body: "username=alice", match: true, user: "alice"},
		{name: "field in query, no body", cfg: doLogin, method: "POST", target: "/login?do=login", match: true},
		{name: "field wrong in query", cfg: doLogin, method: "POST", target: "/login?do=search", contentType: formType, body: "username=alice", match: false},
		// Copies that disagree: the app may read the one the gateway did not.
		{name: "query and body disagree", cfg: doLogin, method: "POST", target: "/login?do=login", contentType: formType, body: "do=search", err: errAmbiguousField},
		{name: "two form values disagree", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "do=search&do=login", err: errAmbiguousField},
		{name: "name in another case disagrees", cfg: doLogin, method: "POST", target: "/login", contentType: formType, body: "do=login&DO=search", err: errAmbiguousField},
		{name: "copies that agree", cfg: doLogin, method: "POST", target: "/login?do=login", contentType: formType, body: "do=login&username=alice", match: true, user: "alice"},
		{name: "field presence", cfg: doPresent, method: "POST", target: "/login", contentType: formType, body: "remember=", match: true},
		{name: "field presence missing", cfg: doPresent, method: "POST", target: "/login", contentType: formType, body: "rememberme=1", match: false},
		{name: "field in a body of the wrong type", cfg: doLogin, method: "POST", target: "/login", contentType: "text/plain", body: "do=login", match: false},

		{name: "JSON sign-in", method: "POST", target: "/login", contentType: "application/json", body: `{"username":"alice","password":"x"}`, match: true, user: "alice"},
		{name: "JSON field", cfg: doLogin, method: "POST", target: "/login", contentType: "application/json; charset=utf-8", body: `{"do":"login","username":"bob"}`, match: true, user: "bob"},
		{name: "JSON field wrong", cfg: doLogin, method: "POST", target: "/login", contentType: "application/json", body: `{"do":"search"}`, match: false},
		{name: "JSON field not a scalar", cfg: doLogin, method: "POST", target: "/login", contentType: "application/json", body: `{"do":["login"]}`, match: false},
		{name: "JSON number field", cfg: func(c *Config) { c.SignInField = &Field{Name: "step", Value: "1"} }, method: "POST", target: "/login", contentType: "application/json", body: `{"step":1}`, match: true},
		{name: "JSON bool field", cfg: func(c *Config) { c.SignInField = &Field{Name: "login", Value: "true"} }, method: "POST", target: "/login", contentType: "application/json", body: `{"login":true}`, match: true},
		{name: "JSON array body", cfg: doLogin, method: "POST", target: "/login", contentType: "application/json", body: `[{"do":"login"}]`, err: errUnreadable},
		{name: "broken JSON", cfg: doLogin, method: "POST", target: "/login", contentType: "application/json", body: `{"do":"login"`, err: errUnreadable},
		{name: "JSON field in query and body disagree", cfg: doLogin, method: "POST", target: "/login?do=search", contentType: "application/json", body: `{"do":"login"}`, err: errAmbiguousField},

		{name: "multipart field", cfg: doLogin, method: "POST", target: "/login", contentType: mpType, body: mpLogin, match: true, user: "alice"},
		{name: "multipart field wrong", cfg: doLogin, method: "POST", target: "/login", contentType: mpSearchType, body: mpSearch, match: false},
		{name: "multipart with another boundary", cfg: doLogin, method: "POST", target: "/login", contentType: mpType, body: mpSearch, err: errUnreadable},
		{name: "multipart without boundary", cfg: doLogin, method: "POST", target: "/login", contentType: "multipart/form-data", body: mpLogin, err: errUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGateway(t, func(c *Config) {
				c.Identity = []IdentitySource{{Kind: FromForm, Name: "username"}, {Kind: FromJSON, Name: "username"}}
				if tt.cfg != nil {
					tt.cfg(c)
				}
			})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest(tt.method, tt.target, body)
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			s, err := g.matchSignIn(r)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || s != nil {
					t.Fatalf("matchSignIn = %v, %v; want %v", s, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("matchSignIn: %v", err)
			}
			if (s != nil) != tt.match {
				t.Fatalf("matched = %v, want %v", s != nil, tt.match)
			}
			if s != nil {
				user, ok := s.field(FromForm, "username")
				if !ok {
					user, _ = s.field(FromJSON, "username")
				}
				if user != tt.user {
					t.Errorf("username = %q, want %q", user, tt.user)
				}
			}
			checkBodyRestored(t, r, tt.body)
		})
	}
}

// checkBodyRestored reads the body as the app would and compares it.
func checkBodyRestored(t testing.TB, r *http.Request, want string) {
	t.Helper()
	if r.Body == nil {
		if want != "" {
			t.Fatalf("body is nil, want %d bytes", len(want))
		}
		return
	}
	got, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("reading the restored body: %v", err)
	}
	if string(got) != want {
		t.Fatalf("restored body = %q, want %q", got, want)
	}
	if r.ContentLength != int64(len(want)) && !(want == "" && r.ContentLength <= 0) {
		t.Fatalf("ContentLength = %d, want %d", r.ContentLength, len(want))
	}
}

func TestMatchSignInBodyLimit(t *testing.T) {
	const limit = 64
	g := newTestGateway(t, func(c *Config) { c.MaxBodyBytes = limit })
	for _, n := range []int{0, 1, limit - 1, limit} {
		body := "username=" + strings.Repeat("a", max(0, n-len("username=")))
		body = body[:min(len(body), n)]
		r := httptest.NewRequest("POST", "/login", strings.NewReader(body))
		r.Header.Set("Content-Type", formType)
		if _, err := g.matchSignIn(r); err != nil {
			t.Errorf("%d-byte body: %v", n, err)
		}
		checkBodyRestored(t, r, body)
	}
	for _, n := range []int{limit + 1, 10 * limit} {
		r := httptest.NewRequest("POST", "/login", strings.NewReader("username="+strings.Repeat("a", n)))
		r.Header.Set("Content-Type", formType)
		s, err := g.matchSignIn(r)
		if !errors.Is(err, errBodyTooLarge) {
			t.Errorf("%d-byte body: err = %v, want errBodyTooLarge", n, err)
		}
		if s != nil {
			t.Errorf("%d-byte body matched", n)
		}
	}
	// An unknown length (chunked) is bounded the same way.
	r := httptest.NewRequest("POST", "/login", io.MultiReader(strings.NewReader(strings.Repeat("a", limit)), strings.NewReader("b")))
	r.ContentLength = -1
	if _, err := g.matchSignIn(r); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("chunked body over the limit: err = %v, want errBodyTooLarge", err)
	}
}

// The body is read only when a field condition or a form/JSON identity
// source needs it; otherwise the app's stream is left alone.
func TestMatchSignInLeavesBodyAlone(t *testing.T) {
	g := newTestGateway(t, func(c *Config) { c.Identity = []IdentitySource{{Kind: FromHeader, Name: "X-User"}} })
	body := io.NopCloser(strings.NewReader("username=alice"))
	r := httptest.NewRequest("POST", "/login", nil)
	r.Body = body
	r.Header.Set("Content-Type", formType)
	s, err := g.matchSignIn(r)
	if err != nil || s == nil {
		t.Fatalf("matchSignIn = %v, %v", s, err)
	}
	if r.Body != body {
		t.Error("body replaced although nothing needed it")
	}
	if s.form != nil || s.json != nil {
		t.Error("fields read although nothing needed them")
	}
}

func TestMatchSignInMatcherError(t *testing.T) {
	boom := errors.New("boom")
	g := newTestGateway(t, func(c *Config) {
		c.SignIn = matcherFunc(func(*http.Request) (bool, error) { return false, boom })
	})
	r := httptest.NewRequest("POST", "/login", strings.NewReader("username=a"))
	if s, err := g.matchSignIn(r); !errors.Is(err, boom) || s != nil {
		t.Errorf("matchSignIn = %v, %v; want nil, boom", s, err)
	}
}

// errReader fails after its data.
type errReader struct{ data []byte }

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestMatchSignInReadError(t *testing.T) {
	g := newTestGateway(t, nil)
	r := httptest.NewRequest("POST", "/login", nil)
	r.Body = io.NopCloser(&errReader{data: []byte("username=a")})
	r.Header.Set("Content-Type", formType)
	if _, err := g.matchSignIn(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want the read error", err)
	}
}

func FuzzSignInBody(f *testing.F) {
	const limit = 4096
	mp, mpType := multipartBody(f, "username", "alice", "do", "login")
	seeds := []struct{ body, ct, query string }{
		{"username=alice&do=login", formType, ""},
		{"username=alice", formType + "; charset=utf-8", "do=login"},
		{`{"username":"alice","do":"login"}`, "application/json", ""},
		{`{"do":1,"username":null}`, "application/json", ""},
		{mp, mpType, ""},
		{mp, "multipart/form-data; boundary=x", ""},
		{"--x\r\nContent-Disposition: form-data; name=\"do\"\r\n\r\nlogin\r\n--x--\r\n", "multipart/form-data; boundary=x", ""},
		{"--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n" + strings.Repeat("z", 3000) + "\r\n--x--\r\n", "multipart/form-data; boundary=x", ""},
		{"\x00\xff%", "text/plain", "do"},
		{"", "", ""},
		{strings.Repeat("a", limit+1), formType, ""},
		{"a=b", ";;;=", "%zz"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.ct, s.query)
	}
	g := newTestGateway(f, func(c *Config) {
		c.MaxBodyBytes = limit
		c.SignInField = &Field{Name: "do", Value: "login"}
		c.Identity = []IdentitySource{{Kind: FromForm, Name: "username"}, {Kind: FromJSON, Name: "username"}}
	})
	f.Fuzz(func(t *testing.T, body []byte, contentType, query string) {
		newReq := func(body []byte) *http.Request {
			r := httptest.NewRequest("POST", "/login", bytes.NewReader(body))
			r.URL.RawQuery = query // any bytes: not every query is a valid request target
			r.Header.Set("Content-Type", contentType)
			return r
		}
		r := newReq(body)
		s, err := g.matchSignIn(r)
		if len(body) > limit {
			if !errors.Is(err, errBodyTooLarge) || s != nil {
				t.Fatalf("%d-byte body: %v, %v; want errBodyTooLarge", len(body), s, err)
			}
			return
		}
		if errors.Is(err, errUnreadable) || errors.Is(err, errAmbiguousField) {
			return // refused with 400: nothing reaches the app
		}
		if err != nil {
			t.Fatalf("matchSignIn: %v", err)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("reading the restored body: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("body not restored: got %q, want %q", got, body)
		}
		if r.ContentLength != int64(len(body)) && len(body) > 0 {
			t.Fatalf("ContentLength = %d, want %d", r.ContentLength, len(body))
		}

		// The restored body gives the same answer a second time.
		s2, err := g.matchSignIn(newReq(got))
		if err != nil || (s == nil) != (s2 == nil) {
			t.Fatalf("second read differs: %v/%v vs %v/%v", s, nil, s2, err)
		}
	})
}
