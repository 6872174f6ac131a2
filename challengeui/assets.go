package challengeui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// asset is one embedded static file, read once in New.
type asset struct {
	data    []byte
	ctype   string
	etag    string
	version string // short content hash used as ?v= in page URLs
}

func loadAssets() (map[string]asset, error) {
	entries, err := fs.ReadDir(files, "assets")
	if err != nil {
		return nil, fmt.Errorf("challengeui: assets: %w", err)
	}
	m := make(map[string]asset, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := files.ReadFile("assets/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("challengeui: asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		v := hex.EncodeToString(sum[:6])
		m[e.Name()] = asset{data: b, ctype: contentType(e.Name()), etag: `"` + v + `"`, version: v}
	}
	return m, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// AssetPath returns the URL path of an embedded asset: Prefix + "assets/" + name.
// Pages add a ?v=<content hash> query to it so long-lived caches refresh on upgrade.
func (r *Renderer) AssetPath(name string) string { return r.prefix + "assets/" + name }

// Assets serves the embedded static files. The caller strips the gateway
// prefix, so the request path is "assets/<name>" (a leading "/" is tolerated).
// Only names of embedded files are served, looked up in a map, so there is no
// directory listing and no way to reach other files ("assets/../render.go").
func (r *Renderer) Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, ok := strings.CutPrefix(strings.TrimPrefix(req.URL.Path, "/"), "assets/")
		a, found := r.assets[name]
		if !ok || !found || name == "" || strings.Contains(name, "/") {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		// Opened directly (an SVG in a tab), an asset may run nothing.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		// ServeContent answers If-None-Match and Range; the zero time skips Last-Modified.
		http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(a.data))
	})
}
