package guard

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/faultstore"
	"github.com/mfagate/mfagate/web"
)

// A sign-in whose session the store cannot take answers 503 with the
// gateway's own words (a page for a form, JSON for a script) and nothing of
// the app's answer, least of all its session cookie.
func TestSignInStoreFailureAnswers503(t *testing.T) {
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
	for _, tc := range []struct {
		script bool // sent by a script (X-Requested-With)
		want   string
	}{
		{false, "<!doctype html>"},
		{true, `{"error":"unavailable",`},
	} {
		for _, fail := range []bool{true, false} {
			store.Set(0)
			if fail {
				store.Set(faultstore.FailWrites)
			}
			r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=pw"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.script {
				r.Header.Set("X-Requested-With", "fetch")
			}
			w := httptest.NewRecorder()
			if err := g.ServeHTTP(w, r, app); err != nil {
				t.Fatalf("script %v: error returned: %v", tc.script, err)
			}
			if !fail {
				if w.Code != http.StatusFound || !strings.Contains(strings.Join(w.Header()["Set-Cookie"], "\n"), "sid=app-session") {
					t.Fatalf("script %v with a working store: status %d, cookies %q", tc.script, w.Code, w.Header()["Set-Cookie"])
				}
				continue
			}
			body := w.Body.String()
			if w.Code != http.StatusServiceUnavailable || !strings.HasPrefix(body, tc.want) || !strings.Contains(body, web.ErrUnavailable.Message) {
				t.Fatalf("script %v, store failing: %d %q", tc.script, w.Code, body)
			}
			if len(w.Header()["Set-Cookie"]) != 0 || w.Header().Get("Location") != "" {
				t.Fatalf("script %v, store failing: the app's answer leaked: headers %v", tc.script, w.Header())
			}
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

// TestStoreOutageFailsClosedAfterTheLimit: while the store does not answer,
// signed-in traffic goes on from memory up to the outage limit, then fails
// closed (503) until the store answers again.
func TestStoreOutageFailsClosedAfterTheLimit(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := faultstore.New(db)
	svc, err := mfa.Open(mfa.Options{Store: store, Key: bytes.Repeat([]byte{7}, 32), FlushInterval: 20 * time.Millisecond, OutageLimit: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	g, err := New(minimalConfig(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "app-session"})
		}
		return nil
	})
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=pw"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	if err := g.ServeHTTP(w, r, app); err != nil {
		t.Fatal(err)
	}
	var cookie []string
	for _, c := range w.Result().Cookies() {
		cookie = append(cookie, c.Name+"="+c.Value)
	}
	page := func() int {
		r := httptest.NewRequest(http.MethodGet, "/page", nil)
		r.Header.Set("Cookie", strings.Join(cookie, "; "))
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, r, app); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if st := page(); st != http.StatusOK {
		t.Fatalf("signed in: %d", st)
	}
	store.Set(faultstore.FailReads)
	if st := page(); st != http.StatusOK { // well within the limit
		t.Fatalf("early in the outage: %d, want the request to go on from memory", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for page() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("past the outage limit, signed-in traffic still goes on")
		}
		time.Sleep(20 * time.Millisecond)
	}
	store.Set(0)
	for page() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the store answers again, but signed-in traffic is still refused")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
