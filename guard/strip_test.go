package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

var stripNames = []string{"auth_user", "auth_pass"}

func stripGuard(tb testing.TB) *Guard {
	return newTestGateway(tb, func(c *Config) { c.StripParams = stripNames; c.MaxBodyBytes = 4096 })
}

// TestStripCredentials: the named parameters leave the query and every body
// encoding an app parses; what cannot be parsed is refused; the rest of the
// request is left as sent.
func TestStripCredentials(t *testing.T) {
	g := stripGuard(t)
	mp, mpType := multipartBody(t, "note", "hi", "auth_user", "alice", "AUTH_PASS", "pw")
	tests := []struct {
		name, target, ctype, body string
		wantQuery, wantBody       string // "" with keep: unchanged
		keep                      bool   // the body must be byte for byte as sent
		unreadable                bool
	}{
		{name: "query", target: "/x?a=1&auth_pass=pw", wantQuery: "a=1"},
		{name: "query, other case", target: "/x?AUTH_USER=alice&b=2", wantQuery: "b=2"},
		{name: "query, malformed escape", target: "/x?x=%zz&auth_pass=pw", unreadable: true},
		{name: "query, semicolon", target: "/x?a=1;auth_pass=pw", unreadable: true},
		{name: "query without credentials kept", target: "/x?b=2&a=1", wantQuery: "b=2&a=1"},

		{name: "form", target: "/x", ctype: formType, body: "auth_user=alice&auth_pass=pw&note=hi", wantBody: "note=hi"},
		{name: "form, malformed pair", target: "/x", ctype: formType, body: "x=%zz&auth_user=alice&auth_pass=pw", unreadable: true},
		{name: "form, semicolon", target: "/x", ctype: formType, body: "a;auth_pass=pw", unreadable: true},
		{name: "form without credentials kept as sent", target: "/x", ctype: formType, body: "b=2&a=1", keep: true},

		{name: "multipart", target: "/x", ctype: mpType, body: mp},
		{name: "multipart without boundary", target: "/x", ctype: "multipart/form-data", body: mp, unreadable: true},
		{name: "multipart, broken", target: "/x", ctype: mpType, body: mp[:len(mp)/2], unreadable: true},

		{name: "JSON", target: "/x", ctype: "application/json", body: `{"auth_user":"alice","note":"hi","auth_pass":"pw"}`, wantBody: `{"note":"hi"}`},
		{name: "JSON, other case and escapes", target: "/x", ctype: "application/json", body: `{"AUTH_USER":"alice","auth\u005fpass":"pw","n":1}`, wantBody: `{"n":1}`},
		{name: "JSON as text/plain", target: "/x", ctype: "text/plain", body: ` {"auth_pass":"pw"}`, wantBody: `{}`},
		{name: "JSON without content type", target: "/x", body: `{"auth_pass":"pw","a":[1,2]}`, wantBody: `{"a":[1,2]}`},
		{name: "JSON, nested credentials are not searched", target: "/x", ctype: "application/json", body: `{"login":{"auth_pass":"pw"}}`, keep: true},
		{name: "JSON, invalid", target: "/x", ctype: "application/json", body: `{"auth_pass":"pw",}`, unreadable: true},
		{name: "JSON, trailing value", target: "/x", ctype: "application/vnd.api+json", body: `{"a":1} {"auth_pass":"pw"}`, unreadable: true},
		{name: "not JSON as text/plain kept", target: "/x", ctype: "text/plain", body: `{hello auth_pass`, keep: true},
		{name: "upload kept", target: "/x", ctype: "application/octet-stream", body: "auth_pass=pw", keep: true},
		{name: "bad Content-Type", target: "/x", ctype: "/;;", body: "auth_pass=pw", unreadable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest("POST", tt.target, body)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			err := g.stripCredentials(r)
			if tt.unreadable {
				if !errors.Is(err, errUnreadable) {
					t.Fatalf("err = %v, want errUnreadable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantQuery != "" && r.URL.RawQuery != tt.wantQuery {
				t.Errorf("query = %q, want %q", r.URL.RawQuery, tt.wantQuery)
			}
			if r.RequestURI != r.URL.RequestURI() {
				t.Errorf("RequestURI %q does not follow the URL %q", r.RequestURI, r.URL.RequestURI())
			}
			got, _ := io.ReadAll(r.Body)
			switch {
			case tt.keep && string(got) != tt.body:
				t.Errorf("body = %q, want it as sent %q", got, tt.body)
			case tt.wantBody != "" && string(got) != tt.wantBody:
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if r.ContentLength != int64(len(got)) {
				t.Errorf("ContentLength %d, body %d bytes", r.ContentLength, len(got))
			}
			if leaked := appReads(t, r.Header.Get("Content-Type"), r.URL.RawQuery, got); leaked != "" {
				t.Errorf("an app still reads %s", leaked)
			}
		})
	}
}

// appReads returns a strip name that a Go app parsing the request (query,
// form, multipart, top-level JSON) would still find, or "".
func appReads(t testing.TB, ctype, query string, body []byte) string {
	t.Helper()
	found := func(k string) bool { return nameIn(k, stripNames) }
	q, _ := url.ParseQuery(query)
	for k := range q {
		if found(k) {
			return "query " + k
		}
	}
	mt, params, _ := mime.ParseMediaType(ctype)
	switch {
	case mt == formType:
		f, _ := url.ParseQuery(string(body))
		for k := range f {
			if found(k) {
				return "form " + k
			}
		}
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if found(p.FormName()) {
				return "multipart " + p.FormName()
			}
		}
	default:
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			for k := range m {
				if found(k) {
					return "JSON " + k
				}
			}
		}
	}
	return ""
}

// TestStripMultipartStreams: an upload over the body limit (or of unknown
// length) is rewritten as it streams, keeping its other parts byte for
// byte, and a broken one is cut off rather than passed whole.
func TestStripMultipartStreams(t *testing.T) {
	g := stripGuard(t)
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile("upload", "big.bin")
	big := bytes.Repeat([]byte("0123456789"), 2000) // over the 4 KiB limit
	fw.Write(big)
	w.WriteField("auth_pass", "pw")
	w.WriteField("note", "hi")
	w.Close()

	r := httptest.NewRequest("POST", "/upload", io.MultiReader(bytes.NewReader(b.Bytes()))) // unknown length
	r.ContentLength = -1
	r.Header.Set("Content-Type", w.FormDataContentType())
	if err := g.stripCredentials(r); err != nil {
		t.Fatal(err)
	}
	if r.ContentLength != -1 || r.Header.Get("Content-Length") != "" {
		t.Errorf("a streamed body has length %d / %q", r.ContentLength, r.Header.Get("Content-Length"))
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.MultipartForm.Value["auth_pass"]; ok || r.MultipartForm.Value["note"][0] != "hi" {
		t.Errorf("fields = %v", r.MultipartForm.Value)
	}
	f, _ := r.MultipartForm.File["upload"][0].Open()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, big) {
		t.Errorf("the upload changed: %d bytes, want %d", len(got), len(big))
	}

	broken := b.Bytes()[:b.Len()-200]
	r = httptest.NewRequest("POST", "/upload", io.MultiReader(bytes.NewReader(broken)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", w.FormDataContentType())
	if err := g.stripCredentials(r); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r.Body); err == nil {
		t.Error("a broken upload streamed through whole, with no error")
	}
}

// TestServeHTTPRefusesUnreadableCredentials: through ServeHTTP, a request
// the gateway cannot vet is a 400 and never reaches the app.
func TestServeHTTPRefusesUnreadableCredentials(t *testing.T) {
	g := stripGuard(t)
	reached := false
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { reached = true; return nil })
	r := httptest.NewRequest("POST", "/api/data", strings.NewReader("x=%zz&auth_user=alice&auth_pass=pw"))
	r.Header.Set("Content-Type", formType)
	w := httptest.NewRecorder()
	if err := g.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusBadRequest || reached {
		t.Fatalf("status %d, reached the app %v; want 400 and not reached", w.Code, reached)
	}
}

// FuzzStripCredentials: any body in any of the vetted encodings is either
// refused or leaves no credential an app parser reads; never a panic.
func FuzzStripCredentials(f *testing.F) {
	mp, mpType := multipartBody(f, "auth_user", "alice", "note", "hi")
	for _, s := range [][2]string{
		{formType, "auth_user=alice&auth_pass=pw"}, {formType, "x=%zz&auth_pass=pw"}, {formType, "a;auth_pass=1"},
		{mpType, mp}, {"application/json", `{"auth_pass":"pw"}`}, {"text/plain", `{"AUTH_USER":1}`},
		{"application/json", `{"a":{"b":1},"auth_pass":[1]}`}, {"", "auth_pass=pw"},
	} {
		f.Add(s[0], s[1], "a=1&auth_pass=2")
	}
	g := stripGuard(f)
	f.Fuzz(func(t *testing.T, ctype, body, query string) {
		r, err := http.NewRequest("POST", "http://x/p", strings.NewReader(body))
		if err != nil {
			return
		}
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ctype)
		if err := g.stripCredentials(r); err != nil {
			return
		}
		got, err := io.ReadAll(r.Body)
		if err != nil {
			return // a streamed body cut off: the app never gets it whole
		}
		if leaked := appReads(t, ctype, r.URL.RawQuery, got); leaked != "" {
			t.Fatalf("Content-Type %q, body %q, query %q: an app still reads %s (body now %q)", ctype, body, query, leaked, got)
		}
	})
}
