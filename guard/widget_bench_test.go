package guard

// Benchmarks of widget traffic through (*Guard).ServeHTTP (issue 5,
// "fast on every widget request"), in Enforce mode, against the next
// handler alone (BenchmarkNextOnly / BenchmarkWidgetNextOnly):
//
//	go test -run='^$' -bench='Widget|NextOnly' -benchtime=2s ./gateway/
//
// BenchmarkWidgetServeHTTP minus BenchmarkWidgetNextOnly is the gateway's
// cost for a widget request whose token is already cached (the common case:
// a widget sends the same token until it expires);
// BenchmarkWidgetServeHTTPFreshToken is the same with a token never seen
// before on every request (one HS256 parse each).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mfagate/mfagate/identity"
)

// benchMintHS256 signs claims by hand (not with the verifier's library).
func benchMintHS256(tb testing.TB, secret string, claims map[string]any) string {
	tb.Helper()
	enc := base64.RawURLEncoding
	p, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(head))
	return head + "." + enc.EncodeToString(m.Sum(nil))
}

// widgetFixture is the bench fixture's mfa.Service with a second Gateway whose
// config has a widget block (match /widget/*, defaults otherwise), an
// identity secret, verified traffic to open the gate, and Enforce on.
type widgetFixture struct {
	*benchFixture
	wgw    *Guard
	secret string
}

const benchWidgetUser = "user-8f3a2c"

func newWidgetFixture(tb testing.TB) *widgetFixture {
	tb.Helper()
	f := newBenchFixture(tb)
	cfg := Config{
		SignIn:     benchMatch{caddyhttp.MatcherSet{caddyhttp.MatchMethod{"POST"}, caddyhttp.MatchPath{"/login"}}},
		SignOut:    benchMatch{caddyhttp.MatcherSet{caddyhttp.MatchPath{"/logout"}}},
		AppCookies: []string{"demo_session"},
		Identity:   []IdentitySource{{Kind: FromWhoami, Path: "/api/me", Field: "user"}},
		Issuer:     "Demo Dashboard",
		Widget:     &WidgetConfig{Match: benchMatch{caddyhttp.MatcherSet{caddyhttp.MatchPath{"/widget/*"}}}},
	}
	wgw, err := New(cfg, f.rt, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	secret, err := f.rt.Identity.GenerateSecret(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	// The gate: verified traffic and no failure, then Enforce.
	tok := benchWidgetToken(tb, secret, "warm-up")
	if v, c, _ := f.rt.Identity.Check(tok, benchWidgetUser); v != identity.Verified {
		tb.Fatalf("warm-up token: %v %s", v, c)
	}
	if err := f.rt.Identity.SetMode(ctx, identity.Enforce); err != nil {
		tb.Fatalf("enforce: %v", err)
	}
	f.store.reset()
	return &widgetFixture{benchFixture: f, wgw: wgw, secret: secret}
}

// benchWidgetToken is a realistic widget token (about 230 bytes): sub, iat,
// exp in an hour, an email and a jti that makes it unique.
func benchWidgetToken(tb testing.TB, secret, jti string) string {
	now := time.Now()
	return benchMintHS256(tb, secret, map[string]any{
		"sub": benchWidgetUser, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": benchWidgetUser + "@example.com", "jti": jti,
	})
}

// widgetRequest is a widget API call from a customer's page: no gateway
// cookie, the claimed user in X-Widget-User-Id, the token as a Bearer.
func (f *widgetFixture) widgetRequest(token string) (*http.Request, []string) {
	u, _ := url.Parse("http://127.0.0.1:8080/widget/messages?conversation=42")
	r := (&http.Request{
		Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Host: u.Host, RequestURI: u.RequestURI(), RemoteAddr: "127.0.0.1:50000",
		Header: make(http.Header, 16), Body: http.NoBody,
	}).WithContext(f.ctx)
	for k, v := range browserHeaders {
		r.Header[k] = []string{v}
	}
	r.Header["X-Widget-User-Id"] = []string{benchWidgetUser}
	auth := []string{"Bearer " + token}
	r.Header["Authorization"] = auth
	return r, auth
}

// widgetNext stands for the widget API: a small JSON 200 that records the
// verdict it received.
type widgetNext struct{ verdict string }

var widgetBody = []byte(`{"messages":[{"id":1,"from":"agent","text":"Hi! How can we help?"}]}`)

func (a *widgetNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if v := r.Header["X-Widget-Identity"]; len(v) == 1 {
		a.verdict = v[0]
	} else {
		a.verdict = ""
	}
	w.Header()["Content-Type"] = appContentType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(widgetBody)
	return err
}

// serveWidget is one request through the widget gateway (in the measured
// loop: no tb.Helper).
func (f *widgetFixture) serveWidget(tb testing.TB, r *http.Request, w *discardWriter, next *widgetNext) {
	delete(r.Header, "X-Widget-Identity")
	w.reset()
	if err := f.wgw.ServeHTTP(w, r, next); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkWidgetNextOnly is the baseline for the widget benchmarks: the
// widget API handler alone with the same request and writer.
func BenchmarkWidgetNextOnly(b *testing.B) {
	f := newWidgetFixture(b)
	r, _ := f.widgetRequest(benchWidgetToken(b, f.secret, "next"))
	w := newDiscardWriter()
	next := &widgetNext{}
	b.ReportAllocs()
	for b.Loop() {
		delete(r.Header, "X-Widget-Identity")
		w.reset()
		if err := next.ServeHTTP(w, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWidgetServeHTTP: Enforce, the same valid token on every request
// (cached after the first).
func BenchmarkWidgetServeHTTP(b *testing.B) {
	f := newWidgetFixture(b)
	r, _ := f.widgetRequest(benchWidgetToken(b, f.secret, "cached"))
	w := newDiscardWriter()
	next := &widgetNext{}
	f.serveWidget(b, r, w, next)
	if w.status != http.StatusOK || next.verdict != "verified" {
		b.Fatalf("status %d, verdict %q; want 200 verified", w.status, next.verdict)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.serveWidget(b, r, w, next)
	}
	b.StopTimer()
	if w.status != http.StatusOK || next.verdict != "verified" {
		b.Fatalf("last request: status %d, verdict %q", w.status, next.verdict)
	}
	if v, u, bt := f.store.views.Load(), f.store.updates.Load(), f.store.batches.Load(); u != 0 {
		b.Fatalf("widget requests wrote to the store: %d View, %d Update, %d Batch", v, u, bt)
	}
}

// BenchmarkWidgetServeHTTPParallel: the cached case from every CPU, each
// goroutine a different widget client with its own token.
func BenchmarkWidgetServeHTTPParallel(b *testing.B) {
	f := newWidgetFixture(b)
	const clients = 256
	toks := make([]string, clients)
	for i := range toks {
		toks[i] = benchWidgetToken(b, f.secret, fmt.Sprintf("client-%d", i))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) % clients
		r, _ := f.widgetRequest(toks[i])
		w := newDiscardWriter()
		n := &widgetNext{}
		for pb.Next() {
			f.serveWidget(b, r, w, n)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// BenchmarkWidgetServeHTTPFreshToken: Enforce, a token never seen before on
// every request. The pool holds as many tokens as the verifier's cache;
// when it is used up, the cache is emptied (a mode round trip, outside the
// timer) before it is used again, so no request is a cache hit.
func BenchmarkWidgetServeHTTPFreshToken(b *testing.B) {
	f := newWidgetFixture(b)
	const pool = identity.DefaultCacheSize
	auth := make([]string, pool)
	for i := range auth {
		auth[i] = "Bearer " + benchWidgetToken(b, f.secret, fmt.Sprintf("fresh-%d", i))
	}
	b.Logf("token length %d", len(auth[0])-len("Bearer "))
	r, hdr := f.widgetRequest("unused")
	w := newDiscardWriter()
	next := &widgetNext{}
	ctx := context.Background()
	empty := func() {
		if err := f.rt.Identity.SetMode(ctx, identity.Monitor); err != nil {
			b.Fatal(err)
		}
		if err := f.rt.Identity.SetMode(ctx, identity.Enforce); err != nil {
			b.Fatal(err)
		}
	}
	empty()
	hdr[0] = auth[0]
	f.serveWidget(b, r, w, next)
	if w.status != http.StatusOK || next.verdict != "verified" {
		b.Fatalf("status %d, verdict %q; want 200 verified", w.status, next.verdict)
	}
	i, wraps := 1, 0
	b.ReportAllocs()
	for b.Loop() {
		if i == pool {
			b.StopTimer()
			empty()
			i = 0
			wraps++
			b.StartTimer()
		}
		hdr[0] = auth[i]
		i++
		f.serveWidget(b, r, w, next)
	}
	b.StopTimer()
	if w.status != http.StatusOK || next.verdict != "verified" {
		b.Fatalf("last request: status %d, verdict %q", w.status, next.verdict)
	}
	if wraps > 0 {
		b.Logf("token pool used %d times over (cache emptied between passes)", wraps+1)
	}
}

// BenchmarkWidgetServeHTTPRefused: Enforce, a claimed id without a token:
// the 403 answered by the gateway.
func BenchmarkWidgetServeHTTPRefused(b *testing.B) {
	f := newWidgetFixture(b)
	r, _ := f.widgetRequest("")
	delete(r.Header, "Authorization")
	w := newDiscardWriter()
	next := &widgetNext{}
	f.serveWidget(b, r, w, next)
	if w.status != http.StatusForbidden {
		b.Fatalf("status %d, want 403", w.status)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.serveWidget(b, r, w, next)
	}
}

// TestWidgetBenchFixture checks what the benchmarks measure: Enforce, a
// verified request passes with the verdict, a fresh token is verified, a
// wrong one refused, and no widget request touches the store.
func TestWidgetBenchFixture(t *testing.T) {
	f := newWidgetFixture(t)
	if m := f.rt.Identity.Mode(); m != identity.Enforce {
		t.Fatalf("mode %q, want enforce", m)
	}
	w := newDiscardWriter()
	next := &widgetNext{}
	r, hdr := f.widgetRequest(benchWidgetToken(t, f.secret, "a"))
	for i := 0; i < 100; i++ {
		hdr[0] = "Bearer " + benchWidgetToken(t, f.secret, fmt.Sprint("t", i%10))
		f.serveWidget(t, r, w, next)
		if w.status != http.StatusOK || next.verdict != "verified" {
			t.Fatalf("request %d: status %d verdict %q", i, w.status, next.verdict)
		}
	}
	hdr[0] = "Bearer " + benchMintHS256(t, f.secret, map[string]any{"sub": "someone-else", "exp": time.Now().Add(time.Hour).Unix()})
	next.verdict = "untouched"
	f.serveWidget(t, r, w, next)
	if w.status != http.StatusForbidden || next.verdict != "untouched" {
		t.Fatalf("user mismatch in enforce: status %d, next saw %q", w.status, next.verdict)
	}
	if v, u, bt := f.store.views.Load(), f.store.updates.Load(), f.store.batches.Load(); v+u+bt != 0 {
		t.Fatalf("widget requests touched the store: %d View, %d Update, %d Batch", v, u, bt)
	}
}
