package integration_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

// These tests try to get an enrolled user's app session without their
// second factor, knowing only the password. Each must end with no access.

// TestUnidentifiedSignInFailsClosed: the app accepts a JSON sign-in the
// gateway reads differently (a body it does not parse as JSON, a key in
// another case, a duplicate key). When the gateway cannot tell who signed
// in, or is told the wrong user, the app's new session must not work.
func TestUnidentifiedSignInFailsClosed(t *testing.T) {
	e := start(t, optsWith(manyUsers()), jsonBlock)
	c0 := e.newClient()
	if r := c0.postJSON("/api/login", map[string]string{"username": "alice", "password": "alice-password"}); r.StatusCode != 200 {
		t.Fatalf("alice's JSON sign-in: %d %s", r.StatusCode, r.Body)
	}
	c0.enrol()

	for _, tc := range []struct{ name, ct, body string }{
		{"JSON sent as text/plain", "text/plain", `{"username":"alice","password":"alice-password"}`},
		{"JSON without content type", "", `{"username":"alice","password":"alice-password"}`},
		{"key in another case", "application/json", `{"Username":"alice","password":"alice-password"}`},
		{"upper-case key", "application/json", `{"USERNAME":"alice","password":"alice-password"}`},
		{"duplicate key names bob to the gateway", "application/json", `{"username":"bob","USERNAME":"alice","password":"alice-password"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			h := map[string]string{"X-Requested-With": "XMLHttpRequest"}
			if tc.ct != "" {
				h["Content-Type"] = tc.ct
			}
			r := c.req("POST", "/api/login", strings.NewReader(tc.body), h)
			if r.StatusCode >= 500 {
				t.Fatalf("sign-in: %d %s", r.StatusCode, r.Body)
			}
			if u := c.dashboardUser(); u == "alice" {
				t.Errorf("password-only sign-in reached alice's dashboard (app cookie released: %v)", c.cookie("demo_session") != "")
			}
			notAlice(t, "then /api/data", c.get("/api/data"))
		})
	}
}

// TestLegacyCredentialsWithFormIdentity: with identity taken from the sign-in
// form only, a legacy sign-in from any URL (Basic, auth_user) carries no
// form the gateway can read. Not knowing who signed in must not mean "let
// the app's session through".
func TestLegacyCredentialsWithFormIdentity(t *testing.T) {
	e := start(t, optsWith(manyUsers()), `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from form username
`)
	_, _, _ = e.enrolled("alice")
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
	}{
		{"Basic", "/api/data", map[string]string{"Authorization": basic("alice", "alice-password")}},
		{"query", "/api/data?auth_user=alice&auth_pass=alice-password", nil},
		{"Basic page", "/", map[string]string{"Authorization": basic("alice", "alice-password")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			notAlice(t, "legacy sign-in response", c.req("GET", tc.path, nil, tc.hdr))
			notAlice(t, "next request", c.get("/api/data"))
			if u := c.dashboardUser(); u == "alice" {
				t.Fatal("reached alice's dashboard with her password only")
			}
		})
	}
}

// TestCredentialsInsideAnotherSession: signed in as bob (no 2FA), a request
// carrying alice's password in Basic/auth_user makes the app switch to
// alice. The gateway must not bind alice's new app session to bob's gateway
// session (nor pass alice's page through).
func TestCredentialsInsideAnotherSession(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	_, _, _ = e.enrolled("alice")
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
	}{
		{"Basic", "/api/data", map[string]string{"Authorization": basic("alice", "alice-password")}},
		{"query", "/api/data?auth_user=alice&auth_pass=alice-password", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			c.signIn("bob", "bob-password")
			if u := c.dashboardUser(); u != "bob" {
				t.Fatalf("bob's dashboard: %q", u)
			}
			r := c.req("GET", tc.path, nil, tc.hdr)
			if r.StatusCode >= 500 {
				t.Fatalf("%d %s", r.StatusCode, r.Body)
			}
			if strings.Contains(r.Body, `"user":"alice"`) {
				t.Errorf("the response inside bob's session showed alice's data: %s", r.Body)
			}
			if u := c.dashboardUser(); u == "alice" {
				t.Errorf("bob's gateway session now carries alice's app session (status %s)", c.api("status", nil).Body)
			}
		})
	}
}

// TestSignInWhileSignedInAsSomeoneElse: a browser signed in as carol (with or
// without 2FA) posts the sign-in form with alice's password. The gateway
// must learn that alice signed in (whoami must ask about the new session,
// not carol's) and challenge alice, not carol.
func TestSignInWhileSignedInAsSomeoneElse(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	aliceSecret, _, _ := e.enrolled("alice")
	carolSecret, _, carolAAL2 := e.enrolled("carol")
	_ = aliceSecret

	check := func(t *testing.T, c *client, attackerSecret string) {
		t.Helper()
		r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
		if r.StatusCode >= 500 {
			t.Fatalf("sign-in: %d", r.StatusCode)
		}
		if u := c.dashboardUser(); u == "alice" {
			t.Fatalf("alice's dashboard with her password only (sign-in answered %d %q)", r.StatusCode, r.Location())
		}
		st := c.api("status", nil)
		if st.StatusCode == 200 && st.JSON(t)["user"] != "alice" {
			t.Errorf("the gateway session after alice's sign-in belongs to %v", st.JSON(t)["user"])
		}
		if attackerSecret != "" && strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			// The attacker answers the challenge with their own authenticator.
			c.api("challenge", map[string]string{"code": code(t, attackerSecret, 1)})
			if u := c.dashboardUser(); u == "alice" {
				t.Fatal("the attacker's own code released alice's app session")
			}
		}
	}
	t.Run("signed in without 2FA", func(t *testing.T) {
		c := e.newClient()
		c.signIn("bob", "bob-password")
		check(t, c, "")
	})
	t.Run("signed in with 2FA", func(t *testing.T) {
		check(t, carolAAL2, carolSecret)
	})
}

// TestRequire2FAEnrolmentKeepsAppSession: with require_2fa, an unenrolled
// user lands on setup; once set up they reach the app they signed in to,
// without signing in again.
func TestRequire2FAEnrolmentKeepsAppSession(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\n\t\trequire_2fa")
	c := e.newClient()
	r := c.signIn("bob", "bob-password")
	if r.StatusCode != 303 || r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("sign-in of an unenrolled user under require_2fa: %d %q", r.StatusCode, r.Location())
	}
	if r := c.get("/"); r.StatusCode != 303 || r.Location() != "/_mfa/security?setup=1" {
		t.Fatalf("app before setup: %d %q", r.StatusCode, r.Location())
	}
	if st := c.status(); st["must_enrol"] != true || st["required"] != true {
		t.Fatalf("status: %v", st)
	}
	r = c.api("totp/enroll", map[string]any{})
	secret := r.JSON(t)["secret"].(string)
	if r := c.api("totp/confirm", map[string]string{"code": code(t, secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", r.StatusCode, r.Body)
	}
	if r := c.get("/"); r.StatusCode != 303 || r.Location() != "/_mfa/security?setup=1" {
		t.Errorf("app before the codes are acknowledged: %d %q", r.StatusCode, r.Location())
	}
	r = c.api("recovery-codes/acknowledge", map[string]any{})
	if r.StatusCode != 200 || r.JSON(t)["next"] != "/" {
		t.Fatalf("acknowledge: %d %s", r.StatusCode, r.Body)
	}
	if u := c.dashboardUser(); u != "bob" {
		t.Fatalf("after setup the app is not signed in (dashboard %q, app cookie %q): the app's session was dropped at the sign-in", u, c.cookie("demo_session"))
	}
}

// TestWhoamiAsksAboutTheNewSession: an app that keeps the old session alive
// when a new sign-in sets a new cookie (the echo app does). Signed in as
// bob (no 2FA), the attacker signs in with alice's password. The whoami
// call must be made with the new cookie only; with bob's old cookie first,
// the app answers "bob" and alice's new session is bound without her factor.
func TestWhoamiAsksAboutTheNewSession(t *testing.T) {
	e := startWith(t, &echoApp{sessions: map[string]string{}}, `
		sign_in POST /login
		sign_out /logout
		session_cookie echo_sess
		user_from whoami /api/me user`)
	login := func(c *client, user string) resp {
		return c.postForm("/login", url.Values{"username": {user}, "password": {user + "-pw"}})
	}
	a := e.newClient()
	if r := login(a, "alice"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("alice unenrolled: %d %q", r.StatusCode, r.Location())
	}
	a.enrol()
	if r := login(e.newClient(), "alice"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("premise: alice is challenged in a fresh browser: %d %q", r.StatusCode, r.Location())
	}

	c := e.newClient()
	if r := login(c, "bob"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("bob: %d %q", r.StatusCode, r.Location())
	}
	r := login(c, "alice")
	me := c.get("/api/me")
	if strings.Contains(me.Body, `"alice"`) {
		t.Fatalf("alice's app session with her password only (sign-in answered %d %q; status %s)", r.StatusCode, r.Location(), c.api("status", nil).Body)
	}
	if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Errorf("alice's sign-in was not challenged: %d %q", r.StatusCode, r.Location())
	}
}

// TestStolenCookieSpellings: an app that reads its session cookie the lax
// way (any letter case, the Cookie header also split on ',') is sent a
// stolen signed-in app cookie in each spelling it accepts, with no gateway
// session, and alongside the thief's own gateway session. None may reach
// the app.
func TestStolenCookieSpellings(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.LaxCookies = true
	e := start(t, opts, defaultGateway)
	_, _, victim := e.enrolled("alice")
	stolen := victim.cookie("demo_session")
	if stolen == "" {
		t.Fatal("alice has no app cookie")
	}
	// The lax app does read each spelling: straight to the app, each one
	// is alice's session.
	spellings := []string{
		"DEMO_SESSION=" + stolen,
		"Demo_Session=" + stolen,
		"x=1, demo_session=" + stolen,
		"x=1,DEMO_SESSION=" + stolen,
		`demo_session="` + stolen + `"`,
	}
	for _, sp := range spellings {
		req, _ := http.NewRequest("GET", e.AppURL+"/api/data", nil)
		req.Header.Set("Cookie", sp)
		if r := e.rawReq(req); !strings.Contains(r.Body, `"user":"alice"`) {
			t.Fatalf("the lax app does not read %q as alice's session (test app broken): %d %s", sp, r.StatusCode, r.Body)
		}
	}
	thief := e.newClient()
	thief.signIn("bob", "bob-password")
	own := "mfa_session=" + thief.cookie("mfa_session")
	for _, sp := range spellings {
		for _, cookie := range []string{sp, own + "; " + sp, sp + "; " + own} {
			notAlice(t, "stolen cookie as "+cookie, e.raw("GET", "/api/data", cookie, nil, nil))
		}
	}
}

// TestGatesHoldForSignInShapes: under require_2fa, bob (no 2FA yet) must
// set it up before the app. Requests shaped like the sign-in that the app
// reads as ordinary pages must not carry his app session past the gate:
// the discriminating field in a JSON body the app does not parse, in the
// query with another value in the body, and given twice.
func TestGatesHoldForSignInShapes(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.SharedPath, opts.CookieDerived, opts.BaseURL = true, true, "https://dash.example/app/"
	e := start(t, opts, sharedPathShorthand+`
		require_2fa
`)
	bob := e.newClient()
	bob.get("/index.php?do=login")
	r := bob.postForm("/index.php", url.Values{"do": {"login"}, "username": {"bob"}, "password": {"bob-password"}})
	if r.StatusCode != 303 || !strings.HasPrefix(r.Location(), "/_mfa/security") {
		t.Fatalf("bob's sign-in under require_2fa: %d %q, want setup", r.StatusCode, r.Location())
	}
	if page := bob.get("/index.php?do=show"); !strings.HasPrefix(page.Location(), "/_mfa/security") {
		t.Fatalf("bob reached the app before setup: %d %q", page.StatusCode, page.Location())
	}
	notBob := func(what string, r resp) {
		t.Helper()
		if r.StatusCode >= 500 {
			t.Fatalf("%s: %d %.200s", what, r.StatusCode, r.Body)
		}
		if strings.Contains(r.Body, `<strong id="user">bob<`) {
			t.Fatalf("%s: the app served bob's session before his setup: %d", what, r.StatusCode)
		}
	}
	json := map[string]string{"Content-Type": "application/json"}
	notBob("field in a JSON body", bob.req("POST", "/index.php", strings.NewReader(`{"do":"login"}`), json))
	notBob("field in a JSON body, query do=show", bob.req("POST", "/index.php?do=show", strings.NewReader(`{"do":"login"}`), json))
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for _, tc := range []struct{ name, target, body string }{
		{"query login, body show", "/index.php?do=login", "do=show"},
		{"body given twice", "/index.php", "do=login&do=show"},
		{"body in two cases", "/index.php", "do=login&DO=show"},
	} {
		r := bob.req("POST", tc.target, strings.NewReader(tc.body), form)
		notBob(tc.name, r)
		if r.StatusCode != 400 {
			t.Errorf("%s: %d, want 400 (the field is ambiguous)", tc.name, r.StatusCode)
		}
	}
	if page := bob.get("/index.php?do=show"); !strings.HasPrefix(page.Location(), "/_mfa/security") {
		t.Fatalf("after the attempts, bob reaches the app before setup: %d %q", page.StatusCode, page.Location())
	}
}

// TestWhoamiInEveryCaddyfileShape: the whoami call reaches the app however
// the site routes to it (handle blocks after the gateway, the gateway inside
// handle, nested route and handle), with a query string and a nested field,
// as wiki software answers. An enrolled user signing in is challenged (the
// gateway learnt who she is); a wrong password gets no challenge.
func TestWhoamiInEveryCaddyfileShape(t *testing.T) {
	const block = `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name
`
	shapes := map[string]string{
		"plain": "{gateway}\nreverse_proxy {upstream}",
		"handle blocks after the gateway": `route {
	{gateway}
	handle /api/* {
		reverse_proxy {upstream}
	}
	handle {
		reverse_proxy {upstream}
	}
}`,
		"gateway inside handle": `handle /static/* {
	respond "static"
}
handle {
	{gateway}
	reverse_proxy {upstream}
}`,
		"nested route and handle": `handle {
	route {
		{gateway}
		handle /api.php {
			reverse_proxy {upstream}
		}
		handle {
			reverse_proxy {upstream}
		}
	}
}`,
	}
	e := start(t, optsWith(manyUsers()), defaultGateway)
	users := []string{"alice", "bob", "carol", "dave"}
	secrets := map[string]string{}
	for _, u := range users {
		secrets[u], _, _ = e.enrolled(u)
	}
	i := 0
	for name, site := range shapes {
		user := users[i]
		i++
		t.Run(name, func(t *testing.T) {
			e.site = site
			e.load(block)
			c := e.newClient()
			if r := c.signIn(user, "wrong"); strings.HasPrefix(r.Location(), "/_mfa/") || r.StatusCode == 403 {
				t.Fatalf("wrong password: %d %q", r.StatusCode, r.Location())
			}
			c = e.pending(user)
			if r := c.api("challenge", map[string]string{"code": code(t, secrets[user], 1)}); r.StatusCode != 200 {
				t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
			}
			if u := c.dashboardUser(); u != user {
				t.Fatalf("dashboard after the challenge: %q, want %s", u, user)
			}
		})
	}
}

// TestInPlaceSignInIsConfirmed: an app that does not rotate its session
// signs the pre-sign-in cookie in wherever credentials arrive (any URL, a
// multipart or urlencoded body, the query, Basic), and sets no cookie. With
// no strip_param, nothing removes them: the gateway must still notice, by
// asking the app, and put the second factor in front of that cookie.
func TestInPlaceSignInIsConfirmed(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, defaultGateway)
	_, _, _ = e.enrolled("alice")
	mp, mpType := multipartFields(t, "auth_user", "alice", "auth_pass", "alice-password")
	for _, tc := range []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
	}{
		{name: "multipart POST", method: "POST", path: "/api/data", ctype: mpType, body: mp},
		// A GET has a body too if it sends one, and apps read it.
		{name: "multipart GET", method: "GET", path: "/api/me", ctype: mpType, body: mp},
		{name: "urlencoded POST", method: "POST", path: "/", ctype: "application/x-www-form-urlencoded", body: "auth_user=alice&auth_pass=alice-password"},
		{name: "query", method: "GET", path: "/api/data?auth_user=alice&auth_pass=alice-password"},
		{name: "Basic", method: "GET", path: "/api/data", hdr: map[string]string{"Authorization": basic("alice", "alice-password")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newClient()
			c.get("/login") // the app's pre-sign-in session, bound as anonymous
			if c.cookie("demo_session") == "" {
				t.Fatal("no pre-sign-in cookie")
			}
			h := map[string]string{}
			for k, v := range tc.hdr {
				h[k] = v
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				h["Content-Type"] = tc.ctype
			}
			r := c.req(tc.method, tc.path, body, h)
			notAlice(t, "the signing-in response", r)
			notAlice(t, "then /api/data", c.get("/api/data"))
			if u := c.dashboardUser(); u == "alice" {
				t.Fatal("the pre-sign-in cookie opens alice's dashboard with her password alone")
			}
			if st := c.api("status", nil); !strings.Contains(st.Body, `"pending"`) {
				t.Errorf("the gateway did not start alice's challenge: %d %s", st.StatusCode, st.Body)
			}
		})
	}
}

// TestInPlaceSignInWithoutWhoami: the same app with identity from the
// sign-in form only. Unasked, the app cannot say whether a form post signed
// its pre-sign-in cookie in, so the gateway unbinds that cookie after any
// such request, and refuses one that carries a password it cannot check.
func TestInPlaceSignInWithoutWhoami(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from form username
`)
	_, _, _ = e.enrolled("alice")
	mp, mpType := multipartFields(t, "auth_user", "alice", "auth_pass", "alice-password")
	c := e.newClient()
	c.get("/login")
	notAlice(t, "multipart sign-in from any URL", c.req("POST", "/api/data", strings.NewReader(mp), map[string]string{"Content-Type": mpType}))
	notAlice(t, "then /api/data", c.get("/api/data"))
	c = e.newClient()
	c.get("/login")
	r := c.req("GET", "/api/data", nil, map[string]string{"Authorization": basic("alice", "alice-password")})
	notAlice(t, "Basic from any URL", r)
	if r.StatusCode != 403 {
		t.Errorf("Basic password with no whoami to confirm it: %d, want 403 sign_in_unverified", r.StatusCode)
	}
	notAlice(t, "then /api/data", c.get("/api/data"))
}

// multipartFields encodes fields as multipart/form-data.
func multipartFields(t *testing.T, kv ...string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := w.WriteField(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return b.String(), w.FormDataContentType()
}

// TestConcurrentSignInDecisions: on an app that signs its pre-sign-in
// session in place, one browser fires alice's sign-in (she has 2FA), the
// attacker's own sign-in (bob, no 2FA) and reads of the app, all at once
// with the same cookies. Whatever the interleaving, no read gets alice's
// data, and afterwards neither the pre-sign-in cookies nor any cookie the
// responses set open her session. A bounded loop of rounds.
func TestConcurrentSignInDecisions(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	e := start(t, opts, defaultGateway)
	_, _, _ = e.enrolled("alice")
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for round := range 15 {
		c := e.newClient()
		c.get("/login")
		pre := c.cookieHeader()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var leaks []string
		var after []string // Cookie headers the responses leave the browser with
		fire := func(method, path, body string, h map[string]string) {
			defer wg.Done()
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, e.Base+path, rd)
			req.Header.Set("Cookie", pre)
			for k, v := range h {
				req.Header.Set(k, v)
			}
			res, err := (&http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(string(b), `"user":"alice"`) || strings.Contains(string(b), `<strong id="user">alice<`) {
				leaks = append(leaks, method+" "+path)
			}
			if sc := res.Header.Values("Set-Cookie"); len(sc) > 0 {
				var parts []string
				for _, line := range sc {
					parts = append(parts, strings.SplitN(line, ";", 2)[0])
				}
				after = append(after, pre+"; "+strings.Join(parts, "; "))
			}
		}
		wg.Add(6)
		go fire("POST", "/login", "username=alice&password=alice-password", form)
		go fire("POST", "/login", "username=bob&password=bob-password", form)
		for range 4 {
			go fire("GET", "/api/data", "", nil)
		}
		wg.Wait()
		if len(leaks) > 0 {
			t.Fatalf("round %d: alice's data reached %v with her password alone", round, leaks)
		}
		for _, cookie := range append(after, pre) {
			notAlice(t, fmt.Sprintf("round %d, later read with %q", round, cookie), e.raw("GET", "/api/data", cookie, nil, nil))
		}
	}
}

// TestForeignAppCookieIsAudited: a signed-in user whose browser sends
// another session's app cookie (alice's, stolen) gets it stripped, and the
// mismatch is audited once for the session, not on every request.
func TestForeignAppCookieIsAudited(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	_, _, alice := e.enrolled("alice")
	stolen := alice.cookie("demo_session")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	own := "mfa_session=" + bob.cookie("mfa_session") + "; demo_session=" + bob.cookie("demo_session")
	for range 3 {
		r := e.raw("GET", "/api/data", own+"; demo_session="+stolen, nil, nil)
		notAlice(t, "bob with alice's cookie", r)
	}
	audit := admin.api("admin/audit?type=binding_mismatch", nil)
	if n := strings.Count(audit.Body, `"type":"binding_mismatch"`); n != 1 || !strings.Contains(audit.Body, `"subject":"bob"`) {
		t.Fatalf("binding_mismatch events: %d, want 1 for bob: %s", n, audit.Body)
	}
}

// TestDecoyIdentityFields: the block names users by a query parameter (for
// one endpoint) and by the form field (for the sign-in form). A sign-in to
// the form with a decoy query naming an unenrolled user must not pass as
// that user: sources that disagree refuse the sign-in.
func TestDecoyIdentityFields(t *testing.T) {
	e := start(t, optsWith(manyUsers()), `
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from query user
		user_from form username
`)
	_, _, _ = e.enrolled("alice")
	c := e.newClient()
	c.get("/login")
	r := c.postForm("/login?user=bob", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	notAlice(t, "decoy sign-in", r)
	if r.StatusCode != 403 {
		t.Errorf("sign-in with a decoy: %d %q, want 403 sign_in_unverified", r.StatusCode, r.Location())
	}
	notAlice(t, "then /api/data", c.get("/api/data"))
	if u := c.dashboardUser(); u == "alice" {
		t.Fatal("the decoy let alice's password through alone")
	}
	// The same query naming alice agrees: her challenge.
	c = e.newClient()
	if r := c.postForm("/login?user=alice", url.Values{"username": {"alice"}, "password": {"alice-password"}}); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("agreeing sources: %d %q, want the challenge", r.StatusCode, r.Location())
	}
}

// TestSignInRoutesReadTheirOwnFields: with a sign-in route per endpoint,
// each reads only its own field. The form sign-in ignores the query source
// that the block keeps for other URLs, so a decoy there names nobody, and
// the JSON endpoint reads only its JSON field.
func TestSignInRoutesReadTheirOwnFields(t *testing.T) {
	e := start(t, optsWith(manyUsers()), `
		sign_in POST /login {
			user_from form username
		}
		sign_in POST /api/login {
			user_from json username
		}
		sign_out /logout
		session_cookie demo_session
		user_from query user
`)
	_, _, _ = e.enrolled("alice")
	c := e.newClient()
	if r := c.postForm("/login?user=bob", url.Values{"username": {"alice"}, "password": {"alice-password"}}); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("form sign-in with a decoy query: %d %q, want alice's challenge", r.StatusCode, r.Location())
	}
	if u := c.status()["user"]; u != "alice" {
		t.Fatalf("pending user %v, want alice", u)
	}
	c = e.newClient()
	r := c.req("POST", "/api/login?user=bob", strings.NewReader(`{"username":"alice","password":"alice-password"}`),
		map[string]string{"Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest"})
	notAlice(t, "JSON sign-in with a decoy query", r)
	if loc := r.Header.Get("X-Mfa-Location"); !strings.HasPrefix(loc, "/_mfa/challenge") {
		t.Fatalf("JSON sign-in: %d, X-Mfa-Location %q, want alice's challenge", r.StatusCode, loc)
	}
	notAlice(t, "then /api/data", c.get("/api/data"))
}

// TestMalformedBodiesFromAnyURL: an app that signs in from any URL parses a
// urlencoded body more laxly than the gateway (Go's form parser keeps the
// good pairs around a bad one). With strip_param the gateway refuses what it
// cannot parse; without it, the in-place sign-in is confirmed with the app.
func TestMalformedBodiesFromAnyURL(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.Rotate = false
	bodies := []string{
		"x=%zz&auth_user=alice&auth_pass=alice-password",
		"auth_user=alice&auth_pass=alice-password&y=%",
	}
	// Straight to the app, each body signs alice in.
	app := httptest.NewServer(demoapp.New(opts))
	defer app.Close()
	for _, body := range bodies {
		res, err := http.Post(app.URL+"/api/data", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("X-Demo-User") != "alice" {
			t.Fatalf("the app does not sign alice in from %q (test app broken)", body)
		}
	}
	for name, block := range map[string]string{
		"strip_param": defaultGateway + "\t\tstrip_param auth_user auth_pass\n",
		"whoami only": defaultGateway,
	} {
		t.Run(name, func(t *testing.T) {
			e := start(t, opts, block)
			e.enrolled("alice")
			for _, body := range bodies {
				c := e.newClient()
				c.get("/login")
				r := c.req("POST", "/", strings.NewReader(body), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				notAlice(t, "malformed body "+body, r)
				if name == "strip_param" && r.StatusCode != 400 {
					t.Errorf("%q with strip_param: %d, want 400", body, r.StatusCode)
				}
				notAlice(t, "then /api/data", c.get("/api/data"))
			}
		})
	}
}

// TestWhoamiInsideHandlePath: the app served under /app/ with handle_path
// (Caddy strips the prefix before the gateway). The whoami call runs inside
// the same handle_path, so the gateway learns who signed in.
func TestWhoamiInsideHandlePath(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.enrolled("alice")
	e.site = `handle_path /app/* {
	{gateway}
	reverse_proxy {upstream}
}`
	e.load(`
		sign_in POST /login
		session_cookie demo_session
		user_from whoami /api/me user
`)
	c := e.newClient()
	c.get("/app/login") // the form first, as a browser does (and a GET is retried across the reload)
	r := c.postForm("/app/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if r.StatusCode != 303 || !strings.HasSuffix(r.Location(), "/_mfa/challenge?next=%2F") {
		t.Fatalf("sign-in under handle_path: %d %q, want alice's challenge", r.StatusCode, r.Location())
	}
	st := c.get("/app/_mfa/api/v1/status")
	if st.StatusCode != 200 || !strings.Contains(st.Body, `"user":"alice"`) || !strings.Contains(st.Body, `"pending"`) {
		t.Fatalf("pending status under handle_path: %d %s", st.StatusCode, st.Body)
	}
	notAlice(t, "pending /app/api/data", c.get("/app/api/data"))
}
