package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	long := "/" + strings.Repeat("a", 2047) // 2048 bytes: the limit
	tests := []struct {
		name string
		in   string
		want string
	}{
		// Same-origin absolute paths survive unchanged.
		{"root", "/", "/"},
		{"path", "/wiki/Main_Page", "/wiki/Main_Page"},
		{"path with query", "/search?q=a+b&page=2", "/search?q=a+b&page=2"},
		{"path with fragment", "/doc#section-2", "/doc#section-2"},
		{"query only on root", "/?next=//evil.com", "/?next=//evil.com"},
		{"trailing slash", "/admin/", "/admin/"},
		{"percent-encoded space", "/a%20b", "/a%20b"},
		{"non-ASCII", "/caf\u00e9", "/caf\u00e9"},
		{"double slash later in the path", "/a//b", "/a//b"},
		{"encoded slashes later in the path", "/a/%2F%2Fevil.com", "/a/%2F%2Fevil.com"},
		{"at the limit", long, long},
		// Percent-encoded CR LF stays encoded: it is never decoded into the
		// Location header (net/http and browsers send it as is), so it cannot
		// split the response.
		{"encoded CRLF", "/%0d%0aSet-Cookie:x=y", "/%0d%0aSet-Cookie:x=y"},
		// "/.//evil.com" resolves, per RFC 3986 §5.2.4, to the same origin with
		// the path "//evil.com": no browser leaves the site for it, and
		// http.Redirect cleans it to "/evil.com". Kept as a same-origin path.
		{"dot segment then double slash", "/.//evil.com", "/.//evil.com"},
		// Double encoding decodes once to "/%2F%2F…": a browser does not
		// decode %2F in a path, so this is a same-origin path.
		{"double-encoded slashes", "/%252F%252Fevil.com", "/%252F%252Fevil.com"},

		// Everything else becomes "/".
		{"empty", "", "/"},
		{"protocol-relative", "//evil.com", "/"},
		{"protocol-relative with path", "//evil.com/x", "/"},
		{"triple slash", "///evil.com", "/"},
		{"slash backslash", "/\\evil.com", "/"},
		{"backslash later", "/a\\b", "/"},
		{"backslash start", "\\\\evil.com", "/"},
		{"https URL", "https://evil", "/"},
		{"http URL", "http://evil.com/", "/"},
		{"scheme-relative without slash", "evil.com", "/"},
		{"relative path", "wiki/Main_Page", "/"},
		{"javascript", "javascript:alert(1)", "/"},
		{"data URL", "data:text/html,<script>alert(1)</script>", "/"},
		{"raw CRLF", "/\r\nSet-Cookie: x=y", "/"},
		{"raw LF", "/a\nb", "/"},
		{"tab (browsers strip it: /\t/ would become //)", "/\t/evil.com", "/"},
		{"NUL", "/a\x00b", "/"},
		{"DEL", "/a\x7fb", "/"},
		{"too long", long + "a", "/"},
		{"very long", "/" + strings.Repeat("x", 1<<16), "/"},
		{"encoded double slash", "/%2F%2Fevil.com", "/"},
		{"encoded double slash lower-case", "/%2f%2fevil.com", "/"},
		{"encoded second slash", "/%2Fevil.com", "/"},
		{"encoded backslash", "/%5Cevil.com", "/"},
		{"encoded backslash lower-case", "/%5cevil.com", "/"},
		{"bad escape", "/%zz", "/"},
		{"userinfo", "//user@evil.com", "/"},
		{"space before scheme", " https://evil.com", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SafeNext(tt.in); got != tt.want {
				t.Errorf("SafeNext(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSafeNextRedirect checks what a browser receives when a kept value goes
// through http.Redirect, as the pages do.
func TestSafeNextRedirect(t *testing.T) {
	for _, in := range []string{"/.//evil.com", "/%2F%2Fevil.com", "/a/../\\evil.com", "/%0d%0aSet-Cookie:x=y"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/_mfa/challenge", nil)
		http.Redirect(w, r, SafeNext(in), http.StatusSeeOther)
		loc := w.Header().Get("Location")
		checkSameOrigin(t, in, loc)
		if len(w.Header()["Set-Cookie"]) != 0 {
			t.Errorf("SafeNext(%q) redirect set a cookie", in)
		}
	}
}

// checkSameOrigin asserts that out, resolved by a browser on
// https://app.example/x/y, stays on app.example.
func checkSameOrigin(t *testing.T, in, out string) {
	t.Helper()
	if out != "/" && (!strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\")) {
		t.Fatalf("SafeNext(%q) = %q: not a same-origin absolute path", in, out)
	}
	for i := 0; i < len(out); i++ {
		if c := out[i]; c < 0x20 || c == 0x7f || c == '\\' {
			t.Fatalf("SafeNext(%q) = %q: contains %q", in, out, c)
		}
	}
	u, err := url.Parse(out)
	if err != nil {
		t.Fatalf("SafeNext(%q) = %q: does not parse: %v", in, out, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		t.Fatalf("SafeNext(%q) = %q: parses with scheme %q host %q", in, out, u.Scheme, u.Host)
	}
	base, _ := url.Parse("https://app.example/x/y")
	if res := base.ResolveReference(u); res.Scheme != "https" || res.Host != "app.example" {
		t.Fatalf("SafeNext(%q) = %q resolves to %s", in, out, res)
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"", "/", "/a?b=c#d", "//evil.com", "/\\evil.com", "https://evil", "javascript:alert(1)",
		"/%0d%0aSet-Cookie", "/%2F%2Fevil.com", "/%5Cevil", "/.//evil.com", "/\t/evil", "\\/evil",
		"/%252F%252F", "/a/../..//evil.com", "/?//evil", "/@evil.com", "/:80", "/%", "/caf\u00e9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SafeNext(in)
		if out != "/" && out != in {
			t.Fatalf("SafeNext(%q) = %q: neither the input nor \"/\"", in, out)
		}
		checkSameOrigin(t, in, out)
		if again := SafeNext(out); again != out {
			t.Fatalf("SafeNext not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
