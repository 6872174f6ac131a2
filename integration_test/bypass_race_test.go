package integration_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSlowRequestDuringSignIn: on an app that signs its pre-sign-in session
// in place, a request of the same browser holds its body open while alice's
// password goes to the sign-in, and finishes it afterwards. The app reads
// the session only after the body, so it would answer that request as
// alice. With strip_param, the gateway itself reads the body before
// forwarding, so the request reaches the app after the sign-in.
func TestSlowRequestDuringSignIn(t *testing.T) {
	for _, tc := range []struct{ name, extra string }{
		{"the body at the app", ""},
		{"the body read by the gateway (strip_param)", "\n\t\tstrip_param auth_user auth_pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := optsWith(manyUsers())
			opts.Rotate = false
			e := start(t, opts, defaultGateway+tc.extra)
			_, _, _ = e.enrolled("alice")
			c := e.newClient()
			c.get("/login")
			cookie := c.cookieHeader()
			if !strings.Contains(cookie, "demo_session=") || !strings.Contains(cookie, "mfa_session=") {
				t.Fatalf("no pre-sign-in session: %q", cookie)
			}

			u, _ := url.Parse(e.Base)
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			const boundary = "b0undary"
			body := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--" + boundary + "--\r\n"
			head := fmt.Sprintf("GET /api/data HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
				u.Host, cookie, boundary, len(body))
			if _, err := io.WriteString(conn, head+body[:10]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the request is at the app (or the gateway), waiting for its body

			// A request with a body may sign in itself, so it is decided
			// alone: the sign-in waits for it, or is refused (409) while it
			// is still at the app. Either is safe; what matters is its answer.
			r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
			if !strings.Contains(r.Location(), "/_mfa/challenge") && r.StatusCode != 409 {
				t.Fatalf("alice's sign-in: %d %q, want the challenge or 409", r.StatusCode, r.Location())
			}
			_, _ = io.WriteString(conn, body[10:]) // may fail: the gateway may have cut the request
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			out, _ := io.ReadAll(conn)
			answer := string(out)
			if strings.Contains(answer, `"user":"alice"`) || strings.Contains(answer, `<strong id="user">alice<`) {
				t.Fatalf("the held request was answered as alice with her password alone:\n%s", answer)
			}
			if strings.HasPrefix(answer, "HTTP/1.1 200") {
				// Only an answer for nobody may pass.
				t.Logf("answered for nobody: %.200s", answer)
			}
			notAlice(t, "then /api/data with the pre-sign-in cookies", e.raw("GET", "/api/data", cookie, nil, nil))
		})
	}
}

// TestLongRequestDuringSignIn: a plain read of the same browser is still at
// the app (a slow page, a long poll) when alice's password goes to the
// sign-in. The sign-in waits for it for a while, then goes ahead; the app,
// which reads its session late, would answer the read as alice. The gateway
// withholds that answer: the app signed the cookies in after it had them.
func TestLongRequestDuringSignIn(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, defaultGateway)
	_, _, _ = e.enrolled("alice")
	// The app, with one slow page: it waits for release, then answers as
	// /api/data does, reading its session only then.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			r.URL.Path = "/api/data"
		}
		e.App.ServeHTTP(w, r)
	}))
	defer slow.Close()
	e.upstream = strings.TrimPrefix(slow.URL, "http://")
	e.load(defaultGateway)

	c := e.newClient()
	c.get("/login")
	cookie := c.cookieHeader()
	answered := make(chan resp, 1)
	go func() { answered <- e.raw("GET", "/slow", cookie, nil, nil) }()
	time.Sleep(200 * time.Millisecond) // the read is at the app

	r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if !strings.Contains(r.Location(), "/_mfa/challenge") {
		t.Fatalf("alice's sign-in: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	close(release)
	got := <-answered
	notAlice(t, "the read that was at the app during the sign-in", got)
	if got.StatusCode != 409 || !strings.Contains(got.Body, "A sign-in started in this browser") {
		t.Fatalf("the read's answer: %d %.300s, want 409 and the reason", got.StatusCode, got.Body)
	}
	// Reads after the sign-in go without the held cookies.
	notAlice(t, "a later read", e.raw("GET", "/api/data", cookie, nil, nil))
}

// TestInformationalResponsesCarryNoCookies: an app that sends its session
// cookie in a 103 Early Hints ahead of the final answer. Informational
// answers pass through as they come, before any decision, so the gateway
// sends them without the app's cookies.
func TestInformationalResponsesCarryNoCookies(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	early := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.Header().Set("Set-Cookie", "demo_session=early-value; Path=/")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Set-Cookie")
			w.Header().Del("Link")
			_, _ = io.WriteString(w, "ok")
			return
		}
		e.App.ServeHTTP(w, r)
	}))
	defer early.Close()
	e.upstream = strings.TrimPrefix(early.URL, "http://")
	e.load(defaultGateway)

	var hints []http.Header
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, http.Header(h).Clone())
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", e.Base+"/early", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(hints) == 0 {
		t.Fatal("no 103 reached the client: the test shows nothing")
	}
	for _, h := range hints {
		if h.Get("Link") == "" {
			t.Errorf("the hint lost its Link: %v", h)
		}
		if sc := h.Values("Set-Cookie"); len(sc) > 0 {
			t.Fatalf("the app's cookie went out in a 103: %q", sc)
		}
	}
	if sc := res.Header.Values("Set-Cookie"); strings.Contains(strings.Join(sc, ","), "early-value") {
		t.Fatalf("the 103's cookie reached the final answer: %q", sc)
	}
}

// TestUpgradedConnectionsEnd: a connection the app takes over with an
// upgrade (a WebSocket) carries its app cookies for as long as it stays
// open, past any check of the gateway's. The app here reads its session on
// every message. One opened before a sign-in that the app signs in place
// must not go on as alice once her password is in (it is closed when the
// sign-in goes ahead), and a signed-in user's is closed when the session
// ends.
func TestUpgradedConnectionsEnd(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, defaultGateway)
	_, _, _ = e.enrolled("alice")
	lines := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/lines" || r.Header.Get("Upgrade") != "lines" {
			e.App.ServeHTTP(w, r)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: lines\r\n\r\n")
		_ = brw.Flush()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		for range 20 {
			if _, err := brw.ReadString('\n'); err != nil {
				return
			}
			me := httptest.NewRecorder()
			q := httptest.NewRequest("GET", "/api/me", nil)
			q.Header.Set("Cookie", r.Header.Get("Cookie"))
			e.App.ServeHTTP(me, q) // the session as it is now
			_, _ = brw.WriteString(strings.TrimSpace(me.Body.String()) + "\n")
			_ = brw.Flush()
		}
	}))
	defer lines.Close()
	e.upstream = strings.TrimPrefix(lines.URL, "http://")
	e.load(defaultGateway)

	open := func(t *testing.T, cookie string) (net.Conn, *bufio.Reader) {
		t.Helper()
		u, _ := url.Parse(e.Base)
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		fmt.Fprintf(conn, "GET /lines HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: Upgrade\r\nUpgrade: lines\r\n\r\n", u.Host, cookie)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		return conn, br
	}
	ask := func(conn net.Conn, br *bufio.Reader) (string, error) {
		if _, err := io.WriteString(conn, "who\n"); err != nil {
			return "", err
		}
		return br.ReadString('\n')
	}

	t.Run("opened before a sign-in", func(t *testing.T) {
		c := e.newClient()
		c.get("/login")
		conn, br := open(t, c.cookieHeader())
		if got, err := ask(conn, br); err != nil || strings.Contains(got, "alice") {
			t.Fatalf("before the sign-in: %q %v", got, err)
		}
		began := time.Now()
		r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
		if !strings.Contains(r.Location(), "/_mfa/challenge") {
			t.Fatalf("alice's sign-in: %d %q, want the challenge", r.StatusCode, r.Location())
		}
		if took := time.Since(began); took > 1500*time.Millisecond {
			t.Errorf("the sign-in waited %v for the upgraded connection", took)
		}
		got, err := ask(conn, br)
		if strings.Contains(got, "alice") {
			t.Fatalf("the connection opened before the sign-in now answers as alice: %q", got)
		}
		if err == nil {
			t.Fatalf("the connection is still open after the sign-in: %q", got)
		}
	})
	t.Run("of a session that ends", func(t *testing.T) {
		c := e.newClient()
		c.signIn("bob", "bob-password")
		conn, br := open(t, c.cookieHeader())
		if got, err := ask(conn, br); err != nil || !strings.Contains(got, "bob") {
			t.Fatalf("bob's connection: %q %v", got, err)
		}
		c.get("/logout")
		if got, err := ask(conn, br); err == nil {
			t.Fatalf("bob's connection is still open after he signed out: %q", got)
		}
	})
}
