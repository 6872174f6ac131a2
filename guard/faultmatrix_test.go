package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mfagate/mfagate/demoapp"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/faultstore"
	"github.com/mfagate/mfagate/web"
)

// faultStack is the gateway in front of the demo app on loopback, on a
// bbolt file wrapped in a fault-injecting store.
type faultStack struct {
	t     *testing.T
	base  string
	store *faultstore.Store
	svc   *mfa.Service
	n     int // users handed out
}

const faultUsers = 400

func newFaultStack(t *testing.T) *faultStack {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := faultstore.New(db)
	// A short flush interval, so that refused deletions are retried soon.
	svc, err := mfa.Open(mfa.Options{Store: store, Key: make([]byte, 32), FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	users := map[string]string{}
	var admins []string
	for i := range faultUsers {
		u := fmt.Sprintf("u%03d", i)
		users[u] = u + "-password"
		admins = append(admins, u) // any user can act as the admin; the admin cases enrol theirs
	}
	cfg := minimalConfig()
	cfg.SignIn = pathMatcher{http.MethodPost, "/login"}
	cfg.SignOut = pathMatcher{http.MethodGet, "/logout"}
	cfg.AppCookies = []string{demoapp.DefaultCookieName}
	cfg.Identity = []IdentitySource{{Kind: FromWhoami, Path: "/api/me", Field: "user"}}
	cfg.Admins = admins
	cfg.Widget = &WidgetConfig{Match: pathMatcher{http.MethodGet, "/widget"}}
	gw, err := New(cfg, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := demoapp.DefaultOptions()
	opts.Users = users
	app := demoapp.New(opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The gateway answers every failure itself; an error left for
		// Caddy would reach the client as a bare 500.
		if err := gw.ServeHTTP(w, r, appNext{app}); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return &faultStack{t: t, base: srv.URL, store: store, svc: svc}
}

// user hands out a user no other case has touched (TOTP steps are fresh).
func (f *faultStack) user() string {
	f.t.Helper()
	if f.n == faultUsers {
		f.t.Fatal("out of users")
	}
	f.n++
	return fmt.Sprintf("u%03d", f.n-1)
}

type faultClient struct {
	f    *faultStack
	http *http.Client
	user string
}

type faultResp struct {
	status int
	body   string
	header http.Header
}

func (f *faultStack) client(user string) *faultClient {
	jar, _ := cookiejar.New(nil)
	return &faultClient{f: f, user: user, http: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *faultClient) do(method, path, contentType, body string) faultResp {
	c.f.t.Helper()
	req, err := http.NewRequest(method, c.f.base+path, strings.NewReader(body))
	if err != nil {
		c.f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.http.Do(req)
	if err != nil { // a panic in the handler closes the connection
		c.f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return faultResp{res.StatusCode, string(b), res.Header}
}

func (c *faultClient) api(path string, body any) faultResp {
	c.f.t.Helper()
	if body == nil {
		return c.do("GET", "/_mfa/api/v1/"+path, "", "")
	}
	b, _ := json.Marshal(body)
	return c.do("POST", "/_mfa/api/v1/"+path, "application/json", string(b))
}

func (c *faultClient) must(r faultResp, what string) faultResp {
	c.f.t.Helper()
	if r.status >= 400 {
		c.f.t.Fatalf("%s for %s: %d %s", what, c.user, r.status, r.body)
	}
	return r
}

func (c *faultClient) signIn() faultResp {
	c.f.t.Helper()
	c.do("GET", "/login", "", "")
	return c.do("POST", "/login", "application/x-www-form-urlencoded",
		url.Values{"username": {c.user}, "password": {c.user + "-password"}}.Encode())
}

// faultCode is the code an authenticator shows step periods from now.
func faultCode(secret string, step int) string {
	c, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(step)*30*time.Second))
	if err != nil {
		panic(err) // the secret came from the gateway
	}
	return c
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the form token from one of the gateway's pages.
func (c *faultClient) csrf(page string) string {
	c.f.t.Helper()
	m := csrfField.FindStringSubmatch(c.must(c.do("GET", "/_mfa/"+page, "", ""), page).body)
	if m == nil {
		c.f.t.Fatalf("no form token on %s", page)
	}
	return m[1]
}

// faultActor is a fixture made on a healthy store.
type faultActor struct {
	*faultClient
	secret string
	codes  []string
	target string // another user or session the action is aimed at
}

// The states an action's actor starts in.
func (f *faultStack) unenrolled() *faultActor {
	c := f.client(f.user())
	c.must(c.signIn(), "sign-in")
	return &faultActor{faultClient: c}
}

func (f *faultStack) settingUp() *faultActor {
	a := f.unenrolled()
	a.secret = a.must(a.api("totp/enroll", map[string]any{}), "enroll").json(f.t)["secret"].(string)
	return a
}

func (f *faultStack) unacknowledged() *faultActor {
	a := f.settingUp()
	r := a.must(a.api("totp/confirm", map[string]string{"code": faultCode(a.secret, 0)}), "confirm")
	for _, c := range r.json(f.t)["recovery_codes"].([]any) {
		a.codes = append(a.codes, c.(string))
	}
	return a
}

func (f *faultStack) enrolled() *faultActor {
	a := f.unacknowledged()
	a.must(a.api("recovery-codes/acknowledge", map[string]any{}), "acknowledge")
	return a
}

func (f *faultStack) pending() *faultActor {
	a := f.enrolled()
	p := &faultActor{faultClient: f.client(a.user), secret: a.secret, codes: a.codes}
	if r := p.signIn(); !strings.HasPrefix(r.header.Get("Location"), "/_mfa/challenge") {
		f.t.Fatalf("sign-in of enrolled %s: %d %q", a.user, r.status, r.header.Get("Location"))
	}
	for _, s := range f.svc.SessionList(a.user) {
		if s.State == "pending" {
			p.target = s.ID // for "Not you? Sign out"
		}
	}
	return p
}

// withOwnSession adds a second session of the actor's user as the target.
func (f *faultStack) withOwnSession() *faultActor {
	a := f.enrolled()
	b := f.client(a.user)
	b.signIn()
	b.must(b.api("challenge", map[string]string{"code": faultCode(a.secret, 1)}), "challenge")
	ss := f.svc.SessionList(a.user)
	newest := ss[0]
	for _, s := range ss {
		if s.Started.After(newest.Started) {
			newest = s
		}
	}
	a.target = newest.ID
	return a
}

// admin is an enrolled admin with another enrolled user as the target.
func (f *faultStack) admin() *faultActor {
	a := f.enrolled()
	a.target = f.enrolled().user
	return a
}

// changing is an enrolled user moving to a new authenticator app; target
// holds the new app's secret.
func (f *faultStack) changing() *faultActor {
	a := f.enrolled()
	a.target = a.must(a.api("totp/change", map[string]any{}), "change authenticator").json(f.t)["secret"].(string)
	return a
}

// adminWithSecret is an admin once a widget identity secret exists.
func (f *faultStack) adminWithSecret() *faultActor {
	a := f.admin()
	a.must(a.api("admin/identity/secret", map[string]any{}), "identity secret")
	return a
}

// adminOverSession is an admin aimed at another user's session.
func (f *faultStack) adminOverSession() *faultActor {
	a := f.enrolled()
	other := f.enrolled()
	a.target = f.svc.SessionList(other.user)[0].ID
	return a
}

func (r faultResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("not JSON (%d): %q", r.status, r.body)
	}
	return m
}

// faultCase is one request to the gateway: an API call, a page, a form
// post, or the app's own sign-in and sign-out.
type faultCase struct {
	name  string
	actor func(*faultStack) *faultActor
	// send makes the request; page is the gateway page with the form, for
	// the CSRF token (read before the fault is set).
	page string
	send func(a *faultActor, csrf string) faultResp
	// changes is false for requests that change nothing stored.
	changes bool
	// revokes marks the ending of a session: it holds in memory at once
	// whatever the store says, and the store is told again until it takes.
	revokes bool
	// signOut is the app's own sign-out: the app has ended its session, so
	// its answer goes through, and the gateway's session ends as a revoke.
	signOut bool
}

func apiCase(name string, actor func(*faultStack) *faultActor, body func(*faultActor) any) faultCase {
	return faultCase{name: "api " + name, actor: actor, changes: body != nil, send: func(a *faultActor, _ string) faultResp {
		if body == nil {
			return a.api(name, nil)
		}
		return a.api(name, body(a))
	}}
}

func formCase(path, page string, actor func(*faultStack) *faultActor, fields func(*faultActor) url.Values) faultCase {
	return faultCase{name: "form " + path, actor: actor, page: page, changes: true, send: func(a *faultActor, csrf string) faultResp {
		v := url.Values{}
		if fields != nil {
			v = fields(a)
		}
		v.Set("csrf", csrf)
		return a.do("POST", "/_mfa/"+path, "application/x-www-form-urlencoded", v.Encode())
	}}
}

func pageCase(path string, actor func(*faultStack) *faultActor) faultCase {
	return faultCase{name: "page " + path, actor: actor, send: func(a *faultActor, _ string) faultResp {
		return a.do("GET", "/_mfa/"+path, "", "")
	}}
}

func revoking(c faultCase) faultCase {
	c.revokes = true
	return c
}

func faultCases() []faultCase {
	type F = faultStack
	none := func(*faultActor) any { return map[string]any{} }
	code := func(a *faultActor) any { return map[string]string{"code": faultCode(a.secret, 1)} }
	user := func(a *faultActor) any { return map[string]string{"user": a.target} }
	sess := func(a *faultActor) any { return map[string]string{"session": a.target} }
	userForm := func(a *faultActor) url.Values { return url.Values{"user": {a.target}} }
	codeForm := func(a *faultActor) url.Values { return url.Values{"code": {faultCode(a.secret, 1)}} }
	sessForm := func(a *faultActor) url.Values { return url.Values{"session": {a.target}} }
	return []faultCase{
		// The app's sign-in: a new pending session (enrolled) or an active one.
		{name: "app sign-in, enrolled user", changes: true, actor: func(f *F) *faultActor {
			a := f.enrolled()
			return &faultActor{faultClient: f.client(a.user), secret: a.secret}
		}, send: func(a *faultActor, _ string) faultResp { return a.signIn() }},
		{name: "app sign-in, no factor", changes: true, actor: func(f *F) *faultActor {
			return &faultActor{faultClient: f.client(f.user())}
		}, send: func(a *faultActor, _ string) faultResp { return a.signIn() }},

		{name: "app sign-out", changes: true, revokes: true, signOut: true, actor: func(f *F) *faultActor {
			a := f.enrolled()
			a.target = f.svc.SessionList(a.user)[0].ID
			return a
		}, send: func(a *faultActor, _ string) faultResp { return a.do("GET", "/logout", "", "") }},
		apiCase("status", (*F).enrolled, nil),
		apiCase("sessions", (*F).enrolled, nil),
		apiCase("totp/enroll", (*F).unenrolled, none),
		apiCase("totp/confirm", (*F).settingUp, func(a *faultActor) any {
			return map[string]string{"code": faultCode(a.secret, 0)}
		}),
		apiCase("recovery-codes/acknowledge", (*F).unacknowledged, none),
		apiCase("recovery-codes/regenerate", (*F).enrolled, code),
		apiCase("totp/disable", (*F).enrolled, code),
		revoking(apiCase("sign-out", (*F).pending, none)),
		apiCase("totp/change", (*F).enrolled, none),
		apiCase("totp/change/confirm", (*F).changing, func(a *faultActor) any {
			return map[string]string{"code": faultCode(a.target, 0)}
		}),
		apiCase("challenge", (*F).pending, code),
		apiCase("challenge/recovery", (*F).pending, func(a *faultActor) any {
			return map[string]string{"recovery_code": a.codes[0]}
		}),
		revoking(apiCase("sessions/revoke", (*F).withOwnSession, sess)),
		revoking(apiCase("sessions/revoke-others", (*F).withOwnSession, none)),
		apiCase("admin/members", (*F).admin, nil),
		apiCase("admin/policy", (*F).admin, nil),
		apiCase("admin/sessions", (*F).admin, nil),
		apiCase("admin/audit", (*F).admin, nil),
		apiCase("admin/audit/export?format=csv", (*F).admin, nil),
		apiCase("admin/identity", (*F).admin, nil),
		apiCase("admin/reset", (*F).admin, user),
		apiCase("admin/unlock", (*F).admin, user),
		apiCase("admin/timeout", (*F).admin, func(*faultActor) any { return map[string]int{"minutes": 45} }),
		revoking(apiCase("admin/sessions/revoke", (*F).adminOverSession, sess)),
		apiCase("admin/identity/secret", (*F).admin, none),
		// Generating the secret turned monitor on: the change is to off.
		apiCase("admin/identity/mode", (*F).adminWithSecret, func(*faultActor) any { return map[string]string{"mode": "off"} }),

		pageCase("challenge", (*F).pending),
		pageCase("challenge/recovery", (*F).pending),
		pageCase("security", (*F).enrolled),
		pageCase("admin", (*F).admin),
		pageCase("admin/audit.jsonl", (*F).admin),
		pageCase("admin/audit.csv", (*F).admin),
		formCase("challenge", "challenge", (*F).pending, func(a *faultActor) url.Values {
			return url.Values{"code": {faultCode(a.secret, 1)}}
		}),
		formCase("challenge/recovery", "challenge/recovery", (*F).pending, func(a *faultActor) url.Values {
			return url.Values{"recovery_code": {a.codes[0]}}
		}),
		formCase("security/enroll", "security", (*F).unenrolled, nil),
		formCase("security/confirm", "security", (*F).settingUp, func(a *faultActor) url.Values {
			return url.Values{"code": {faultCode(a.secret, 0)}}
		}),
		formCase("security/acknowledge", "security", (*F).unacknowledged, func(*faultActor) url.Values {
			return url.Values{"saved": {"yes"}}
		}),
		formCase("security/regenerate", "security", (*F).enrolled, codeForm),
		formCase("security/disable", "security", (*F).enrolled, codeForm),
		revoking(formCase("sign-out", "challenge", (*F).pending, nil)),
		formCase("security/change", "security", (*F).enrolled, nil),
		formCase("security/change/confirm", "security", (*F).changing, func(a *faultActor) url.Values {
			return url.Values{"code": {faultCode(a.target, 0)}}
		}),
		revoking(formCase("security/sessions/revoke", "security", (*F).withOwnSession, sessForm)),
		revoking(formCase("security/sessions/revoke-others", "security", (*F).withOwnSession, nil)),
		formCase("admin/policy", "admin", (*F).admin, func(*faultActor) url.Values { return url.Values{"require_2fa": {"on"}} }),
		formCase("admin/timeout", "admin", (*F).admin, func(*faultActor) url.Values { return url.Values{"minutes": {"45"}} }),
		formCase("admin/reset", "admin", (*F).admin, userForm),
		formCase("admin/unlock", "admin", (*F).admin, userForm),
		revoking(formCase("admin/sessions/revoke", "admin", (*F).adminOverSession, sessForm)),
		formCase("admin/identity/secret", "admin", (*F).admin, nil),
		formCase("admin/identity/mode", "admin", (*F).adminWithSecret, func(*faultActor) url.Values { return url.Values{"mode": {"off"}} }),
	}
}

// snapshot is what a request under a fault must not change: the actor's
// status, every member's 2FA state, and the team policy.
func (a *faultActor) snapshot() string {
	f := a.f
	f.t.Helper()
	st := map[string]any{}
	if r := a.api("status", nil); r.status == 200 {
		st = r.json(f.t)
		delete(st, "idle_deadline") // moves with every request
	}
	members, err := f.svc.Members(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	policy, err := f.svc.Policy("default")
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal([]any{st, members, policy, f.svc.Identity.Mode()})
	return string(b)
}

// checkRevoked: the target session is gone from memory at once and, once
// the store takes writes again, from the store too (so a restart cannot
// bring it back).
func (a *faultActor) checkRevoked() {
	f := a.f
	f.t.Helper()
	for _, s := range f.svc.Sessions.Snapshot(func(*session.Session) bool { return true }) {
		if s.Key.String() == a.target {
			f.t.Fatalf("the revoked session %s still works", a.target)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f.store.View(f.t.Context(), func(tx storage.Tx) error {
			_, err := tx.Session(a.target)
			return err
		})
		if errors.Is(err, storage.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the revoked session is still stored after the store recovered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEveryActionUnderStoreFaults sends every API call, page, form and the
// app's sign-in while the store refuses writes, refuses reads, or is slow.
// Under a fault nothing answers 500 or panics, no app session cookie the
// gateway holds reaches the browser, and an answer is either an honest 503
// or (for reads and for writes that read nothing) a success; when writes
// are refused, every change answers 503 and nothing stored changed. A slow
// store changes only the time things take.
func TestEveryActionUnderStoreFaults(t *testing.T) {
	f := newFaultStack(t)
	f.store.SetDelay(50 * time.Millisecond)
	faults := []struct {
		name  string
		fault faultstore.Fault
	}{
		{"writes fail", faultstore.FailWrites},
		{"reads fail", faultstore.FailReads},
		{"slow writes", faultstore.SlowWrites},
	}
	for _, fl := range faults {
		for _, c := range faultCases() {
			t.Run(fl.name+"/"+c.name, func(t *testing.T) {
				f.t = t
				a := c.actor(f)
				csrf := ""
				if c.page != "" {
					csrf = a.csrf(c.page)
				}
				before := a.snapshot()
				f.store.Set(fl.fault)
				r := c.send(a, csrf)
				f.store.Set(0)
				if fl.fault == faultstore.SlowWrites {
					if r.status >= 400 {
						t.Fatalf("slow store: %d %s", r.status, r.body)
					}
					return
				}
				if r.status >= 400 && r.status != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want a success or 503: %s", r.status, r.body)
				}
				if r.status == http.StatusServiceUnavailable && !strings.Contains(r.body, web.ErrUnavailable.Message) {
					t.Fatalf("a 503 without the gateway's message: %q", r.body)
				}
				for _, line := range r.header["Set-Cookie"] {
					ck, err := http.ParseSetCookie(line)
					if err == nil && ck.Name == demoapp.DefaultCookieName && ck.Value != "" && ck.MaxAge >= 0 {
						t.Fatalf("the app's session cookie reached the browser under a store fault: %q", line)
					}
				}
				if fl.fault == faultstore.FailWrites && c.signOut {
					if r.status >= 400 {
						t.Fatalf("the app's sign-out was held back: %d", r.status)
					}
					a.checkRevoked()
					return
				}
				if fl.fault == faultstore.FailWrites && c.changes {
					if r.status != http.StatusServiceUnavailable {
						t.Fatalf("a change the store refused answered %d: %s", r.status, r.body)
					}
					if c.revokes {
						a.checkRevoked()
						return
					}
					if after := a.snapshot(); after != before {
						t.Fatalf("state changed under refused writes:\nbefore %s\nafter  %s", before, after)
					}
				}
			})
		}
	}
}
