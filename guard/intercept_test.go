package guard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readFromRecorder counts ReadFrom calls, as a writer with a fast path
// (Caddy's, over a TCP connection: sendfile) would take them.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFroms int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFroms++
	return io.Copy(r.ResponseRecorder, src)
}

// The response writer keeps io.Copy's fast path for a response that streams
// through, and reads a captured body whole through its limit.
func TestInterceptWriterReadFrom(t *testing.T) {
	g := newTestGateway(t, nil)
	body := strings.Repeat("x", 100_000)
	copyBody := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "anon"})
		}
		_, err := io.Copy(w, struct{ io.Reader }{strings.NewReader(body)}) // no WriteTo: io.Copy tries ReadFrom
		return err
	})
	for _, tc := range []struct {
		name, method, path string
		fast               bool
	}{
		{"streams through", http.MethodGet, "/file", true},
		{"captured (a sign-in without a user)", http.MethodPost, "/login", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			err := g.ServeHTTP(w, r, copyBody)
			if tc.fast {
				if err != nil || w.readFroms != 1 || w.Body.String() != body {
					t.Fatalf("err %v, ReadFrom calls %d, body %d bytes intact %v", err, w.readFroms, w.Body.Len(), w.Body.String() == body)
				}
				return
			}
			if w.readFroms != 0 {
				t.Fatalf("a captured body went straight to the client (%d ReadFrom calls)", w.readFroms)
			}
		})
	}
}
