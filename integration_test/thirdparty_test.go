package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// This file puts the gateway in front of a real third-party app: MediaWiki
// as Debian packages it (`apt-get install mediawiki php-cli php-sqlite3
// php-mbstring php-xml php-intl`), installed into a temporary directory with
// an SQLite database and served by PHP's built-in server on loopback. The
// test drives it like a browser: it reads the wiki's own forms and posts
// them back with their hidden fields and tokens.

// mwRoot is where Debian's mediawiki package puts the wiki.
const mwRoot = "/usr/share/mediawiki"

// mwAdminPass and mwAlicePass are the wiki passwords (MediaWiki wants ≥ 10
// characters that are not common).
const (
	mwAdminPass = "Wiki-Admin-Pass-4821"
	mwAlicePass = "Alice-Wiki-Pass-7390"
)

// mwGateway is the gateway block for MediaWiki's sign-in shape:
//   - the login form posts to /index.php/Special:UserLogin (path-info title,
//     as the wiki renders it) or /index.php?title=Special:UserLogin, and
//     always carries the hidden field title=Special:UserLogin;
//   - the sign-out form posts to /index.php/Special:UserLogout with a token,
//     and the wiki's JavaScript signs out with api.php action=logout; both
//     delete wikidb_session and wikidbUserID but keep wikidbUserName, so
//     the gateway must see the sign-out (sign_out, then whoami names nobody);
//   - the session is wikidb_session, plus wikidbUserID, wikidbUserName and
//     (with "Keep me logged in") wikidbToken; wikidbUserID with wikidbToken
//     restores a session without wikidb_session;
//   - api.php's userinfo names the user, and marks anonymous visitors with
//     "anon" (naming them by address).
const mwGateway = `
		sign_in {
			method POST
			path /index.php /index.php/*
		}
		sign_in_field title Special:UserLogin
		sign_out {
			method POST
			path /index.php/Special:UserLogout
		}
		sign_out {
			method POST
			path /index.php
			query title=Special:UserLogout
		}
		sign_out {
			method POST
			path /api.php
		}
		session_cookie wikidb_session wikidbUserID wikidbUserName wikidbToken
		user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name nobody_if query.userinfo.anon
		issuer "Test Wiki"
`

// needMediaWiki returns the php binary, skipping the test when MediaWiki or
// PHP (with the extensions the wiki needs) is missing, except on CI, where
// that is a failure.
func needMediaWiki(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must have MediaWiki for the third-party test (apt-get install mediawiki php-cli php-sqlite3 php-mbstring php-xml php-intl): %s", msg)
		}
		t.Skipf("MediaWiki test skipped (apt-get install mediawiki php-cli php-sqlite3 php-mbstring php-xml php-intl): %s", msg)
	}
	php, err := exec.LookPath("php")
	if err != nil {
		missing("no php on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mwRoot, "maintenance", "install.php")); err != nil {
		missing("no MediaWiki at %s: %v", mwRoot, err)
	}
	out, err := exec.Command(php, "-r", `foreach (["pdo_sqlite","mbstring","xml","intl"] as $e) { if (!extension_loaded($e)) { echo "$e "; } }`).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		missing("php extensions missing: %q %v", out, err)
	}
	return php
}

// startMediaWiki installs a fresh wiki (SQLite, in a temporary directory)
// whose public address is server, creates the user Alice, starts PHP's
// built-in server on a free loopback port and returns its host:port. The
// server is killed when the test ends.
func startMediaWiki(t *testing.T, php, server string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "LocalSettings.php")
	run := func(what string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, php, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MW_CONFIG_FILE="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	begin := time.Now()
	run("install.php", filepath.Join(mwRoot, "maintenance", "install.php"),
		"--dbtype=sqlite", "--dbpath="+filepath.Join(dir, "db"), "--dbname=wikidb",
		"--server="+server, "--scriptpath=", "--confpath="+dir, "--lang=en",
		"--pass="+mwAdminPass, "--skins=Vector", "--quiet",
		"TestWiki", "WikiAdmin")
	// No login throttle: the test signs Alice in several times in a row.
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "\n$wgPasswordAttemptThrottle = [];\n$wgShowExceptionDetails = true;\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run("createAndPromote.php", filepath.Join(mwRoot, "maintenance", "createAndPromote.php"), "Alice", mwAlicePass)
	t.Logf("MediaWiki installed in %s (%v)", dir, time.Since(begin).Round(time.Millisecond))

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logPath := filepath.Join(dir, "php-server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, "-S", addr, "-t", mwRoot)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MW_CONFIG_FILE="+conf, "PHP_CLI_SERVER_WORKERS=4")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: the workers PHP forks die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php -S: %v", err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("php -S log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})
	if err := dialWithin(addr, 10*time.Second); err != nil {
		t.Fatalf("php -S: %v", err)
	}
	return addr
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// startInFront runs Caddy on port with the gateway block in front of the
// upstream host:port (an app the test did not build, such as php -S).
func startInFront(t *testing.T, port int, upstream, block string) *env {
	t.Helper()
	e := &env{
		t: t, AppURL: "http://" + upstream, port: port,
		DBPath:   filepath.Join(t.TempDir(), "mfagate.db"),
		upstream: upstream,
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

var (
	formRe  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	attrRe  = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

func htmlAttrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(tag, -1) {
		v := a[2]
		if v == "" {
			v = a[3]
		}
		m[strings.ToLower(a[1])] = html.UnescapeString(v)
	}
	return m
}

// wikiForm finds the first form on page whose action contains actionPart,
// and returns its action and its fields as a browser would submit them
// (hidden and text inputs; unchecked boxes are left out).
func wikiForm(t *testing.T, page resp, actionPart string) (string, url.Values) {
	t.Helper()
	for _, f := range formRe.FindAllStringSubmatch(page.Body, -1) {
		attrs := htmlAttrs("<form " + f[1] + ">")
		if !strings.Contains(attrs["action"], actionPart) {
			continue
		}
		v := url.Values{}
		for _, in := range inputRe.FindAllString(f[2], -1) {
			a := htmlAttrs(in)
			name := a["name"]
			if name == "" {
				continue
			}
			if typ := strings.ToLower(a["type"]); (typ == "checkbox" || typ == "radio") && !strings.Contains(strings.ToLower(in), "checked") {
				continue
			}
			v.Add(name, a["value"])
		}
		return attrs["action"], v
	}
	t.Fatalf("no form with action %q on the page (%d): %.600s", actionPart, page.StatusCode, page.Body)
	return "", nil
}

// pathOf turns a form action (absolute or a path) into a path at the gateway.
func pathOf(t *testing.T, action string) string {
	t.Helper()
	u, err := url.Parse(action)
	if err != nil {
		t.Fatalf("form action %q: %v", action, err)
	}
	if u.RawQuery != "" {
		return u.EscapedPath() + "?" + u.RawQuery
	}
	return u.EscapedPath()
}

// wikiLoginForm loads the wiki's login page through the gateway and returns
// the form's action path and fields, wpLoginToken included.
func wikiLoginForm(c *client) (string, url.Values) {
	c.t.Helper()
	page := c.get("/index.php?title=Special:UserLogin")
	if page.StatusCode != 200 {
		c.t.Fatalf("login page: %d %.300s", page.StatusCode, page.Body)
	}
	action, v := wikiForm(c.t, page, "UserLogin")
	if v.Get("wpLoginToken") == "" {
		c.t.Fatalf("login form has no wpLoginToken: %v", v)
	}
	return pathOf(c.t, action), v
}

// wikiSignIn signs in with the wiki's own form, as a browser does.
func wikiSignIn(c *client, user, pass string) resp {
	c.t.Helper()
	action, v := wikiLoginForm(c)
	v.Set("wpName", user)
	v.Set("wpPassword", pass)
	return c.postForm(action, v)
}

// wikiUser asks the wiki's API (through the gateway) who the client is:
// the user name, "" for an anonymous visitor or a refused request.
func wikiUser(c *client) string {
	c.t.Helper()
	return wikiUserOf(c.t, c.get("/api.php?action=query&meta=userinfo&format=json"))
}

func wikiUserOf(t *testing.T, r resp) string {
	t.Helper()
	if r.StatusCode >= 500 {
		t.Fatalf("api.php userinfo: %d %.300s", r.StatusCode, r.Body)
	}
	if r.StatusCode != 200 {
		return ""
	}
	var m struct {
		Query struct {
			Userinfo struct {
				Name string  `json:"name"`
				Anon *string `json:"anon"`
			} `json:"userinfo"`
		} `json:"query"`
	}
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		return ""
	}
	if m.Query.Userinfo.Anon != nil {
		return ""
	}
	return m.Query.Userinfo.Name
}

// notWikiAlice fails if a response of the wiki is Alice's signed-in view.
func notWikiAlice(t *testing.T, what string, r resp) {
	t.Helper()
	if r.StatusCode >= 500 {
		t.Fatalf("%s: %d %.300s", what, r.StatusCode, r.Body)
	}
	if wikiUserOf(t, r) == "Alice" || strings.Contains(r.Body, `"wgUserName":"Alice"`) {
		t.Fatalf("%s: the wiki answered as Alice: %d %.300s", what, r.StatusCode, r.Body)
	}
}

// pendingFor checks a sign-in landed on the gateway's challenge for Alice,
// and that the wiki still does not answer as her.
func pendingFor(t *testing.T, what string, c *client, r resp) {
	t.Helper()
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("%s: %d %q, want 303 to the challenge (%.300s)", what, r.StatusCode, r.Location(), r.Body)
	}
	st := c.status()
	if st["user"] != "Alice" || st["state"] != "pending" {
		t.Fatalf("%s: the gateway's session is %v/%v, want Alice pending (%v)", what, st["user"], st["state"], st)
	}
	notWikiAlice(t, what+", then api.php", c.get("/api.php?action=query&meta=userinfo&format=json"))
	notWikiAlice(t, what+", then Main_Page", c.get("/index.php/Main_Page"))
}

// TestMediaWikiBehindGateway drives Debian's MediaWiki through the gateway:
// first sign-in without 2FA, TOTP enrolment, the wiki's sign-out ending the
// gateway session, a sign-in that meets the challenge, and bypass attempts
// that fit the wiki's login shape.
func TestMediaWikiBehindGateway(t *testing.T) {
	php := needMediaWiki(t)
	port := freePort(t)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	upstream := startMediaWiki(t, php, front)
	e := startInFront(t, port, upstream, mwGateway)

	// 1. Alice has no second factor yet: her sign-in reaches the wiki.
	c := e.newClient()
	r := wikiSignIn(c, "Alice", mwAlicePass)
	if r.StatusCode/100 != 3 || strings.Contains(r.Location(), "/_mfa/") {
		t.Fatalf("first sign-in: %d %q, want the wiki's redirect (%.300s)", r.StatusCode, r.Location(), r.Body)
	}
	if r.setCookie("wikidb_session") == "" {
		t.Fatalf("first sign-in: the wiki's session cookie did not reach the browser: %v", r.Header.Values("Set-Cookie"))
	}
	if u := wikiUser(c); u != "Alice" {
		t.Fatalf("after the first sign-in the wiki names %q, want Alice", u)
	}
	if st := c.status(); st["user"] != "Alice" {
		t.Fatalf("gateway status after the first sign-in: %v", st)
	}

	// 2. She turns TOTP on through the gateway's API.
	secret, _ := c.enrol()
	if u := wikiUser(c); u != "Alice" {
		t.Fatalf("after enrolment the wiki names %q, want Alice", u)
	}

	// 3. She signs out with the wiki's own form (a POST with its token);
	// the gateway session ends with it.
	page := c.get("/index.php/Special:UserLogout")
	if page.StatusCode != 200 {
		t.Fatalf("sign-out page: %d %.300s", page.StatusCode, page.Body)
	}
	action, v := wikiForm(t, page, "UserLogout")
	if v.Get("wpEditToken") == "" || v.Get("wpEditToken") == `+\` {
		t.Fatalf("sign-out form has no user token: %v", v)
	}
	r = c.postForm(pathOf(t, action), v)
	if r.StatusCode >= 400 {
		t.Fatalf("sign-out: %d %.300s", r.StatusCode, r.Body)
	}
	if st := c.api("status", nil); st.StatusCode != 401 {
		t.Fatalf("after the wiki's sign-out the gateway session lives on: status %d %s", st.StatusCode, st.Body)
	}
	if u := wikiUser(c); u != "" {
		t.Fatalf("after sign-out the wiki names %q", u)
	}

	// 4. The right password now meets the challenge; the code opens the wiki.
	c = e.newClient()
	action, v = wikiLoginForm(c)
	preSignIn := c.cookieHeader() // the login form's anonymous wiki session
	if c.cookie("wikidb_session") == "" {
		t.Fatalf("the login page set no wikidb_session: %q", preSignIn)
	}
	v.Set("wpName", "Alice")
	v.Set("wpPassword", mwAlicePass)
	r = c.postForm(action, v)
	if r.setCookie("wikidb_session") != "" || r.setCookie("wikidbUserID") != "" {
		t.Fatalf("the held sign-in leaked the wiki's cookies: %v", r.Header.Values("Set-Cookie"))
	}
	pendingFor(t, "sign-in as Alice", c, r)
	if u := wikiUser(c); u != "" {
		t.Fatalf("pending: the wiki names %q", u)
	}
	page = c.get("/_mfa/challenge")
	if page.StatusCode != 200 || !strings.Contains(page.Body, `name="code"`) {
		t.Fatalf("challenge page: %d %.300s", page.StatusCode, page.Body)
	}
	r = c.postForm("/_mfa/challenge", url.Values{"code": {code(t, secret, 1)}, "csrf": {csrfOf(t, page)}})
	if r.StatusCode != 303 || strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("right code: %d %q, want 303 back to the wiki", r.StatusCode, r.Location())
	}
	if u := wikiUser(c); u != "Alice" {
		t.Fatalf("after the code the wiki names %q, want Alice", u)
	}
	if st := c.status(); st["user"] != "Alice" || fmt.Sprint(st["aal"]) != "2" {
		t.Fatalf("gateway status after the code: %v", st)
	}
	if main := c.get("/index.php/Main_Page"); main.StatusCode != 200 || !strings.Contains(main.Body, `"wgUserName":"Alice"`) {
		t.Fatalf("Main_Page after the code is not Alice's: %d", main.StatusCode)
	}

	// 5. Bypass attempts that fit this login shape.
	t.Run("pre-sign-in cookies alone", func(t *testing.T) {
		// The wiki cookies this browser had before the password step: alone,
		// and with another browser's gateway session.
		notWikiAlice(t, "pre-sign-in cookies alone", e.raw("GET", "/api.php?action=query&meta=userinfo&format=json", preSignIn, nil, nil))
		other := e.newClient()
		other.get("/index.php?title=Special:UserLogin")
		var gw string
		for _, part := range strings.Split(other.cookieHeader(), "; ") {
			if strings.HasPrefix(part, "mfa_session=") {
				gw = part
			}
		}
		if gw == "" {
			t.Fatalf("the login page gave no anonymous gateway session: %q", other.cookieHeader())
		}
		var wiki []string
		for _, part := range strings.Split(preSignIn, "; ") {
			if !strings.HasPrefix(part, "mfa_session=") {
				wiki = append(wiki, part)
			}
		}
		notWikiAlice(t, "pre-sign-in cookies with another gateway session",
			e.raw("GET", "/api.php?action=query&meta=userinfo&format=json", gw+"; "+strings.Join(wiki, "; "), nil, nil))
		// And Alice's signed-in wiki cookies, copied without her gateway
		// session, open nothing either.
		var signedIn []string
		for _, part := range strings.Split(c.cookieHeader(), "; ") {
			if !strings.HasPrefix(part, "mfa_session=") {
				signedIn = append(signedIn, part)
			}
		}
		notWikiAlice(t, "Alice's wiki cookies without her gateway session",
			e.raw("GET", "/api.php?action=query&meta=userinfo&format=json", strings.Join(signedIn, "; "), nil, nil))
	})

	t.Run("wrong password makes no challenge", func(t *testing.T) {
		w := e.newClient()
		r := wikiSignIn(w, "Alice", "not-her-password-1")
		if r.StatusCode != 200 || strings.HasPrefix(r.Location(), "/_mfa/") {
			t.Fatalf("wrong password: %d %q, want the wiki's form again", r.StatusCode, r.Location())
		}
		if !strings.Contains(r.Body, "wpLoginToken") {
			t.Fatalf("wrong password: the wiki's form is not in the answer: %.300s", r.Body)
		}
		if st := w.api("status", nil); st.StatusCode == 200 && strings.Contains(st.Body, `"pending"`) {
			t.Fatalf("a wrong password made a pending sign-in: %s", st.Body)
		}
		notWikiAlice(t, "after a wrong password", w.get("/api.php?action=query&meta=userinfo&format=json"))
	})

	t.Run("lower-case user name", func(t *testing.T) {
		// MediaWiki capitalises the first letter: "alice" is Alice.
		l := e.newClient()
		pendingFor(t, `sign-in as "alice"`, l, wikiSignIn(l, "alice", mwAlicePass))
	})

	t.Run("login form posted to another spelling of the page", func(t *testing.T) {
		// Special page names are case-insensitive, and the path-info
		// spelling needs no title field: neither matches sign_in_field.
		for _, target := range []string{"/index.php?title=Special:Userlogin", "/index.php/Special:USERLOGIN"} {
			l := e.newClient()
			_, v := wikiLoginForm(l)
			v.Del("title")
			v.Set("wpName", "Alice")
			v.Set("wpPassword", mwAlicePass)
			r := l.postForm(target, v)
			t.Logf("POST %s: %d %q", target, r.StatusCode, r.Location())
			if r.StatusCode/100 == 3 && strings.HasPrefix(r.Location(), "/_mfa/challenge") {
				pendingFor(t, "POST "+target, l, r)
				continue
			}
			// Refused outright is secure too; released to the wiki is not.
			notWikiAlice(t, "POST "+target, r)
			notWikiAlice(t, "POST "+target+", then api.php", l.get("/api.php?action=query&meta=userinfo&format=json"))
			if r.StatusCode != 403 {
				t.Errorf("POST %s: %d %q, want the challenge or a refusal", target, r.StatusCode, r.Location())
			}
		}
	})

	t.Run("api.php logout ends the gateway session", func(t *testing.T) {
		// What the wiki's JavaScript does for the "Log out" link: a csrf
		// token from the API, then POST action=logout. It runs last but one:
		// it ends the session of step 4.
		tr := c.get("/api.php?action=query&meta=tokens&type=csrf&format=json")
		var tok struct {
			Query struct {
				Tokens struct {
					CSRF string `json:"csrftoken"`
				} `json:"tokens"`
			} `json:"query"`
		}
		if err := json.Unmarshal([]byte(tr.Body), &tok); err != nil || tok.Query.Tokens.CSRF == "" || tok.Query.Tokens.CSRF == `+\` {
			t.Fatalf("csrf token: %d %.300s", tr.StatusCode, tr.Body)
		}
		r := c.postForm("/api.php", url.Values{"action": {"logout"}, "format": {"json"}, "token": {tok.Query.Tokens.CSRF}})
		if r.StatusCode != 200 || strings.Contains(r.Body, `"error"`) {
			t.Fatalf("api logout: %d %.300s", r.StatusCode, r.Body)
		}
		if st := c.api("status", nil); st.StatusCode != 401 {
			t.Fatalf("after api.php action=logout the gateway session lives on: status %d %s", st.StatusCode, st.Body)
		}
		if u := wikiUser(c); u != "" {
			t.Fatalf("after api.php logout the wiki names %q", u)
		}
	})

	t.Run("api.php clientlogin", func(t *testing.T) {
		// The wiki's API signs in too (action=clientlogin, as apps do).
		l := e.newClient()
		tr := l.get("/api.php?action=query&meta=tokens&type=login&format=json")
		var tok struct {
			Query struct {
				Tokens struct {
					Login string `json:"logintoken"`
				} `json:"tokens"`
			} `json:"query"`
		}
		if err := json.Unmarshal([]byte(tr.Body), &tok); err != nil || tok.Query.Tokens.Login == "" {
			t.Fatalf("login token: %d %.300s", tr.StatusCode, tr.Body)
		}
		r := l.postForm("/api.php", url.Values{
			"action": {"clientlogin"}, "format": {"json"}, "username": {"Alice"}, "password": {mwAlicePass},
			"logintoken": {tok.Query.Tokens.Login}, "loginreturnurl": {e.Base + "/"},
		})
		if r.setCookie("wikidb_session") != "" || r.setCookie("wikidbUserID") != "" {
			t.Fatalf("clientlogin leaked the wiki's cookies: %v", r.Header.Values("Set-Cookie"))
		}
		notWikiAlice(t, "clientlogin, then api.php", l.get("/api.php?action=query&meta=userinfo&format=json"))
		st := l.api("status", nil)
		if st.StatusCode == 200 && !strings.Contains(st.Body, `"pending"`) {
			t.Fatalf("clientlogin: gateway session without the second factor: %s", st.Body)
		}
		t.Logf("clientlogin: %d %q X-Mfa-Location %q; status %d %s", r.StatusCode, r.Location(), r.Header.Get("X-Mfa-Location"), st.StatusCode, st.Body)
	})
}
