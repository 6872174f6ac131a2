package integration_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/mfagate/mfagate/demoapp"
)

// "Check this configuration" on the admin page, end to end: the real Caddy
// server with the module, the demo app behind reverse_proxy, a bbolt file,
// real HTTP on loopback. The doctor's requests must reach the app through
// the route after the gateway, carry nothing of the admin's request, and
// the password must be nowhere: not on the page, in the logs or the audit.

// seenRequest is one request the app received.
type seenRequest struct {
	method, path, agent, cookie, authorization, mfaUser string
}

// appLog records every request that reaches the app.
type appLog struct {
	mu   sync.Mutex
	reqs []seenRequest
	next http.Handler
}

func (l *appLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, seenRequest{r.Method, r.URL.Path, r.UserAgent(), r.Header.Get("Cookie"), r.Header.Get("Authorization"), r.Header.Get("X-Mfa-User")})
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

// since is what the app received from the mark on.
func (l *appLog) since(mark int) []seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenRequest(nil), l.reqs[mark:]...)
}

func (l *appLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// startDoctorEnv runs the demo app (recorded) and Caddy with the block,
// and Caddy's log at INFO and above in a file of its own.
func startDoctorEnv(t *testing.T, opts demoapp.Options, block string) (*env, *appLog, *httptest.Server, string) {
	t.Helper()
	return startDoctorEnvLog(t, opts, block, "INFO")
}

// startDoctorEnvLog is startDoctorEnv with the file's log level.
func startDoctorEnvLog(t *testing.T, opts demoapp.Options, block, level string) (*env, *appLog, *httptest.Server, string) {
	t.Helper()
	app := demoapp.New(opts)
	rec := &appLog{next: app}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	e := &env{
		t: t, App: app, AppURL: srv.URL, port: freePort(t),
		DBPath:   filepath.Join(dir, "mfagate.db"),
		upstream: strings.TrimPrefix(srv.URL, "http://"),
		global:   fmt.Sprintf("\tlog capture {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel %s\n\t}", logFile, level),
	}
	e.Base = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	e.load(block)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Logf("caddy stop: %v", err)
		}
	})
	return e, rec, srv, logFile
}

// doctorCheck posts the admin page's form.
func doctorCheck(t *testing.T, admin *client, user, password, wrong string) resp {
	t.Helper()
	page := admin.get("/_mfa/admin")
	if !strings.Contains(page.Body, `id="doctor-title">Check this configuration`) {
		t.Fatalf("the admin page (%d) has no configuration check: %.500s", page.StatusCode, adminVisibleText(page.Body))
	}
	v := url.Values{"csrf": {csrfOf(t, page)}, "user": {user}, "password": {password}}
	if wrong != "" {
		v.Set("wrong_password", wrong)
	}
	return admin.postForm("/_mfa/admin/doctor", v)
}

// doctorAudit is the doctor_run events, newest first.
func doctorAudit(t *testing.T, admin *client) []map[string]any {
	t.Helper()
	r := admin.api("admin/audit?type=doctor_run", nil)
	if r.StatusCode != 200 {
		t.Fatalf("audit: %d %s", r.StatusCode, r.Body)
	}
	var out []map[string]any
	for _, ev := range r.JSON(t)["events"].([]any) {
		out = append(out, ev.(map[string]any))
	}
	return out
}

// noSecret fails when a password is in any of the texts.
func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) || strings.Contains(text, url.QueryEscape(s)) {
			t.Errorf("%s has a password (%q)", what, s)
		}
	}
}

// TestDoctorAdminPageSafe: the example's configuration checks safe from
// the admin page, through the route after the gateway: the test account
// is enrolled, so a sign-in through the gateway would be held for its
// second factor and the check could not pass; the app sees none of the
// admin's cookies or headers; the run is audited and logged, and the
// password is nowhere.
func TestDoctorAdminPageSafe(t *testing.T) {
	e, app, _, logFile := startDoctorEnv(t, optsWith(manyUsers()), defaultGateway+"\t\tadmins admin\n")
	_, _, admin := e.enrolled("admin")
	_, _, carol := e.enrolled("carol") // the test account: through the gateway it would meet its challenge
	carol.get("/")
	signIns := func() int {
		r := admin.api("admin/audit?user=carol&type=sign_in", nil)
		return len(r.JSON(t)["events"].([]any))
	}
	before := signIns()
	adminApp := admin.cookie("demo_session")
	adminGW := admin.cookie("mfa_session")
	if adminApp == "" || adminGW == "" {
		t.Fatalf("the admin's cookies: app %q, gateway %q", adminApp, adminGW)
	}

	mark := app.mark()
	r := doctorCheck(t, admin, "carol", "carol-password", "")
	adminWantPage(t, "the check", r, 200, "Verdict: safe.", `<span class="badge badge-on">Safe</span>`, "Nothing to change.",
		`whoami /api/me names &#34;carol&#34;`, `value="carol"`, `name="password" id="doctor-password" value=""`)
	noSecret(t, "the result page", r.Body, "carol-password")

	sent := app.since(mark)
	if len(sent) < 10 {
		t.Fatalf("the app received %d requests during the check", len(sent))
	}
	for _, s := range sent {
		if s.agent != "mfagate-doctor" {
			t.Errorf("a request during the check not from the doctor: %+v", s)
			continue
		}
		if strings.Contains(s.cookie, adminApp) || strings.Contains(s.cookie, adminGW) || strings.Contains(s.cookie, "mfa_session") {
			t.Errorf("the admin's cookies reached the app: %+v", s)
		}
		if s.mfaUser != "" || (s.authorization != "" && !strings.HasPrefix(s.authorization, "Basic ")) {
			t.Errorf("a header of the admin's or the gateway's reached the app: %+v", s)
		}
	}
	if after := signIns(); after != before {
		t.Errorf("the gateway saw %d sign-ins of carol during the check: the requests passed the gateway", after-before)
	}

	evs := doctorAudit(t, admin)
	if len(evs) != 1 || evs[0]["actor"] != "admin" || evs[0]["subject"] != "carol" || evs[0]["detail"].(map[string]any)["result"] != "safe" {
		t.Errorf("doctor_run events %v, want one by admin for carol, safe", evs)
	}

	// The JSON twin runs the same check.
	j := admin.api("admin/doctor", map[string]any{"user": "carol", "password": "carol-password"})
	if j.StatusCode != 200 || j.JSON(t)["verdict"] != "safe" {
		t.Errorf("the API check: %d %.300s", j.StatusCode, j.Body)
	}
	noSecret(t, "the API answer", j.Body, "carol-password")

	// An empty password is refused before anything reaches the app.
	mark = app.mark()
	r = doctorCheck(t, admin, "carol", "", "")
	adminWantPage(t, "no password", r, 400, "Enter the test account&#39;s password.")
	if n := len(app.since(mark)); n != 0 {
		t.Errorf("a check without a password sent %d requests", n)
	}

	export := admin.get("/_mfa/admin/audit.jsonl")
	if export.StatusCode != 200 || !strings.Contains(export.Body, `"doctor_run"`) {
		t.Errorf("the audit export (%d) lacks the runs", export.StatusCode)
	}
	noSecret(t, "the audit log", export.Body, "carol-password")
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), `"configuration check"`) || !strings.Contains(string(logs), `"test_user":"carol"`) {
		t.Errorf("the log has no line of the check:\n%s", logs)
	}
	noSecret(t, "Caddy's log", string(logs), "carol-password")
}

// TestDoctorAdminPageUnsafe: an app whose wrong-password answer sets a
// session cookie, behind a block whose success rule (the default) that
// answer passes: the check from the admin page is unsafe, names the
// sign_in directive, and shows neither password. With the app gone, the
// page says the app could not be reached.
func TestDoctorAdminPageUnsafe(t *testing.T) {
	opts := optsWith(manyUsers())
	opts.FailureSetsCookie = true
	block := "\n\t\tsign_in POST /login\n\t\tsign_out /logout\n\t\tsession_cookie demo_session\n\t\tuser_from form username\n" +
		"\t\tstrip_header Authorization\n\t\tstrip_param auth_user auth_pass\n\t\tadmins admin\n"
	e, _, srv, logFile := startDoctorEnv(t, opts, block)
	_, _, admin := e.enrolled("admin")

	r := doctorCheck(t, admin, "dave", "dave-password", "not-daves-password")
	adminWantPage(t, "the check", r, 200, "Verdict: unsafe.", `<span class="badge badge-fail">`, `class="finding finding-fail"`,
		"success default also holds for a wrong password", "<code>sign_in POST /login</code>", "Fix: user_from whoami")
	noSecret(t, "the result page", r.Body, "dave-password", "not-daves-password")
	if evs := doctorAudit(t, admin); len(evs) != 1 || evs[0]["detail"].(map[string]any)["result"] != "unsafe" {
		t.Errorf("doctor_run events %v, want one, unsafe", evs)
	}

	srv.Close()
	r = doctorCheck(t, admin, "dave", "dave-password", "")
	adminWantPage(t, "the app gone", r, 502, "The app could not be reached through this gateway&#39;s route", "connection refused")
	noSecret(t, "the page without the app", r.Body, "dave-password")
	if evs := doctorAudit(t, admin); len(evs) != 2 || evs[0]["detail"].(map[string]any)["result"] != "app_unreachable" {
		t.Errorf("doctor_run events %v, want the newest app_unreachable", evs)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, "Caddy's log", string(logs), "dave-password", "not-daves-password")
}

// TestDoctorAdminPageDebugLog: with Caddy logging at DEBUG, the reverse
// proxy logs each round trip with its URL, and the check's query-string
// probe carries the password: the page refuses to run the check and says
// why, and the password stays out of the log.
func TestDoctorAdminPageDebugLog(t *testing.T) {
	e, app, _, logFile := startDoctorEnvLog(t, optsWith(manyUsers()), defaultGateway+"\t\tadmins admin\n", "DEBUG")
	_, _, admin := e.enrolled("admin")
	mark := app.mark()
	r := doctorCheck(t, admin, "carol", "carol-password", "")
	adminWantPage(t, "the check", r, 422, "The configuration could not be checked: Caddy logs at DEBUG")
	if n := len(app.since(mark)); n != 0 {
		t.Errorf("the refused check sent %d requests to the app", n)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, "Caddy's debug log", string(logs), "carol-password")
}
