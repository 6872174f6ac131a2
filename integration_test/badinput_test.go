package integration_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/session"
)

// testCodec signs cookies with the test key, to forge well-signed cookies
// that must still be refused.
func testCodec(t *testing.T) *session.Codec {
	t.Helper()
	key, err := seal.ParseKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := session.NewCodec(seal.DeriveKey(key, "session-cookie"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMalformedGatewayCookie: a gateway cookie that cannot be read, or names
// no session, is "no session": the app never sees its cookie, the browser's
// cookies are cleared, nothing 5xx.
func TestMalformedGatewayCookie(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	c := e.newClient()
	c.signIn("alice", "alice-password")
	gw, app := c.cookie("mfa_session"), c.cookie("demo_session")
	if gw == "" || app == "" {
		t.Fatal("no cookies")
	}
	dot := strings.IndexByte(gw, '.')
	badMAC := []byte(gw)
	i := dot + 10
	if badMAC[i] == 'A' {
		badMAC[i] = 'B'
	} else {
		badMAC[i] = 'A'
	}
	junk := make([]byte, 60)
	rand.Read(junk)
	codec := testCodec(t)
	real, err := codec.Decode(gw, true)
	if err != nil {
		t.Fatalf("decode the real cookie with the test key: %v", err)
	}
	var unknown session.ID
	rand.Read(unknown[:])
	forgedUnknown := codec.Encode(session.Claims{ID: unknown, AAL: 2, User: "alice", IdleDeadline: time.Now().Add(time.Hour).Unix()})
	raisedAAL := real
	raisedAAL.AAL = 2
	forgedAAL := codec.Encode(raisedAAL)

	cases := []struct{ name, value string }{
		{"garbage", "not-a-cookie"},
		{"huge", strings.Repeat("A", 10<<10) + "." + strings.Repeat("B", 43)},
		{"base64 junk", base64.RawURLEncoding.EncodeToString(junk[:40]) + "." + base64.RawURLEncoding.EncodeToString(junk[40:])},
		{"bad MAC", string(badMAC)},
		{"no dot", strings.Replace(gw, ".", "", 1)},
		{"extra dot", gw + ".x"},
		{"truncated", gw[:len(gw)-4]},
		{"quoted", `"` + gw + `"`},
		{"std base64 padding", gw + "=="},
		{"dots only", "..."},
		{"unicode", "ümlaut.✓"},
		{"signed, unknown session", forgedUnknown},
		{"signed, AAL raised", forgedAAL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ck := "mfa_session=" + tc.value + "; demo_session=" + app
			r := e.raw("GET", "/", ck, nil, nil)
			if r.StatusCode >= 500 {
				t.Fatalf("GET /: %d %s", r.StatusCode, r.Body)
			}
			notAlice(t, "GET /", r)
			if r.StatusCode != 303 || r.Location() != "/login" {
				t.Errorf("GET /: %d %q, want the app's redirect to /login", r.StatusCode, r.Location())
			}
			if !r.clears("mfa_session") || !r.clears("demo_session") {
				t.Errorf("cookies not cleared: %q", r.Header.Values("Set-Cookie"))
			}
			notAlice(t, "GET /api/data", e.raw("GET", "/api/data", ck, nil, nil))
			apiErr(t, e.raw("GET", "/_mfa/api/v1/status", ck, nil, nil), 401, "no_session")
			if r := e.raw("GET", "/_mfa/security", ck, nil, nil); r.StatusCode >= 500 || r.StatusCode == 200 {
				t.Errorf("security page: %d", r.StatusCode)
			}
		})
	}
	// The real session was not harmed by the forgeries.
	if st := c.status(); st["user"] != "alice" || st["aal"].(float64) != 1 {
		t.Fatalf("real session after the forgeries: %v", st)
	}
	if u := c.dashboardUser(); u != "alice" {
		t.Fatalf("real session after the forgeries: dashboard %q", u)
	}
}

var apiPosts = []string{
	"totp/enroll", "totp/confirm", "recovery-codes/acknowledge", "recovery-codes/regenerate",
	"totp/disable", "challenge", "challenge/recovery",
}

// TestAPIBadInput: every POST endpoint answers malformed bodies with a 4xx
// in the documented error shape, whatever the session.
func TestAPIBadInput(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	_, _, _ = e.enrolled("bob")
	active := e.newClient()
	active.signIn("alice", "alice-password")
	pending := e.pending("bob")

	big := `{"code":"` + strings.Repeat("1", 1<<20) + `"}`
	bodies := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"not JSON", "application/json", "hello", 400, "bad_request"},
		{"truncated", "application/json", `{"code":`, 400, "bad_request"},
		{"array", "application/json", `[1,2,3]`, 400, "bad_request"},
		{"string", "application/json", `"123456"`, 400, "bad_request"},
		{"number", "application/json", `123456`, 400, "bad_request"},
		{"deep nesting", "application/json", strings.Repeat("[", 8000), 400, "bad_request"},
		{"trailing garbage", "application/json", `{"code":"123456"} x`, 400, "bad_request"},
		{"1 MiB", "application/json", big, 413, "too_large"},
		{"text/plain", "text/plain", `{"code":"123456"}`, 400, "bad_request"},
		{"form", "application/x-www-form-urlencoded", `code=123456`, 400, "bad_request"},
		{"no content type", "", `{"code":"123456"}`, 400, "bad_request"},
	}
	for _, ep := range apiPosts {
		for _, cl := range []struct {
			name string
			c    *client
		}{{"active", active}, {"pending", pending}, {"none", e.newClient()}} {
			for _, b := range bodies {
				t.Run(ep+"/"+cl.name+"/"+b.name, func(t *testing.T) {
					h := map[string]string{}
					if b.ct != "" {
						h["Content-Type"] = b.ct
					}
					r := cl.c.req("POST", "/_mfa/api/v1/"+ep, strings.NewReader(b.body), h)
					apiErr(t, r, b.status, b.code)
				})
			}
		}
	}

	fields := []struct {
		ep     string
		c      *client
		body   string
		status int
		code   string
	}{
		{"totp/confirm", active, `{}`, 400, "bad_request"},
		{"totp/confirm", active, `{"code":123456}`, 400, "bad_request"},
		{"totp/confirm", active, `{"code":["123456"]}`, 400, "bad_request"},
		{"totp/confirm", active, `{"code":{"a":1}}`, 400, "bad_request"},
		{"challenge", pending, `{}`, 400, "bad_request"},
		{"challenge", pending, `null`, 400, "bad_request"},
		{"challenge", pending, ``, 400, "bad_request"},
		{"challenge", pending, `{"code":123456}`, 400, "bad_request"},
		{"challenge", pending, `{"code":true}`, 400, "bad_request"},
		{"challenge", pending, `{"code":"\u0000\u0000\u0000\u0000\u0000\u0000"}`, 400, "malformed_code"},
		{"challenge", pending, "{\"code\":\"\xff\xfe\xfd\xfc\xfb\xfa\"}", 400, "malformed_code"},
		{"challenge/recovery", pending, `{}`, 400, "bad_request"},
		{"challenge/recovery", pending, `{"recovery_code":1e400}`, 400, "bad_request"},
		{"challenge/recovery", pending, `{"recovery_code":false}`, 400, "bad_request"},
		{"challenge/recovery", pending, `{"recovery_code":"x"}`, 400, "malformed_recovery_code"},
		{"challenge/recovery", pending, `{"recovery_code":"` + strings.Repeat("a", 5000) + `"}`, 400, "malformed_recovery_code"},
	}
	for i, f := range fields {
		t.Run("field/"+f.ep+"/"+string(rune('a'+i)), func(t *testing.T) {
			r := f.c.req("POST", "/_mfa/api/v1/"+f.ep, strings.NewReader(f.body), map[string]string{"Content-Type": "application/json"})
			apiErr(t, r, f.status, f.code)
		})
	}

	t.Run("methods", func(t *testing.T) {
		for _, ep := range apiPosts {
			r := active.get("/_mfa/api/v1/" + ep)
			apiErr(t, r, 405, "method_not_allowed")
			if r.Header.Get("Allow") != "POST" {
				t.Errorf("%s: Allow %q", ep, r.Header.Get("Allow"))
			}
		}
		apiErr(t, active.postJSON("/_mfa/api/v1/status", map[string]any{}), 405, "method_not_allowed")
		apiErr(t, active.get("/_mfa/api/v1/nope"), 404, "not_found")
		if r := active.get("/_mfa/api/v2/status"); r.StatusCode != 404 {
			t.Errorf("api/v2: %d", r.StatusCode)
		}
	})
	t.Run("no session", func(t *testing.T) {
		n := e.newClient()
		apiErr(t, n.api("status", nil), 401, "no_session")
		apiErr(t, n.api("challenge", map[string]string{"code": "123456"}), 401, "no_session")
		apiErr(t, n.api("totp/enroll", map[string]any{}), 401, "no_session")
	})
	t.Run("wrong state", func(t *testing.T) {
		apiErr(t, active.api("challenge", map[string]string{"code": "123456"}), 409, "no_challenge")
		apiErr(t, pending.api("totp/enroll", map[string]any{}), 401, "mfa_required")
		apiErr(t, active.api("recovery-codes/acknowledge", map[string]any{}), 409, "no_pending_codes")
		apiErr(t, active.api("totp/confirm", map[string]string{"code": "123456"}), 409, "no_pending_setup")
	})
	// The pending sign-in still works after all that.
	if st := pending.status(); st["state"] != "pending" {
		t.Fatalf("pending session after bad input: %v", st)
	}
}

// TestSignInBadInput: malformed sign-in requests get a 4xx (the app's or the
// gateway's), never a 5xx, and sign nobody in.
func TestSignInBadInput(t *testing.T) {
	for _, tc := range []struct{ name, block string }{{"form", defaultGateway}, {"json", jsonBlock}} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, optsWith(manyUsers()), tc.block)
			path := "/login"
			if tc.name == "json" {
				path = "/api/login"
			}
			for _, b := range []struct{ name, ct, body string }{
				{"2 MiB form", "application/x-www-form-urlencoded", "username=alice&password=" + strings.Repeat("x", 2<<20)},
				{"bad escape", "application/x-www-form-urlencoded", "username=%zz&password=alice-password"},
				{"semicolons", "application/x-www-form-urlencoded", "username=alice;password=alice-password"},
				{"multipart without boundary", "multipart/form-data", "--x\r\n"},
				{"broken multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--x"},
				{"bad JSON", "application/json", `{"username":`},
				{"JSON array", "application/json", `["alice","alice-password"]`},
				{"JSON wrong types", "application/json", `{"username":["alice"],"password":{"x":1}}`},
				{"2 MiB JSON", "application/json", `{"username":"alice","password":"` + strings.Repeat("x", 2<<20) + `"}`},
				{"bad content type", "application/x-www-form-urlencoded; charset=\"x", "username=alice&password=alice-password"},
			} {
				t.Run(b.name, func(t *testing.T) {
					c := e.newClient()
					r := c.req("POST", path, strings.NewReader(b.body), map[string]string{"Content-Type": b.ct})
					if r.StatusCode < 400 || r.StatusCode >= 500 {
						t.Fatalf("%d %.200s", r.StatusCode, r.Body)
					}
					if c.cookie("demo_session") != "" {
						t.Fatal("a malformed sign-in set the app cookie")
					}
				})
			}
		})
	}
}

// TestFormBadInput: the HTML forms refuse posts without a valid CSRF token
// or from another origin (403), and unreadable forms (400).
func TestFormBadInput(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.enrolled("bob")
	active := e.newClient()
	active.signIn("alice", "alice-password")
	pending := e.pending("bob")
	otherCSRF := csrfOf(t, active.get("/_mfa/security"))
	pendingCSRF := csrfOf(t, pending.get("/_mfa/challenge"))

	type post struct {
		c    *client
		path string
		good string // this session's token
	}
	posts := []post{
		{pending, "/_mfa/challenge", pendingCSRF},
		{pending, "/_mfa/challenge/recovery", pendingCSRF},
	}
	for _, p := range []string{"enroll", "confirm", "acknowledge", "regenerate", "disable"} {
		posts = append(posts, post{active, "/_mfa/security/" + p, otherCSRF})
	}
	for _, p := range posts {
		for _, tc := range []struct {
			name   string
			form   url.Values
			hdr    map[string]string
			status int
		}{
			{"no csrf", url.Values{"code": {"123456"}, "recovery_code": {"abcdef-234567"}, "saved": {"yes"}}, nil, 403},
			{"empty csrf", url.Values{"csrf": {""}, "code": {"123456"}}, nil, 403},
			{"wrong csrf", url.Values{"csrf": {otherFirst(p.good)}, "code": {"123456"}}, nil, 403},
			{"other session's csrf", url.Values{"csrf": {map[bool]string{true: otherCSRF, false: pendingCSRF}[p.good == pendingCSRF]}}, nil, 403},
			{"cross-origin", url.Values{"csrf": {p.good}, "code": {"123456"}}, map[string]string{"Origin": "http://evil.example"}, 403},
			{"cross-site fetch", url.Values{"csrf": {p.good}, "code": {"123456"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		} {
			t.Run(strings.TrimPrefix(p.path, "/_mfa/")+"/"+tc.name, func(t *testing.T) {
				h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
				for k, v := range tc.hdr {
					h[k] = v
				}
				r := p.c.req("POST", p.path, strings.NewReader(tc.form.Encode()), h)
				if r.StatusCode != tc.status {
					t.Fatalf("%d, want %d: %.200s", r.StatusCode, tc.status, r.Body)
				}
			})
		}
		t.Run(strings.TrimPrefix(p.path, "/_mfa/")+"/unreadable", func(t *testing.T) {
			for _, body := range []string{"csrf=" + p.good + "&code=%zz", "csrf=" + p.good + "&x=" + strings.Repeat("y", 64<<10)} {
				r := p.c.req("POST", p.path, strings.NewReader(body), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				if r.StatusCode < 400 || r.StatusCode >= 500 || r.StatusCode == 403 {
					t.Fatalf("%d for an unreadable form, want 400/413", r.StatusCode)
				}
			}
		})
	}
	t.Run("wrong codes were not counted", func(t *testing.T) {
		// 7 forms x 6 refused posts: had any reached the code check, bob
		// would be locked out.
		if st := active.status(); st["enrolled"] != false {
			t.Fatalf("a refused form changed alice's state: %v", st)
		}
		r := pending.api("challenge", map[string]string{"code": "000000"})
		if r.StatusCode == 429 {
			t.Fatal("refused form posts counted as wrong codes")
		}
	})
	t.Run("method and path", func(t *testing.T) {
		if r := active.get("/_mfa/security/disable"); r.StatusCode != 405 {
			t.Fatalf("GET security/disable: %d", r.StatusCode)
		}
		if r := active.get("/_mfa/nope"); r.StatusCode != 404 {
			t.Fatalf("unknown page: %d", r.StatusCode)
		}
		if r := e.newClient().postForm("/_mfa/security/disable", url.Values{"csrf": {otherCSRF}}); r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Fatalf("form without a session: %d", r.StatusCode)
		}
	})
}

// TestCrossOriginAPI: state-changing API calls from another origin are
// refused with 403 and change nothing.
func TestCrossOriginAPI(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	secret, _, _ := e.enrolled("bob")
	c := e.newClient()
	c.signIn("alice", "alice-password")
	p := e.pending("bob")
	for _, h := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Origin": "null"},
		{"Origin": "https://" + strings.TrimPrefix(e.Base, "http://")},
		{"Origin": e.Base + ".evil.example"},
		{"Origin": "http://127.0.0.1"},
		{"Origin": "%%%"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": e.Base, "Sec-Fetch-Site": "cross-site"},
	} {
		name := h["Origin"] + "|" + h["Sec-Fetch-Site"]
		t.Run(name, func(t *testing.T) {
			h["Content-Type"] = "application/json"
			apiErr(t, c.req("POST", "/_mfa/api/v1/totp/enroll", strings.NewReader(`{}`), h), 403, "cross_origin")
			apiErr(t, c.req("POST", "/_mfa/api/v1/totp/disable", strings.NewReader(`{}`), h), 403, "cross_origin")
			apiErr(t, p.req("POST", "/_mfa/api/v1/challenge", strings.NewReader(`{"code":"`+code(t, secret, 1)+`"}`), h), 403, "cross_origin")
		})
	}
	if st := c.status(); st["enrolled"] != false {
		t.Fatalf("a cross-origin call changed state: %v", st)
	}
	t.Run("same origin is fine", func(t *testing.T) {
		h := map[string]string{"Content-Type": "application/json", "Origin": e.Base, "Sec-Fetch-Site": "same-origin"}
		if r := c.req("POST", "/_mfa/api/v1/totp/enroll", strings.NewReader(`{}`), h); r.StatusCode != 200 {
			t.Fatalf("same-origin enroll: %d %s", r.StatusCode, r.Body)
		}
		// The refused challenge did not consume the code.
		if r := p.req("POST", "/_mfa/api/v1/challenge", strings.NewReader(`{"code":"`+code(t, secret, 1)+`"}`), h); r.StatusCode != 200 {
			t.Fatalf("same-origin challenge: %d %s", r.StatusCode, r.Body)
		}
	})
}

// TestPathTricks: the gateway's own paths are recognised on the cleaned
// path, and tricks on app paths do not get past the session check.
func TestPathTricks(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.enrolled("bob")
	c := e.newClient()
	c.signIn("alice", "alice-password")
	p := e.pending("bob")
	paths := []string{
		"/_mfa/api/v1/status",
		"/_mfa/../_mfa/api/v1/status",
		"//_mfa/api/v1/status",
		"/%5fmfa/api/v1/status",
		"/%5Fmfa/api/v1/status",
		"/_mfa/./api/v1/status",
		"/x/../_mfa/api/v1/status",
		"/_mfa//api/v1/status",
		"/_mfa/api/v1//status",
		"/%2e%2e/_mfa/api/v1/status",
		"/_mfa%2fapi%2fv1%2fstatus",
		"/_mfa/api/v1/status/",
		"/_mfa/api/v1/x/../status",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			apiErr(t, e.raw("GET", path, "", nil, nil), 401, "no_session")
			r := e.raw("GET", path, c.cookieHeader(), nil, nil)
			if r.StatusCode != 200 || r.JSON(t)["user"] != "alice" {
				t.Fatalf("with a session: %d %s", r.StatusCode, r.Body)
			}
		})
	}
	for _, path := range []string{"//api/data", "/%2e%2e/api/data", "/_mfa/../api/data", "/./api/data", "/api/./data", "/x/../api/data", "/%61pi/data"} {
		t.Run("pending "+path, func(t *testing.T) {
			r := e.raw("GET", path, p.cookieHeader(), map[string]string{"X-Requested-With": "x"}, nil)
			apiErr(t, r, 401, "mfa_required")
		})
	}
	for _, path := range []string{"//login", "/./login", "/x/../login", "/LOGIN", "/%6cogin"} {
		t.Run("sign-in at "+path, func(t *testing.T) {
			n := e.newClient()
			r := n.postForm(path, url.Values{"username": {"bob"}, "password": {"bob-password"}})
			if r.StatusCode >= 500 {
				t.Fatalf("%d", r.StatusCode)
			}
			if n.cookie("demo_session") != "" || strings.Contains(r.Body, `id="user"`) {
				t.Fatalf("enrolled bob's sign-in at %s released the app session: %d %q", path, r.StatusCode, r.Header.Values("Set-Cookie"))
			}
		})
	}
}

// echoApp is a tiny upstream: POST /login (password = user+"-pw") sets
// echo_sess, /api/me answers the user, everything else echoes the request.
type echoApp struct {
	mu       sync.Mutex
	sessions map[string]string
}

func (a *echoApp) user(id string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[id]
}

func (a *echoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		_ = r.ParseForm()
		u := r.PostForm.Get("username")
		if r.Method != "POST" || u == "" || r.PostForm.Get("password") != u+"-pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		b := make([]byte, 16)
		rand.Read(b)
		id := base64.RawURLEncoding.EncodeToString(b)
		a.mu.Lock()
		a.sessions[id] = u
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "echo_sess", Value: id, Path: "/"})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case "/api/me":
		ck, err := r.Cookie("echo_sess")
		if err != nil || a.user(ck.Value) == "" {
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"user": a.user(ck.Value)})
	default:
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "query": r.URL.RawQuery, "body": string(b)})
	}
}

type echoed struct {
	Headers http.Header `json:"headers"`
	Query   string      `json:"query"`
}

// TestTrustedHeadersStripped: client-sent copies of the gateway's headers,
// in any spelling, never reach the upstream; the gateway's own values do.
func TestTrustedHeadersStripped(t *testing.T) {
	e := startWith(t, &echoApp{sessions: map[string]string{}}, `
		sign_in POST /login
		sign_out /logout
		session_cookie echo_sess
		user_from whoami /api/me user
		strip_header Authorization X-Api-Key
		strip_param auth_user auth_pass`)
	signed := e.newClient()
	if r := signed.postForm("/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}}); r.StatusCode != 303 {
		t.Fatalf("sign-in: %d %s", r.StatusCode, r.Body)
	}
	spellings := map[string]string{
		"X-Mfa-User": "admin", "x-mfa-user": "admin", "X_Mfa_User": "admin", "X-MFA-USER": "admin",
		"x_mfa_user": "admin", "X-Mfa_User": "admin", "X-Mfa-Aal": "2", "x_mfa_aal": "2", "X_MFA_AAL": "3",
		"Authorization": "Basic YWRtaW46eA==", "X-Api-Key": "k",
	}
	send := func(t *testing.T, cookie string) echoed {
		t.Helper()
		req, _ := http.NewRequest("GET", e.Base+"/echo?keep=1&auth_user=admin&auth_pass=x", nil)
		for k, v := range spellings {
			req.Header[k] = []string{v} // sent as spelled
		}
		if cookie != "" {
			req.Header["Cookie"] = []string{cookie}
		}
		r := e.rawReq(req)
		if r.StatusCode != 200 {
			t.Fatalf("echo: %d %s", r.StatusCode, r.Body)
		}
		var got echoed
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
			t.Fatalf("echo body: %v", err)
		}
		return got
	}
	trusted := func(k string) bool {
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		return n == "x-mfa-user" || n == "x-mfa-aal"
	}
	t.Run("anonymous", func(t *testing.T) {
		got := send(t, "")
		for k, v := range got.Headers {
			if trusted(k) {
				t.Errorf("upstream saw client-sent %s: %q", k, v)
			}
		}
		checkStripped(t, got)
	})
	t.Run("signed in", func(t *testing.T) {
		got := send(t, signed.cookieHeader())
		for k, v := range got.Headers {
			switch {
			case k == "X-Mfa-User":
				if len(v) != 1 || v[0] != "alice" {
					t.Errorf("X-Mfa-User %q, want [alice]", v)
				}
			case k == "X-Mfa-Aal":
				if len(v) != 1 || v[0] != "1" {
					t.Errorf("X-Mfa-Aal %q, want [1]", v)
				}
			case trusted(k):
				t.Errorf("upstream saw client-sent %s: %q beside the gateway's", k, v)
			}
		}
		if got.Headers.Get("X-Mfa-User") != "alice" {
			t.Error("the gateway did not set X-Mfa-User")
		}
		if strings.Contains(got.Headers.Get("Cookie"), "mfa_session") {
			t.Errorf("the gateway cookie reached the upstream: %q", got.Headers.Get("Cookie"))
		}
		checkStripped(t, got)
	})
}

func checkStripped(t *testing.T, got echoed) {
	t.Helper()
	if got.Headers.Get("Authorization") != "" || got.Headers.Get("X-Api-Key") != "" {
		t.Errorf("stripped credential headers reached the upstream: %v", got.Headers)
	}
	q, _ := url.ParseQuery(got.Query)
	if q.Has("auth_user") || q.Has("auth_pass") || q.Get("keep") != "1" {
		t.Errorf("query at the upstream: %q", got.Query)
	}
}

// TestNextStaysSameOrigin: every `next` the gateway redirects to or renders
// is a same-origin path.
func TestNextStaysSameOrigin(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.enrolled("bob")
	c := e.newClient()
	c.signIn("alice", "alice-password")
	p := e.pending("bob")
	bad := []string{
		"//evil.example", "//evil.example/path", "https://evil.example", "http:evil.example",
		"/\\evil.example", "\\\\evil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "javascript:alert(1)",
		" //evil.example", "/\t/evil.example", "/\r\nLocation: http://evil.example", "evil.example",
		"//evil.example@127.0.0.1/", "/" + strings.Repeat("a", 5000),
	}
	for _, n := range bad {
		t.Run("active "+n, func(t *testing.T) {
			r := c.get("/_mfa/challenge?next=" + url.QueryEscape(n))
			if r.StatusCode != 303 || r.Location() != "/" {
				t.Fatalf("%d %q, want 303 to /", r.StatusCode, r.Location())
			}
		})
		t.Run("pending page "+n, func(t *testing.T) {
			for _, page := range []string{"/_mfa/challenge", "/_mfa/challenge/recovery"} {
				r := p.get(page + "?next=" + url.QueryEscape(n))
				if r.StatusCode != 200 {
					t.Fatalf("%s: %d", page, r.StatusCode)
				}
				if strings.Contains(r.Body, "evil.example") || strings.Contains(r.Body, "javascript:") {
					t.Fatalf("%s renders the foreign next", page)
				}
			}
		})
	}
	for _, n := range []string{"/", "/api/data", "/reports?x=1&y=2", "/a/b#frag"} {
		t.Run("kept "+n, func(t *testing.T) {
			r := c.get("/_mfa/challenge?next=" + url.QueryEscape(n))
			if r.StatusCode != 303 || r.Location() != n {
				t.Fatalf("%d %q, want 303 to %q", r.StatusCode, r.Location(), n)
			}
		})
	}
}

// otherFirst is token with its first character changed: a wrong token
// that differs from the right one whatever it starts with.
func otherFirst(token string) string {
	if token[0] == 'x' {
		return "y" + token[1:]
	}
	return "x" + token[1:]
}
