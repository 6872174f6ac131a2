package guard

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/faultstore"
	"github.com/mfagate/mfagate/web"
)

// A sign-in whose session the store cannot take is an internal failure:
// returned (for Caddy's handle_errors), with nothing of the app's answer
// written, least of all its session cookie.
func TestSignInStoreFailureIsReturnedNotWritten(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := faultstore.New(db)
	svc, err := mfa.Open(mfa.Options{Store: store, Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	g, err := New(minimalConfig(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "app-session"})
		w.Header().Set("Location", "/dashboard")
		w.WriteHeader(http.StatusFound)
		return nil
	})
	for _, fail := range []bool{true, false} {
		store.Set(0)
		if fail {
			store.Set(faultstore.FailWrites)
		}
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=pw"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		err := g.ServeHTTP(w, r, app)
		var fault *web.Error
		if !fail {
			if err != nil || w.Code != http.StatusFound || !strings.Contains(strings.Join(w.Header()["Set-Cookie"], "\n"), "sid=app-session") {
				t.Fatalf("with a working store: err %v, status %d, cookies %q", err, w.Code, w.Header()["Set-Cookie"])
			}
			continue
		}
		if !errors.As(err, &fault) || fault.Status != http.StatusServiceUnavailable {
			t.Fatalf("store failure: err %v, want a 503 *web.Error", err)
		}
		if w.Body.Len() != 0 || len(w.Header()["Set-Cookie"]) != 0 || w.Header().Get("Location") != "" {
			t.Fatalf("store failure wrote the app's answer: body %q, headers %v", w.Body, w.Header())
		}
	}
}

// TestBadCookieLinesSampled: a flood of requests with a bogus gateway cookie
// writes a bounded number of log lines, not one per request.
func TestBadCookieLinesSampled(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := minimalConfig()
	g, err := New(cfg, newTestRuntime(t), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	for range 500 {
		r := httptest.NewRequest("GET", "/page", nil)
		r.Header.Set("Cookie", "mfa_session=AQEAAAAAbogus.bogus")
		if err := g.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
	}
	n := logs.FilterMessage("session ended").Len()
	if n == 0 || n > 2*logPerSecond {
		t.Fatalf("%d 'session ended' lines for 500 bad cookies, want 1 to %d", n, 2*logPerSecond)
	}
}
