package challengeui

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAssets(t *testing.T) {
	r := newTestRenderer(t, Options{})
	h := r.Assets()
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantType   string
	}{
		{"css", "GET", "assets/mfa.css", 200, "text/css; charset=utf-8"},
		{"js", "GET", "assets/mfa.js", 200, "text/javascript; charset=utf-8"},
		{"svg", "GET", "assets/icon.svg", 200, "image/svg+xml"},
		{"leading slash", "GET", "/assets/mfa.css", 200, "text/css; charset=utf-8"},
		{"head", "HEAD", "assets/mfa.css", 200, "text/css; charset=utf-8"},
		{"post", "POST", "assets/mfa.css", 405, ""},
		{"unknown", "GET", "assets/nope.css", 404, ""},
		{"traversal", "GET", "assets/../render.go", 404, ""},
		{"traversal templates", "GET", "assets/../templates/layout.html", 404, ""},
		{"dir", "GET", "assets/", 404, ""},
		{"dir no slash", "GET", "assets", 404, ""},
		{"outside assets", "GET", "render.go", 404, ""},
		{"template", "GET", "templates/layout.html", 404, ""},
		{"nested", "GET", "assets/x/mfa.css", 404, ""},
		{"dot", "GET", "assets/.", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/", nil)
			req.URL.Path = tc.path
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantStatus != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
			}
			if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
				t.Errorf("Cache-Control = %q", cc)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff")
			}
			if tc.method == "GET" && rec.Body.Len() == 0 {
				t.Errorf("empty body")
			}
		})
	}

	t.Run("behind StripPrefix, conditional", func(t *testing.T) {
		srv := http.StripPrefix("/auth/", h)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", r.AssetPath("mfa.css"), nil))
		if rec.Code != 200 || !bytes.Contains(rec.Body.Bytes(), []byte("--accent")) {
			t.Fatalf("status %d", rec.Code)
		}
		etag := rec.Header().Get("ETag")
		req := httptest.NewRequest("GET", "/auth/assets/mfa.css", nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Errorf("conditional GET status = %d, want 304", rec.Code)
		}
	})
}

func TestAssetPath(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	if got := r.AssetPath("mfa.css"); got != "/_mfa/assets/mfa.css" {
		t.Errorf("AssetPath = %q", got)
	}
}
