package integration_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mfagate/mfagate/demoapp"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// startWith runs Caddy with the gateway block in front of any upstream
// handler (for upstreams other than the demo app, e.g. a header echo).
func startWith(t *testing.T, h http.Handler, block string) *env {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{
		t: t, AppURL: srv.URL, port: freePort(t),
		DBPath:   filepath.Join(t.TempDir(), "mfagate.db"),
		upstream: strings.TrimPrefix(srv.URL, "http://"),
	}
	e.Base = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	e.load(block)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Logf("caddy stop: %v", err)
		}
	})
	return e
}

// manyUsers is the demo's users plus a few more, so a test can give each
// flow a user whose TOTP steps are still fresh.
func manyUsers() map[string]string {
	u := demoapp.DefaultUsers()
	for _, n := range []string{"carol", "dave", "erin", "frank", "grace", "heidi"} {
		u[n] = n + "-password"
	}
	return u
}

func optsWith(users map[string]string) demoapp.Options {
	o := demoapp.DefaultOptions()
	o.Users = users
	return o
}

// raw sends one request with an explicit Cookie header and no jar: what an
// attacker replaying copied cookie values would send.
func (e *env) raw(method, path, cookie string, header map[string]string, body io.Reader) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.Base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.rawReq(req)
}

// rawReq sends req as is: no jar, redirects not followed.
func (e *env) rawReq(req *http.Request) resp {
	e.t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	res, err := hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

// basic is an Authorization: Basic header value.
func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// setCookie returns the raw Set-Cookie line for name, "" if none.
func (r resp) setCookie(name string) string {
	for _, line := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, name+"=") {
			return line
		}
	}
	return ""
}

// clears reports whether the response expires cookie name.
func (r resp) clears(name string) bool {
	line := r.setCookie(name)
	if line == "" {
		return false
	}
	c, err := http.ParseSetCookie(line)
	if err != nil {
		return false
	}
	return c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) || c.Value == ""
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrfOf returns the hidden csrf input of a gateway page.
func csrfOf(t *testing.T, page resp) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page.Body)
	if m == nil || m[1] == "" {
		t.Fatalf("no csrf input on the page (%d): %.400s", page.StatusCode, page.Body)
	}
	return m[1]
}

// apiErr checks a JSON error answer: status, the documented shape and code.
func apiErr(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", r.StatusCode, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON: %s", ct, r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("error body is not JSON: %q", r.Body)
	}
	e, _ := m["error"].(string)
	msg, _ := m["message"].(string)
	if e == "" || msg == "" {
		t.Fatalf("error body lacks error/message strings: %s", r.Body)
	}
	if code != "" && e != code {
		t.Fatalf("error %q, want %q (%s)", e, code, r.Body)
	}
}

// wrongCode is a well-formed code that is none of the codes valid now.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	valid := map[string]bool{}
	for off := -2; off <= 2; off++ {
		valid[code(t, secret, off)] = true
	}
	for i := 0; i < 1000000; i += 7919 {
		c := fmt.Sprintf("%06d", i)
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// enrolled signs user in (no factor yet), turns TOTP on, and returns the
// secret, the recovery codes and that client (now at AAL2). The
// confirmation consumes the current TOTP step, so the user's next fresh
// code is code(secret, 1).
func (e *env) enrolled(user string) (string, []string, *client) {
	e.t.Helper()
	c := e.newClient()
	if r := c.signIn(user, user+"-password"); r.StatusCode != 303 || strings.HasPrefix(r.Location(), "/_mfa/") {
		e.t.Fatalf("sign-in of unenrolled %s: %d %q", user, r.StatusCode, r.Location())
	}
	secret, codes := c.enrol()
	return secret, codes, c
}

// pending signs user in and checks the gateway asks for the second factor.
func (e *env) pending(user string) *client {
	e.t.Helper()
	c := e.newClient()
	r := c.signIn(user, user+"-password")
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		e.t.Fatalf("sign-in of enrolled %s: %d %q, want the challenge", user, r.StatusCode, r.Location())
	}
	return c
}

// status returns GET status for the client, failing unless 200.
func (c *client) status() map[string]any {
	c.t.Helper()
	r := c.api("status", nil)
	if r.StatusCode != 200 {
		c.t.Fatalf("status: %d %s", r.StatusCode, r.Body)
	}
	return r.JSON(c.t)
}

// cookieHeader renders the jar's cookies for the gateway as a Cookie header.
func (c *client) cookieHeader() string {
	u, _ := url.Parse(c.e.Base)
	var parts []string
	for _, ck := range c.jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// stop stops Caddy (closing the shared database) within a deadline.
func stopCaddy(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- caddy.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("caddy stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("caddy.Stop did not return within 20s (deadlock?)")
	}
}

// editSessions rewrites every stored session of user while Caddy is stopped.
func editSessions(t *testing.T, dbPath, user string, fn func(*storage.Session)) int {
	t.Helper()
	st, err := bolt.Open(dbPath, bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	n := 0
	err = st.Update(context.Background(), func(tx storage.Tx) error {
		var recs []storage.Session
		if err := tx.ForEachSession(func(s storage.Session) error {
			if s.User == user {
				recs = append(recs, s)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, s := range recs {
			fn(&s)
			if err := tx.PutSession(s); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("edit sessions: %v", err)
	}
	return n
}
