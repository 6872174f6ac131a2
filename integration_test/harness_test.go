// Package integration_test drives the real Caddy server, with the
// mfa_gateway module, in front of the demo app on loopback, over real HTTP,
// with a real bbolt file.
package integration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/pquerna/otp/totp"

	_ "github.com/mfagate/mfagate/caddymodule"
	"github.com/mfagate/mfagate/demoapp"
)

// env is one running stack: demo app, Caddy with mfa_gateway, a bbolt file.
type env struct {
	Admin    string // admin endpoint address; "" = admin off
	t        *testing.T
	App      *demoapp.App
	AppURL   string
	Base     string // http://127.0.0.1:port of the gateway
	DBPath   string
	port     int
	gateway  string // the mfa_gateway block's body
	upstream string
	extra    string // more directives for the site block
	global   string // more global options, such as an mfa block naming the store (then no db_path is added)
	site     string // if set, the whole site block body: {gateway} and {upstream} are filled in
}

// defaultGateway is the smallest useful block plus a fixed key and db path.
const defaultGateway = `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api/me user
		issuer "Demo Dashboard"
`

// start runs the demo app with opts and Caddy with the gateway block body.
// The db path and key are added unless the block sets them.
func start(t *testing.T, opts demoapp.Options, block string) *env {
	t.Helper()
	return startGlobal(t, opts, "", block)
}

// startGlobal is start with more global options (global), such as
// `mfa { store postgres {...} }`.
func startGlobal(t *testing.T, opts demoapp.Options, global, block string) *env {
	t.Helper()
	app := demoapp.New(opts)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	e := &env{
		t: t, App: app, AppURL: srv.URL, port: freePort(t),
		DBPath:   filepath.Join(t.TempDir(), "mfagate.db"),
		upstream: strings.TrimPrefix(srv.URL, "http://"),
		global:   global,
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

// load (re)loads Caddy with block as the mfa_gateway body.
func (e *env) load(block string) {
	e.t.Helper()
	if err := e.tryLoad(block); err != nil {
		e.t.Fatal(err)
	}
}

// tryLoad is load without t.Fatal, so it can run in a goroutine (a reload
// watched for deadlocks).
func (e *env) tryLoad(block string) error {
	e.gateway = block
	cf := e.caddyfile(block)
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warns, err := adapter.Adapt([]byte(cf), nil)
	if err != nil {
		return fmt.Errorf("adapt Caddyfile: %v\n%s", err, cf)
	}
	for _, w := range warns {
		e.t.Logf("caddyfile warning: %v", w)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("load config: %v", err)
	}
	return e.waitUp()
}

// caddyfile is the whole Caddyfile for e with block as the mfa_gateway body.
func (e *env) caddyfile(block string) string {
	if !strings.Contains(block, "db_path") && !strings.Contains(e.global, "store") {
		block += "\n\t\tdb_path " + e.DBPath
	}
	if !strings.Contains(block, "encryption_key") {
		block += "\n\t\tencryption_key " + testKey
	}
	body := fmt.Sprintf("\tmfa_gateway {\n%s\n\t}\n\treverse_proxy %s\n%s", block, e.upstream, e.extra)
	if e.site != "" {
		body = strings.NewReplacer("{gateway}", "mfa_gateway {\n"+block+"\n}", "{upstream}", e.upstream).Replace(e.site)
	}
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}%s
}
http://127.0.0.1:%d {
%s
}
`, adminDirective(e.Admin), filepath.Join(filepath.Dir(e.DBPath), "caddy-storage"), globalOptions(e.global), e.port, body)
}

// waitUp waits until the gateway at e.Base answers.
func (e *env) waitUp() error {
	// The old server closes its idle keep-alive connections as it stops; a
	// client must not pick one of them for its next request. A request on a
	// connection of its own must get an answer before the test goes on.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if err := dialWithin(fmt.Sprintf("127.0.0.1:%d", e.port), 5*time.Second); err != nil {
		return err
	}
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := 0; ; i++ {
		res, err := probe.Get(e.Base + e.prefix() + "api/v1/status")
		if err == nil {
			res.Body.Close()
			break
		}
		if i == 20 {
			return fmt.Errorf("no answer after the reload: %w", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return nil
}

// globalOptions puts more global options on lines of their own after the
// harness's, keeping the Caddyfile formatted.
func globalOptions(more string) string {
	if more == "" {
		return ""
	}
	return "\n" + more
}

// testKey is a fixed 32-byte key (base64) so restarts can read the store.
const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func dialWithin(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening on %s", addr)
}

// client is one browser: a cookie jar, redirects not followed so each hop
// can be checked.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
	jar  *cookiejar.Jar
}

func (e *env) newClient() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, e: e, jar: jar, http: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	Body string
}

func (r resp) Location() string { return r.Header.Get("Location") }

// JSON decodes the body into a map.
func (r resp) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("body is not JSON (%d): %q", r.StatusCode, r.Body)
	}
	return m
}

func (c *client) do(req *http.Request) resp {
	c.t.Helper()
	res, err := c.http.Do(req)
	if err != nil && req.Method == http.MethodGet && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		// A keep-alive connection the old server closed during a reload:
		// browsers retry an idempotent request once on a fresh connection,
		// and so does this client.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		res, err = c.http.Do(req)
	}
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

func (c *client) req(method, path string, body io.Reader, header map[string]string) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.e.Base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.do(req)
}

func (c *client) get(path string) resp { c.t.Helper(); return c.req("GET", path, nil, nil) }

func (c *client) postForm(path string, v url.Values) resp {
	c.t.Helper()
	return c.req("POST", path, strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func (c *client) postJSON(path string, v any) resp {
	c.t.Helper()
	b, _ := json.Marshal(v)
	return c.req("POST", path, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
}

// api calls the gateway's JSON API.
func (c *client) api(path string, v any) resp {
	c.t.Helper()
	if v == nil {
		return c.req("GET", "/_mfa/api/v1/"+path, nil, nil)
	}
	return c.postJSON("/_mfa/api/v1/"+path, v)
}

// cookie returns the jar's value for name at the gateway, "" if none.
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.e.Base)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// signIn posts the demo app's login form (visiting it first, as a person would).
func (c *client) signIn(user, pass string) resp {
	c.t.Helper()
	c.get("/login")
	return c.postForm("/login", url.Values{"username": {user}, "password": {pass}})
}

// code is what an authenticator app shows for secret at now+offset steps.
func code(t *testing.T, secret string, offset int) string {
	t.Helper()
	s, err := totp.GenerateCode(strings.ReplaceAll(secret, " ", ""), time.Now().Add(time.Duration(offset)*30*time.Second))
	if err != nil {
		t.Fatalf("generate code: %v", err)
	}
	return s
}

// enrol turns 2FA on for the signed-in user through the API and returns the
// secret and recovery codes. The confirmation consumes the current step.
func (c *client) enrol() (string, []string) {
	c.t.Helper()
	r := c.api("totp/enroll", map[string]any{})
	if r.StatusCode != 200 {
		c.t.Fatalf("enroll: %d %s", r.StatusCode, r.Body)
	}
	secret := r.JSON(c.t)["secret"].(string)
	r = c.api("totp/confirm", map[string]string{"code": code(c.t, secret, 0)})
	if r.StatusCode != 200 {
		c.t.Fatalf("confirm: %d %s", r.StatusCode, r.Body)
	}
	var codes []string
	for _, v := range r.JSON(c.t)["recovery_codes"].([]any) {
		codes = append(codes, v.(string))
	}
	if r := c.api("recovery-codes/acknowledge", map[string]any{}); r.StatusCode != 200 {
		c.t.Fatalf("acknowledge: %d %s", r.StatusCode, r.Body)
	}
	return secret, codes
}

// dashboardUser returns who the app says is signed in on "/", or "".
func (c *client) dashboardUser() string {
	c.t.Helper()
	r := c.get("/")
	if r.StatusCode != 200 {
		return ""
	}
	_, after, ok := strings.Cut(r.Body, `<strong id="user">`)
	if !ok {
		return ""
	}
	user, _, _ := strings.Cut(after, "<")
	return user
}

func adminDirective(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

// prefix is the gateway's page prefix under the site's routes: "/_mfa/",
// or under /app/ for a handle_path site.
func (e *env) prefix() string {
	if strings.Contains(e.site, "handle_path /app/*") {
		return "/app/_mfa/"
	}
	return "/_mfa/"
}
