package caddymodule

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mfagate/mfagate/doctor"
	"github.com/mfagate/mfagate/web"
)

// TestLiveDoctorConfig: the handler's own settings describe the same
// configuration to the doctor as the CLI reads from the Caddyfile: the
// same sign-ins with the same rules filled in, cookies, sources, strips
// and sign-outs, and the same items written or not. Instead of lines, each
// item names its directive.
func TestLiveDoctorConfig(t *testing.T) {
	const block = `mfa_gateway {
	sign_in {
		method POST
		path /index.php /index.php/*
	}
	sign_in POST /api/login {
		user_from json login
		success status 200
	}
	sign_in_field title Special:UserLogin
	sign_out /logout
	session_cookie wikidb_session
	session_cookie wikidbUserID
	user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name
	strip_param auth_pass
	strip_header Authorization
	normalize_users fold
	success redirect
}
`
	cf := "{\n\tadmin off\n}\n\nhttp://wiki.example {\n\troute {\n\t\t" + strings.ReplaceAll(strings.TrimSpace(block), "\n", "\n\t\t") + "\n\t\treverse_proxy localhost:9080\n\t}\n}\n"
	file, err := doctorConfig("Caddyfile", []byte(cf), "")
	if err != nil {
		t.Fatal(err)
	}
	var g Gateway
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	live, err := liveDoctorConfig(&g)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"sign-ins", written(live).SignIns, written(file).SignIns},
		{"sources", written(live).Identity, written(file).Identity},
		{"sign-outs", written(live).SignOuts, written(file).SignOuts},
		{"cookies", written(live).Cookies, written(file).Cookies},
		{"strip_header", written(live).StripHeaders, written(file).StripHeaders},
		{"strip_param", written(live).StripParams, written(file).StripParams},
		{"normalize", [3]any{live.NormalizeFold, live.SignOutOnReq, live.NormalizeRef.IsZero()}, [3]any{file.NormalizeFold, file.SignOutOnReq, file.NormalizeRef.IsZero()}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: live %+v\nCaddyfile %+v", tc.what, tc.got, tc.want)
		}
	}
	if len(live.SignIns) != 2 {
		t.Fatalf("sign-ins %+v", live.SignIns)
	}
	form, api := live.SignIns[0], live.SignIns[1]
	for _, tc := range []struct {
		ref  doctor.Ref
		want string
	}{
		{live.BlockRef, "mfa_gateway"},
		{form.Match.Ref, "sign_in POST /index.php /index.php/*"},
		{form.FieldRef, "sign_in_field title Special:UserLogin"},
		{api.Match.Ref, "sign_in POST /api/login"},
		{api.Identity[0].Ref, "user_from json login in sign_in POST /api/login"},
		{api.SuccessRef, "success status 200 in sign_in POST /api/login"},
		{live.Identity[0].Ref, "user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name"},
		{live.Cookies[1].Ref, "session_cookie wikidb_session wikidbUserID"},
		{live.SignOuts[0].Ref, "sign_out /logout"},
		{live.StripParams[0].Ref, "strip_param auth_pass"},
		{live.NormalizeRef, "normalize_users fold"},
	} {
		if tc.ref.String() != tc.want || tc.ref.Line != 0 {
			t.Errorf("ref %+v, want the directive %q", tc.ref, tc.want)
		}
	}
}

// written is cfg with each ref reduced to whether the item was written.
func written(cfg doctor.Config) doctor.Config {
	w := func(r *doctor.Ref) {
		if r.IsZero() {
			*r = doctor.Ref{}
		} else {
			*r = doctor.Ref{Directive: "written"}
		}
	}
	clone := func(srcs []doctor.Source) []doctor.Source {
		out := append([]doctor.Source(nil), srcs...)
		for i := range out {
			w(&out[i].Ref)
		}
		return out
	}
	cfg.SignIns = append([]doctor.SignIn(nil), cfg.SignIns...)
	for i := range cfg.SignIns {
		si := &cfg.SignIns[i]
		w(&si.Match.Ref)
		w(&si.FieldRef)
		w(&si.SuccessRef)
		si.Identity = clone(si.Identity)
	}
	cfg.Identity = clone(cfg.Identity)
	cfg.SignOuts = append([]doctor.Match(nil), cfg.SignOuts...)
	for i := range cfg.SignOuts {
		w(&cfg.SignOuts[i].Ref)
	}
	cfg.Cookies = append([]doctor.Pattern(nil), cfg.Cookies...)
	for i := range cfg.Cookies {
		w(&cfg.Cookies[i].Ref)
	}
	for _, ps := range []*[]doctor.Param{&cfg.StripHeaders, &cfg.StripParams} {
		*ps = append([]doctor.Param(nil), *ps...)
		for i := range *ps {
			w(&(*ps)[i].Ref)
		}
	}
	return cfg
}

// routeSeen is what the handler after the gateway saw of one request.
type routeSeen struct {
	method, uri, host, remote, body string
	header                          http.Header
	fresh                           bool // no value of the admin's request context
	replacer                        *caddy.Replacer
	tls                             bool
}

// TestDoctorRoute: the doctor's requests go to the handler after the
// gateway as requests of their own, with the site's host, and carry
// nothing of the admin's request: not its cookies, its Authorization, the
// gateway's identity headers, its context or its client certificate.
func TestDoctorRoute(t *testing.T) {
	var seen []routeSeen
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		seen = append(seen, routeSeen{method: r.Method, uri: r.RequestURI, host: r.Host, remote: r.RemoteAddr, body: string(b),
			header: r.Header.Clone(), fresh: r.Context().Value(doctorCtxKey{}) == nil && r.Context().Value(adminMark{}) == nil, replacer: repl, tls: r.TLS != nil})
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		if r.URL.Path == "/down" {
			return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
		}
		http.SetCookie(w, &http.Cookie{Name: "demo_session", Value: "new", HttpOnly: true})
		w.Header().Set("Location", "/")
		w.WriteHeader(http.StatusSeeOther)
		_, _ = io.WriteString(w, "signed in")
		return nil
	})
	m := &Gateway{}
	m.cfg.Prefix = "/_mfa/"
	srv := &caddyhttp.Server{}
	admin := httptest.NewRequest(http.MethodPost, "http://gw.example/_mfa/admin/doctor", strings.NewReader("user=tester"))
	admin.RemoteAddr = "203.0.113.9:5555"
	admin.Header.Set("Cookie", "mfa_session=admin-gateway-cookie; demo_session=admin-app-cookie")
	admin.Header.Set("Authorization", "Bearer admin-token")
	admin.Header.Set("X-Mfa-User", "root")
	adminRepl := caddy.NewReplacer()
	admin = caddyhttp.PrepareRequest(admin, adminRepl, httptest.NewRecorder(), srv)
	admin = admin.WithContext(context.WithValue(admin.Context(), adminMark{}, true))

	if got := m.withDoctorRoute(httptest.NewRequest(http.MethodGet, "http://gw.example/_mfa/admin", nil), next); got.Context().Value(doctorCtxKey{}) != nil {
		t.Error("a GET carries the route")
	}
	if got := m.withDoctorRoute(httptest.NewRequest(http.MethodPost, "http://gw.example/login", nil), next); got.Context().Value(doctorCtxKey{}) != nil {
		t.Error("a POST to the app carries the route")
	}
	admin = m.withDoctorRoute(admin, next)
	rt, ok := admin.Context().Value(doctorCtxKey{}).(*doctorRoute)
	if !ok {
		t.Fatal("a POST to the admin page does not carry the route")
	}
	// As the doctor's client sends it: its own jar's cookie, its URL on the site's host.
	req, _ := http.NewRequestWithContext(admin.Context(), http.MethodPost, "http://gw.example/login?x=1", strings.NewReader("username=tester"))
	req.Header.Set("Cookie", "demo_session=doctor-jar")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" || len(res.Cookies()) != 1 || res.Cookies()[0].Value != "new" || string(body) != "signed in" {
		t.Errorf("answer %d %v %q", res.StatusCode, res.Header, body)
	}
	if len(seen) != 1 {
		t.Fatalf("the route saw %d requests", len(seen))
	}
	s := seen[0]
	if s.method != "POST" || s.uri != "/login?x=1" || s.host != "gw.example" || s.remote != "203.0.113.9:5555" || s.body != "username=tester" || s.tls {
		t.Errorf("the route saw %+v", s)
	}
	if got := s.header.Get("Cookie"); got != "demo_session=doctor-jar" {
		t.Errorf("Cookie %q: want only the doctor's own", got)
	}
	for _, h := range []string{"Authorization", "X-Mfa-User"} {
		if v := s.header.Get(h); v != "" {
			t.Errorf("the admin's %s leaked: %q", h, v)
		}
	}
	if !s.fresh || s.replacer == nil || s.replacer == adminRepl {
		t.Errorf("not a request of its own: fresh context %v, replacer %p (the admin's %p)", s.fresh, s.replacer, adminRepl)
	}

	down, _ := http.NewRequestWithContext(admin.Context(), http.MethodGet, "http://gw.example/down", nil)
	if _, err := rt.RoundTrip(down); err == nil || !strings.Contains(err.Error(), "(502)") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a failing route: %v", err)
	}

	abort, _ := http.NewRequestWithContext(admin.Context(), http.MethodGet, "http://gw.example/abort", nil)
	if _, err := rt.RoundTrip(abort); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("an aborted answer: %v", err)
	}

	// Without a request through the handler there is no route: the run says so.
	if _, err := m.runDoctor(context.Background(), "tester", "pw", ""); !errors.Is(err, web.ErrDoctorInput) {
		t.Errorf("a run without a route: %v", err)
	}
}

type adminMark struct{}
