package doctor

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
	"github.com/mfagate/mfagate/guard"
)

func ref(n int) Ref { return Ref{File: "Caddyfile", Line: n} }

// gw is a gateway block in front of the demo app, built up by options.
type gw struct{ Config }

func block(opts ...func(*gw)) Config {
	g := &gw{Config{BlockRef: ref(1), UpstreamRef: ref(20),
		SignIns:  []SignIn{{Match: Match{Methods: []string{"POST"}, Paths: []string{"/login"}, Ref: ref(2)}}},
		SignOuts: []Match{{Paths: []string{"/logout"}, Ref: ref(3)}},
		Cookies:  []Pattern{{Name: "demo_session", Ref: ref(4)}},
	}}
	for _, o := range opts {
		o(g)
	}
	return g.Config
}

func userFromSrc(s guard.IdentitySource) func(*gw) {
	return func(g *gw) {
		src := Source{IdentitySource: s, Ref: ref(5)}
		g.Identity = []Source{src}
		for i := range g.SignIns {
			g.SignIns[i].Identity = []Source{src}
		}
	}
}

var (
	whoami   = userFromSrc(guard.IdentitySource{Kind: guard.FromWhoami, Path: "/api/me", Field: "user"})
	formUser = userFromSrc(guard.IdentitySource{Kind: guard.FromForm, Name: "username"})
	jsonUser = userFromSrc(guard.IdentitySource{Kind: guard.FromJSON, Name: "username"})
	strip    = func(g *gw) {
		g.StripParams = []Param{{Name: "auth_user", Ref: ref(6)}, {Name: "auth_pass", Ref: ref(6)}}
		g.StripHeaders = []Param{{Name: "Authorization", Ref: ref(7)}}
	}
	fold       = func(g *gw) { g.NormalizeFold, g.NormalizeRef = true, ref(8) }
	cookieName = func(n string) func(*gw) {
		return func(g *gw) { g.Cookies = []Pattern{{Name: n, Ref: ref(4)}} }
	}
	success = func(kind string, statuses ...int) func(*gw) {
		return func(g *gw) {
			for i := range g.SignIns {
				g.SignIns[i].Success, g.SignIns[i].SuccessRef = guard.Success{Kind: kind, Statuses: statuses}, ref(9)
			}
		}
	}
	sharedPath = func(g *gw) {
		g.SignIns = []SignIn{{Match: Match{Methods: []string{"POST"}, Paths: []string{"/index.php"}, Ref: ref(2)},
			Field: &guard.Field{Name: "do", Value: "login"}, FieldRef: ref(10)}}
		g.SignOuts = []Match{{Paths: []string{"/index.php"}, Query: map[string][]string{"do": {"logout"}}, Ref: ref(3)}}
		g.Cookies = []Pattern{{Name: "SESS*", Ref: ref(4)}}
	}
	jsonSignIn = func(g *gw) {
		g.SignIns = []SignIn{{Match: Match{Methods: []string{"POST"}, Paths: []string{"/api/login"}, Ref: ref(2)}}}
	}
)

func shape(f func(*demoapp.Options)) demoapp.Options {
	o := demoapp.DefaultOptions()
	if f != nil {
		f(&o)
	}
	return o
}

// finding is one that a report must (or, with not, must not) have.
type finding struct {
	sev   Severity
	topic string
	text  string
	not   bool
}

func run1(t *testing.T, opts demoapp.Options, cfg Config, o Options) (*Report, error) {
	t.Helper()
	srv := httptest.NewServer(demoapp.New(opts))
	t.Cleanup(srv.Close)
	cfg.Upstream = srv.URL
	if o.User == "" {
		o.User, o.Password = "alice", "alice-password"
	}
	o.gap = time.Millisecond
	return Run(context.Background(), cfg, o)
}

// TestDemoShapes runs the doctor against each shape of the demo app, with
// a configuration that fits it and one that does not.
func TestDemoShapes(t *testing.T) {
	rotateOff := func(o *demoapp.Options) { o.Rotate = false }
	for _, tc := range []struct {
		name  string
		shape func(*demoapp.Options)
		cfg   Config
		want  Verdict
		finds []finding
	}{
		{"default, whoami", nil, block(whoami), Safe, []finding{
			{OK, "credentials", "gateway catches it: the new session cookie is held and whoami", false},
			{Warn, "", "", true}}},
		{"default, form user and strip", nil, block(formUser, strip), Safe, []finding{
			{OK, "credentials", "strip_param auth_user removes it", false}}},
		// The gateway refuses a new app session from a body it cannot
		// attribute, so credentials sent anywhere are caught even unstripped.
		{"default, form user, nothing stripped", nil, block(formUser), Safe, []finding{
			{OK, "credentials", "multipart body (auth_user=alice, auth_pass=****); the gateway catches it", false},
			{OK, "credentials", "GET /?auth_user=alice&auth_pass=****; the gateway catches it", false}}},
		{"default, wrong session_cookie", nil, block(whoami, cookieName("sid")), Unsafe, []finding{
			{Fail, "cookies", "sets demo_session, which looks like a session cookie, and no session_cookie pattern covers it", false}}},
		{"default, success status 200 for a 303", nil, block(whoami, success(guard.SuccessStatus, 200)), Unsafe, []finding{
			{Fail, "success", "success status does not hold for the right password (303)", false}}},
		{"failure sets cookie, whoami", func(o *demoapp.Options) { o.FailureSetsCookie = true }, block(whoami), Safe, []finding{
			{Info, "success", "answers a wrong password with 200 and a new session cookie", false},
			{OK, "success", "success whoami fails for a wrong password", false}}},
		{"failure sets cookie, success default", func(o *demoapp.Options) { o.FailureSetsCookie = true }, block(formUser, strip), Unsafe, []finding{
			{Fail, "success", "success default also holds for a wrong password (200)", false}}},
		{"folds names, form user", func(o *demoapp.Options) { o.FoldNames = true }, block(formUser, strip), Unsafe, []finding{
			{Fail, "identity", `the app folds user names (it signs "Alice" in with "alice"'s password)`, false}}},
		{"folds names, form user, normalize fold", func(o *demoapp.Options) { o.FoldNames = true }, block(formUser, strip, fold), Safe, []finding{
			{OK, "identity", "normalize_users fold makes them one user", false}}},
		{"folds names, whoami", func(o *demoapp.Options) { o.FoldNames = true }, block(whoami), Safe, []finding{
			{OK, "identity", `the app signs "Alice" in as "alice"`, false}}},
		{"in place, whoami", rotateOff, block(whoami), Safe, []finding{
			{Info, "rotation", "signs its pre-sign-in session (demo_session) in place", false}}},
		{"in place, form user", rotateOff, block(formUser, strip), SafeWarnings, []finding{
			{Warn, "rotation", "without a whoami or page source", false}}},
		{"shared path", func(o *demoapp.Options) { o.SharedPath, o.CookieDerived = true, true }, block(sharedPath, formUser, strip), Safe, []finding{
			{OK, "cookies", "covered by session_cookie SESS*", false},
			{OK, "sign-out", "deletes SESS", false}}},
		{"shared path, sign_in without its field", func(o *demoapp.Options) { o.SharedPath, o.CookieDerived = true, true },
			block(sharedPath, formUser, strip, func(g *gw) { g.SignIns[0].Field = nil }), Safe, []finding{
				{OK, "success", "holds for the right password", false}}},
		{"json sign-in", nil, block(jsonSignIn, jsonUser, strip), Safe, []finding{
			{OK, "identity", `JSON field username names "alice"`, false}}},
		{"json sign-in, form source", nil, block(jsonSignIn, formUser, strip), SafeWarnings, []finding{
			{Warn, "identity", "reads nothing for a good sign-in", false}}},
		{"csrf", func(o *demoapp.Options) { o.CSRF = true }, block(whoami), Safe, nil},
		{"csrf cookie", func(o *demoapp.Options) { o.CSRFCookie = true }, block(whoami), Safe, []finding{
			{Info, "cookies", "sets demo_csrf, not a session cookie", false}}},
		{"logout keeps cookie, form user", func(o *demoapp.Options) { o.LogoutKeepsCookie = true }, block(formUser, strip), SafeWarnings, []finding{
			{Warn, "sign-out", "deletes no cookie that session_cookie covers, and without a whoami the gateway cannot see it", false}}},
		{"logout keeps cookie, whoami", func(o *demoapp.Options) { o.LogoutKeepsCookie = true }, block(whoami), Safe, []finding{
			{OK, "sign-out", "the gateway sees it", false}}},
		{"logout token", func(o *demoapp.Options) { o.LogoutToken = true }, block(whoami), SafeWarnings, []finding{
			{Warn, "sign-out", "the app did not sign out on GET /logout (403)", false}}},
		{"no sign_out", nil, block(whoami, func(g *gw) { g.SignOuts = nil }), SafeWarnings, []finding{
			{Warn, "sign-out", "no sign_out", false}}},
		{"whoami that always names nobody", nil,
			block(userFromSrc(guard.IdentitySource{Kind: guard.FromWhoami, Path: "/api/me", Field: "nobody"})), Unsafe, []finding{
				{Fail, "identity", "still names nobody", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := run1(t, shape(tc.shape), tc.cfg, Options{})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var out strings.Builder
			if err := rep.Write(&out); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), "alice-password") {
				t.Fatalf("the report shows the password:\n%s", out.String())
			}
			if got := rep.Verdict(); got != tc.want {
				t.Errorf("verdict %q, want %q", got, tc.want)
			}
			for _, f := range tc.finds {
				has := hasFinding(rep, f)
				if has == f.not {
					t.Errorf("finding %+v: present %v", f, has)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", out.String())
			}
		})
	}
}

func hasFinding(rep *Report, f finding) bool {
	for _, x := range rep.Findings {
		if (f.topic == "" || x.Topic == f.topic) && strings.Contains(x.Text, f.text) && (x.Severity == f.sev || f.not && x.Severity >= f.sev) {
			return true
		}
	}
	return false
}

// TestFindingsNameTheLine: a problem names the line to change.
func TestFindingsNameTheLine(t *testing.T) {
	rep, err := run1(t, shape(nil), block(whoami, cookieName("sid")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.Severity == Fail && f.Topic == "cookies" {
			if f.Ref != ref(4) || !strings.Contains(f.Fix, "demo_session") {
				t.Errorf("cookie finding at %v, fix %q: want line 4 and demo_session", f.Ref, f.Fix)
			}
			return
		}
	}
	t.Fatalf("no cookie failure: %+v", rep.Findings)
}

// TestFindingsNameTheDirective: a configuration without lines (a running
// handler's) names the directive to change instead, in the report too.
func TestFindingsNameTheDirective(t *testing.T) {
	cfg := Config{BlockRef: Ref{Directive: "mfa_gateway"},
		SignIns:  []SignIn{{Match: Match{Methods: []string{"POST"}, Paths: []string{"/login"}, Ref: Ref{Directive: "sign_in POST /login"}}}},
		SignOuts: []Match{{Paths: []string{"/logout"}, Ref: Ref{Directive: "sign_out /logout"}}},
		Cookies:  []Pattern{{Name: "sid", Ref: Ref{Directive: "session_cookie sid"}}},
	}
	src := Source{IdentitySource: guard.IdentitySource{Kind: guard.FromWhoami, Path: "/api/me", Field: "user"}, Ref: Ref{Directive: "user_from whoami /api/me user"}}
	cfg.Identity, cfg.SignIns[0].Identity = []Source{src}, []Source{src}
	rep, err := run1(t, shape(nil), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[FAIL] cookies, session_cookie sid: the sign-in sets demo_session", "[ok] success, user_from whoami /api/me user: success whoami holds"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	for _, r := range []Ref{{}, {File: "Caddyfile"}} {
		if !r.IsZero() {
			t.Errorf("%+v is not zero", r)
		}
		if r.String() != "" {
			t.Errorf("%+v reads %q, want nothing", r, r.String())
		}
	}
	if (Ref{Directive: "success status 200"}).IsZero() {
		t.Error("a ref with a directive is zero")
	}
	if got := (Ref{File: "Caddyfile", Line: 4, Directive: "session_cookie sid"}).String(); got != "Caddyfile:4" {
		t.Errorf("a ref with a line reads %q, want the line", got)
	}
}

func TestBadInput(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		_, err := run1(t, shape(nil), block(whoami), Options{User: "alice", Password: "not-her-password"})
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "did not sign \"alice\" in") || strings.Contains(err.Error(), "not-her-password") {
			t.Fatalf("err %v: want a bad-input error that names the user, not the password", err)
		}
	})
	t.Run("wrong password, no whoami", func(t *testing.T) {
		_, err := run1(t, shape(nil), block(formUser), Options{User: "alice", Password: "not-her-password"})
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("err %v: want bad input", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cfg := block(whoami)
		cfg.Upstream = "http://" + addr
		_, err = Run(context.Background(), cfg, Options{User: "alice", Password: "alice-password", gap: time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err %v: want connection refused", err)
		}
	})
	t.Run("no sign-in", func(t *testing.T) {
		cfg := block(whoami)
		cfg.SignIns, cfg.Upstream = nil, "http://127.0.0.1:1"
		if _, err := Run(context.Background(), cfg, Options{User: "a", Password: "b"}); !errors.Is(err, ErrBadInput) {
			t.Fatalf("err %v: want bad input", err)
		}
	})
}

// TestBudget: the doctor stops at its request budget, and says so.
func TestBudget(t *testing.T) {
	rep, err := run1(t, shape(nil), block(whoami), Options{MaxRequests: 12})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests > 12 || !rep.Has(Warn, "doctor", "budget") || rep.Verdict() != SafeWarnings {
		t.Fatalf("requests %d, verdict %v, findings %+v", rep.Requests, rep.Verdict(), rep.Findings)
	}
}

// TestPace: requests are spaced by the rate.
func TestPace(t *testing.T) {
	p := &pacer{every: 20 * time.Millisecond, left: 3}
	start := time.Now()
	for range 3 {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("3 requests in %v: want at least 40ms", d)
	}
	if err := p.wait(context.Background()); !errors.Is(err, errBudget) {
		t.Errorf("fourth request: %v, want the budget error", err)
	}
}
