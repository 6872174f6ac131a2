package integration_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mfagate/mfagate/demoapp"
)

// oauthApp is an app whose only sign-in is an OAuth-style GET callback:
// /oauth/callback?code=<user> sets its session cookie and redirects.
type oauthApp struct {
	mu       sync.Mutex
	sessions map[string]string
}

func (a *oauthApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := ""
	if c, err := r.Cookie("oauth_sid"); err == nil {
		a.mu.Lock()
		user = a.sessions[c.Value]
		a.mu.Unlock()
	}
	switch r.URL.Path {
	case "/oauth/callback":
		b := make([]byte, 16)
		rand.Read(b)
		sid := hex.EncodeToString(b)
		a.mu.Lock()
		a.sessions[sid] = r.URL.Query().Get("code")
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "oauth_sid", Value: sid, Path: "/", HttpOnly: true})
		http.Redirect(w, r, "/home?tab=1", http.StatusFound)
	case "/me":
		if user == "" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"login": user})
	default:
		if user == "" {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s", user)
	}
}

// startUpstream runs Caddy with the gateway in front of any handler.
func startUpstream(t *testing.T, h http.Handler, block string) *env {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := start(t, demoapp.DefaultOptions(), block)
	e.upstream = strings.TrimPrefix(srv.URL, "http://")
	e.AppURL = srv.URL
	e.load(block)
	return e
}

func TestOAuthCallbackSignIn(t *testing.T) {
	e := startUpstream(t, &oauthApp{sessions: map[string]string{}}, `
		sign_in GET /oauth/callback
		session_cookie oauth_sid
		user_from whoami /me login
`)
	c := e.newClient()
	// First sign-in: not enrolled, so the callback goes straight through.
	r := c.get("/oauth/callback?code=carol")
	if r.StatusCode != 302 || r.Location() != "/home?tab=1" || c.cookie("oauth_sid") == "" {
		t.Fatalf("first callback: %d %q", r.StatusCode, r.Location())
	}
	if r := c.get("/home"); r.Body != "hello carol" {
		t.Fatalf("home after callback: %d %q", r.StatusCode, r.Body)
	}
	secret, _ := c.enrol()

	// A fresh browser signs in through the callback: the app's cookie is
	// held and the challenge keeps the app's destination as next.
	c2 := e.newClient()
	r = c2.get("/oauth/callback?code=carol")
	if r.StatusCode != 303 || r.Location() != "/_mfa/challenge?next=%2Fhome%3Ftab%3D1" {
		t.Fatalf("callback of enrolled user: %d %q", r.StatusCode, r.Location())
	}
	if c2.cookie("oauth_sid") != "" {
		t.Fatal("app cookie released before the challenge")
	}
	if r := c2.get("/home"); r.StatusCode != 303 {
		t.Fatalf("app reachable before the challenge: %d %q", r.StatusCode, r.Body)
	}
	r = c2.api("challenge", map[string]string{"code": code(t, secret, 1)})
	if r.StatusCode != 200 || r.JSON(t)["next"] != "/home?tab=1" {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	if r := c2.get("/home"); r.Body != "hello carol" {
		t.Fatalf("home after challenge: %d %q", r.StatusCode, r.Body)
	}
}
