package guard

// Benchmarks of the per-request path (PRODUCT.md "Performance budgets"):
// the session check and the module's pass-through for a signed-in user,
// measured against the next handler alone. Compare
//
//	go test -run='^$' -bench=. -benchtime=2s ./gateway/
//
// BenchmarkServeHTTPPassThrough minus BenchmarkNextOnly is the gateway's
// cost on top of the app (budget: 3 µs, 10 allocations).

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// countingStore counts every transaction a mfa.Service starts.
type countingStore struct {
	storage.Store
	views, updates, batches atomic.Int64
}

func (s *countingStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

func (s *countingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

func (s *countingStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	s.batches.Add(1)
	return s.Store.Batch(ctx, fn)
}

func (s *countingStore) reset() {
	s.views.Store(0)
	s.updates.Store(0)
	s.batches.Store(0)
}

// benchMatch adapts Caddy matcher sets the way caddymodule's anyMatch does,
// so the sign-in and sign-out checks cost what they cost under Caddy.
type benchMatch caddyhttp.MatcherSets

func (m benchMatch) MatchWithError(r *http.Request) (bool, error) {
	return caddyhttp.MatcherSets(m).AnyMatchWithError(r)
}

// benchFixture is a gateway on a real bbolt mfa.Service with one signed-in
// (active, AAL2) user whose app cookie is bound to the session.
type benchFixture struct {
	gw    *Guard
	rt    *mfa.Service
	store *countingStore
	sess  *session.Session
	id    session.ID

	gwCookie  string // mfa_session=<signed value>
	appCookie string // demo_session=<bound value>
	ctx       context.Context
}

const (
	benchAppValue   = "3f8a1c0e9b7d4a6f2e5c8b1a0d9e7f6c"
	benchOtherValue = "0000000000000000aaaaaaaaaaaaaaaa" // an app cookie value bound to nothing
	benchFiller     = 10000                              // other live sessions in the table
)

func newBenchFixture(tb testing.TB) *benchFixture {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "mfagate.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	store := &countingStore{Store: db}
	rt, err := mfa.Open(mfa.Options{
		Store: store,
		Key:   bytes.Repeat([]byte{0x42}, 32),
		// The background flush is batched and off the request path; keep it
		// out of the per-request store count.
		FlushInterval: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rt.Close() })

	cfg := Config{
		SignIn:     benchMatch{caddyhttp.MatcherSet{caddyhttp.MatchMethod{"POST"}, caddyhttp.MatchPath{"/login"}}},
		SignOut:    benchMatch{caddyhttp.MatcherSet{caddyhttp.MatchPath{"/logout"}}},
		AppCookies: []string{"demo_session"},
		Identity:   []IdentitySource{{Kind: FromWhoami, Path: "/api/me", Field: "user"}},
		Issuer:     "Demo Dashboard",
	}
	gw, err := New(cfg, rt, nil)
	if err != nil {
		tb.Fatal(err)
	}

	// A realistic table: the user's session among many others.
	now := rt.Now()
	for i := range benchFiller {
		id := session.ID{0xff, byte(i), byte(i >> 8), byte(i >> 16)}
		s := &session.Session{Key: id.Key(), User: "filler", State: session.Active, AAL: 1,
			CreatedAt: now, AuthAt: now, ExpiresAt: now.Add(mfa.DefaultMaxLifetime)}
		s.SetLastSeen(now)
		rt.Sessions.Put(s)
	}

	// The signed-in session as a passed challenge leaves it: active, AAL2,
	// the app cookie bound.
	s := &session.Session{
		User: "alice", State: session.Active, AAL: 2,
		CreatedAt: now, AuthAt: now, ExpiresAt: now.Add(gw.cfg.MaxLifetime),
		RemoteAddr: "127.0.0.1", UserAgent: "bench",
	}
	s.SetBindings([]session.Binding{{Name: "demo_session", Hash: session.HashValue(benchAppValue)}})
	id, err := gw.realm.Start(context.Background(), nil, s, now)
	if err != nil {
		tb.Fatal(err)
	}
	value := gw.realm.CookieValue(id, s, now)

	store.reset()
	return &benchFixture{
		gw: gw, rt: rt, store: store, sess: s, id: id,
		gwCookie:  gw.cfg.CookieName + "=" + value,
		appCookie: "demo_session=" + benchAppValue,
		// Caddy puts a replacer in every request's context; its matchers need it.
		ctx: context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()),
	}
}

// benchRequest is one reusable request: reset() puts back the headers the
// gateway edits, without allocating, so each iteration sees the same input.
type benchRequest struct {
	r      *http.Request
	cookie []string // the Cookie header as the browser sent it; nil for none
	orig   string   // cookie[0], put back in case the gateway edits the slice in place
}

// browserHeaders are what a browser sends with a same-origin fetch, besides
// Cookie and Host.
var browserHeaders = map[string]string{
	"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Accept":          "application/json, text/plain, */*",
	"Accept-Language": "en-GB,en;q=0.7",
	"Accept-Encoding": "gzip, deflate, br",
	"Referer":         "http://127.0.0.1:8080/",
	"Sec-Fetch-Mode":  "cors",
}

func (f *benchFixture) request(cookie string) *benchRequest {
	u, _ := url.Parse("http://127.0.0.1:8080/api/data")
	r := (&http.Request{
		Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Host: u.Host, RequestURI: u.RequestURI(), RemoteAddr: "127.0.0.1:50000",
		Header: make(http.Header, 16), Body: http.NoBody,
	}).WithContext(f.ctx)
	for k, v := range browserHeaders {
		r.Header[k] = []string{v}
	}
	br := &benchRequest{r: r}
	if cookie != "" {
		br.cookie, br.orig = []string{cookie}, cookie
	}
	br.reset()
	return br
}

func (br *benchRequest) reset() {
	if br.cookie != nil {
		br.cookie[0] = br.orig
		br.r.Header["Cookie"] = br.cookie
	} else {
		delete(br.r.Header, "Cookie")
	}
	delete(br.r.Header, "X-Mfa-User")
	delete(br.r.Header, "X-Mfa-Aal")
}

// discardWriter is a reusable ResponseWriter that drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: make(http.Header, 4)} }

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// appHandler stands for the upstream: a small JSON 200. It records what it
// saw so tests and benchmarks can check the path they exercise.
type appHandler struct {
	user, aal, cookie string
}

var (
	appBody        = []byte(`{"user":"alice","visitors":1234,"signups":56,"revenue_cents":789000,"open_tickets":3}`)
	appContentType = []string{"application/json"}
)

func (a *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if v := r.Header["X-Mfa-User"]; len(v) > 0 {
		a.user = v[0]
	} else {
		a.user = ""
	}
	if v := r.Header["X-Mfa-Aal"]; len(v) > 0 {
		a.aal = v[0]
	} else {
		a.aal = ""
	}
	if v := r.Header["Cookie"]; len(v) > 0 {
		a.cookie = v[0]
	} else {
		a.cookie = ""
	}
	w.Header()["Content-Type"] = appContentType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(appBody)
	return err
}

// typicalCookie is a signed-in browser's Cookie header: the gateway cookie,
// the bound app cookie and two unrelated cookies.
func (f *benchFixture) typicalCookie() string {
	return "_ga=GA1.1.123456789.1700000000; " + f.gwCookie + "; " + f.appCookie + "; theme=dark"
}

const wantForwarded = "_ga=GA1.1.123456789.1700000000; demo_session=" + benchAppValue + "; theme=dark"

// serveOnce runs one request through the gateway and checks the outcome.
// serveOnce is in the measured loop: no tb.Helper (it walks the stack).
func serveOnce(tb testing.TB, f *benchFixture, br *benchRequest, w *discardWriter, app *appHandler) {
	br.reset()
	w.reset()
	if err := f.gw.ServeHTTP(w, br.r, app); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkSessionCheck(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	if cur := f.gw.lookup(br.r, f.gw.svc.Now()); cur.Session != f.sess || cur.Session.AAL != 2 || cur.Stale {
		b.Fatalf("lookup = %+v, want the AAL2 session, fresh", cur)
	}
	b.ReportAllocs()
	for b.Loop() {
		now := f.gw.svc.Now()
		cur := f.gw.lookup(br.r, now)
		if cur.Session == nil {
			b.Fatal("no session")
		}
		cur.Session.Touch(now)
	}
}

// BenchmarkSessionCheckParallel is the same check from every core at once:
// it shows what the table's RWMutex read lock costs under contention.
func BenchmarkSessionCheckParallel(b *testing.B) {
	f := newBenchFixture(b)
	cookie := []string{f.typicalCookie()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := &http.Request{Header: http.Header{"Cookie": cookie}}
		for pb.Next() {
			now := f.gw.svc.Now()
			cur := f.gw.lookup(r, now)
			if cur.Session == nil {
				b.Fatal("no session")
			}
			cur.Session.Touch(now)
		}
	})
}

// BenchmarkNextOnly is the baseline: the next handler alone, with the same
// request reset and writer as the gateway benchmarks.
func BenchmarkNextOnly(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	w := newDiscardWriter()
	app := &appHandler{}
	b.ReportAllocs()
	for b.Loop() {
		br.reset()
		w.reset()
		if err := app.ServeHTTP(w, br.r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkServeHTTPPassThrough(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	w := newDiscardWriter()
	app := &appHandler{}
	serveOnce(b, f, br, w, app)
	if app.user != "alice" || app.aal != "2" || app.cookie != wantForwarded || len(w.h["Set-Cookie"]) != 0 {
		b.Fatalf("app saw user=%q aal=%q cookie=%q; Set-Cookie %q", app.user, app.aal, app.cookie, w.h["Set-Cookie"])
	}
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, f, br, w, app)
	}
}

// BenchmarkServeHTTPPassThroughRestamp is a signed-in request whose cookie's
// idle deadline is due for re-stamping (about once a minute per browser).
func BenchmarkServeHTTPPassThroughRestamp(b *testing.B) {
	f := newBenchFixture(b)
	old := f.gw.realm.CookieValue(f.id, f.sess, f.rt.Now().Add(-2*time.Minute))
	br := f.request(f.gw.cfg.CookieName + "=" + old + "; " + f.appCookie)
	w := newDiscardWriter()
	app := &appHandler{}
	serveOnce(b, f, br, w, app)
	if app.user != "alice" || len(w.h["Set-Cookie"]) != 1 {
		b.Fatalf("app saw user=%q; Set-Cookie %q, want a re-stamped cookie", app.user, w.h["Set-Cookie"])
	}
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, f, br, w, app)
	}
}

// BenchmarkServeHTTPAnonymous is a request without any cookie.
func BenchmarkServeHTTPAnonymous(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request("")
	w := newDiscardWriter()
	app := &appHandler{}
	serveOnce(b, f, br, w, app)
	if app.user != "" || app.cookie != "" || w.status != http.StatusOK {
		b.Fatalf("app saw user=%q cookie=%q, status %d", app.user, app.cookie, w.status)
	}
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, f, br, w, app)
	}
}

// BenchmarkServeHTTPUnboundAppCookie is the strip path: an app cookie that
// is bound to no session reaching the gateway, without a gateway cookie and
// alongside a signed-in session it does not belong to.
func BenchmarkServeHTTPUnboundAppCookie(b *testing.B) {
	f := newBenchFixture(b)
	cases := []struct {
		name, cookie, wantUser string
	}{
		{"no-session", "_ga=GA1.1.123456789.1700000000; demo_session=" + benchOtherValue + "; theme=dark", ""},
		{"signed-in", "_ga=GA1.1.123456789.1700000000; " + f.gwCookie + "; demo_session=" + benchOtherValue + "; theme=dark", "alice"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			br := f.request(tc.cookie)
			w := newDiscardWriter()
			app := &appHandler{}
			serveOnce(b, f, br, w, app)
			if app.user != tc.wantUser || app.cookie != "_ga=GA1.1.123456789.1700000000; theme=dark" {
				b.Fatalf("app saw user=%q cookie=%q", app.user, app.cookie)
			}
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(b, f, br, w, app)
			}
		})
	}
}

// Parts of the pass-through, to attribute its cost.

func BenchmarkStripTrusted(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	b.ReportAllocs()
	for b.Loop() {
		f.gw.stripTrusted(br.r.Header)
	}
}

func BenchmarkRewriteCookies(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	b.ReportAllocs()
	for b.Loop() {
		br.reset()
		if sc := f.gw.jar.Rewrite(br.r, f.sess); len(sc.Forwarded) != 1 {
			b.Fatal("app cookie not forwarded")
		}
	}
}

func BenchmarkMatchSignInSignOut(b *testing.B) {
	f := newBenchFixture(b)
	br := f.request(f.typicalCookie())
	b.ReportAllocs()
	for b.Loop() {
		if s, err := f.gw.matchSignIn(br.r); s != nil || err != nil {
			b.Fatal("matched sign-in")
		}
		if ok, err := f.gw.cfg.SignOut.MatchWithError(br.r); ok || err != nil {
			b.Fatal("matched sign-out")
		}
	}
}

// TestPassThroughNoStoreAccess: the per-request path never touches the
// store, whatever the request carries.
func TestPassThroughNoStoreAccess(t *testing.T) {
	f := newBenchFixture(t)
	stale := f.gw.realm.CookieValue(f.id, f.sess, f.rt.Now().Add(-2*time.Minute))
	cases := []struct {
		name, cookie         string
		wantUser, wantCookie string
		wantSetCookie        int
	}{
		{"signed-in", f.typicalCookie(), "alice", wantForwarded, 0},
		{"signed-in restamp", f.gw.cfg.CookieName + "=" + stale + "; " + f.appCookie, "alice", f.appCookie, 1},
		{"anonymous", "", "", "", 0},
		{"unbound app cookie", "demo_session=" + benchOtherValue + "; theme=dark", "", "theme=dark", 0},
		{"signed-in unbound app cookie", f.gwCookie + "; demo_session=" + benchOtherValue, "alice", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.store.reset()
			br := f.request(tc.cookie)
			w := newDiscardWriter()
			app := &appHandler{}
			const n = 2000
			for range n {
				serveOnce(t, f, br, w, app)
				if app.user != tc.wantUser || app.cookie != tc.wantCookie || w.status != http.StatusOK ||
					len(w.h["Set-Cookie"]) != tc.wantSetCookie {
					t.Fatalf("app saw user=%q cookie=%q, status %d, Set-Cookie %q; want user=%q cookie=%q, %d Set-Cookie",
						app.user, app.cookie, w.status, w.h["Set-Cookie"], tc.wantUser, tc.wantCookie, tc.wantSetCookie)
				}
			}
			if v, u, bt := f.store.views.Load(), f.store.updates.Load(), f.store.batches.Load(); v+u+bt != 0 {
				t.Fatalf("%d requests made %d View, %d Update, %d Batch calls; want none", n, v, u, bt)
			}
		})
	}
	// The counter does see store access: the activity flush is one batch.
	f.store.reset()
	f.sess.Touch(f.rt.Now().Add(2 * time.Second))
	f.rt.FlushActivity()
	if got := f.store.batches.Load(); got != 1 {
		t.Fatalf("activity flush made %d Batch calls, want 1 (is the counter wired?)", got)
	}
}
