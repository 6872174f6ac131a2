package integration_test

// BenchmarkProxy measures a signed-in user's pass-through through real Caddy
// (mfa_gateway + reverse_proxy to the demo app on loopback) beside bare
// reverse_proxy to the same upstream, served by the same Caddy in the same
// run, so the two sub-benchmarks can be read against each other:
//
//	go test -run='^$' -bench=Proxy -benchmem -count=5 ./integration_test/
//
// Each op is one GET /api/data on a kept-alive loopback connection; ns/op
// and allocs/op include the client's and the demo app's share, which is the
// same for both, so gateway minus bare is the gateway's cost end to end
// (request parsing, the guard, reverse_proxy's copies of the request and the
// response, GC), not only its handler's.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/mfagate/mfagate/demoapp"
)

func BenchmarkProxy(b *testing.B) {
	p := startProxyPair(b)
	b.Run("bare", func(b *testing.B) { p.run(b, p.bare, p.bareCookie) })
	b.Run("gateway", func(b *testing.B) {
		// A fresh sign-in, so the gateway cookie is never old enough to be
		// re-stamped on every request (this client ignores Set-Cookie).
		p.gwCookie = proxySignIn(b, p.gw, true)
		p.run(b, p.gw, p.gwCookie)
	})
}

type proxyPair struct {
	bare, gw             string // host:port
	bareCookie, gwCookie string
}

// startProxyPair runs one Caddy with two sites on loopback: bare
// reverse_proxy and mfa_gateway + reverse_proxy, both to one demo app.
func startProxyPair(b *testing.B) *proxyPair {
	b.Helper()
	app := httptest.NewServer(demoapp.New(demoapp.DefaultOptions()))
	b.Cleanup(app.Close)
	upstream := strings.TrimPrefix(app.URL, "http://")
	dir := b.TempDir()
	p := &proxyPair{bare: proxyFreeAddr(b), gw: proxyFreeAddr(b)}
	cf := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}
}
http://%s {
	reverse_proxy %s
}
http://%s {
	mfa_gateway {
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api/me user
		db_path %s
		encryption_key %s
	}
	reverse_proxy %s
}
`, filepath.Join(dir, "caddy-storage"), p.bare, upstream, p.gw, filepath.Join(dir, "mfagate.db"), testKey, upstream)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		b.Fatalf("adapt: %v", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	for _, a := range []string{p.bare, p.gw} {
		if err := dialWithin(a, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	p.bareCookie = proxySignIn(b, p.bare, false)
	return p
}

func proxyFreeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proxySignIn signs alice in through addr and returns the Cookie header that
// carries her session: the app cookie, and the gateway cookie if gateway.
func proxySignIn(b *testing.B, addr string, gateway bool) string {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	base := "http://" + addr
	res, err := c.PostForm(base+"/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	u, _ := url.Parse(base)
	var parts []string
	for _, ck := range jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	cookie := strings.Join(parts, "; ")
	if gateway != strings.Contains(cookie, "mfa_session=") || !strings.Contains(cookie, "demo_session=") {
		b.Fatalf("sign-in through %s gave cookies %q", addr, cookie)
	}
	return cookie
}

// run sends b.N GETs of /api/data with cookie over one kept-alive connection.
// The client is a fixed request and http.ReadResponse: cheap, so that Caddy's
// share of each op is as large as it can be.
func (p *proxyPair) run(b *testing.B, addr, cookie string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET /api/data HTTP/1.1\r\nHost: " + addr + "\r\nCookie: " + cookie + "\r\n\r\n")
	br := bufio.NewReader(conn)
	get := func() *http.Response {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	// The answer must be alice's data, the same through both sites.
	res := get()
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("alice")) {
		b.Fatalf("GET /api/data through %s: %d %q", addr, res.StatusCode, body)
	}
	b.ReportAllocs()
	for b.Loop() {
		res := get()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET /api/data through %s: %d", addr, res.StatusCode)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}
