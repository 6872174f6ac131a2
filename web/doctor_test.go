package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage/bolt"
)

const doctorPassword = "Tr0ub4dor&3-secret"

// doctorStack is a site on a real bbolt service with a stand-in doctor.
type doctorStack struct {
	t     *testing.T
	site  *Site
	realm *mfa.Realm
	svc   *mfa.Service
	jar   *cookies.Jar
	logs  *observer.ObservedLogs
	calls atomic.Int32
	seen  chan [3]string // what the doctor was given
}

func newDoctorStack(t *testing.T, run func(ctx context.Context, user, password, wrong string) (*DoctorReport, error)) *doctorStack {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := mfa.Open(mfa.Options{Store: store, Key: bytes.Repeat([]byte{7}, 32), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	jar, err := cookies.NewJar("mfa_session", []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	realm, err := svc.Realm(mfa.Config{Scope: "default", Issuer: "Test", IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour,
		PendingTTL: 10 * time.Minute, MaxAttempts: 3, AttemptWindow: 15 * time.Minute, PolicyMaxAge: 5 * time.Minute,
		GracePeriod: mfa.DefaultGracePeriod, Classify: jar.Classify, Admins: []string{"root"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(realm.Release)
	st := &doctorStack{t: t, realm: realm, svc: svc, jar: jar, logs: logs, seen: make(chan [3]string, 16)}
	doc := func(ctx context.Context, user, password, wrong string) (*DoctorReport, error) {
		st.calls.Add(1)
		st.seen <- [3]string{user, password, wrong}
		return run(ctx, user, password, wrong)
	}
	if st.site, err = New(Config{Prefix: "/_mfa/", Issuer: "Test", Doctor: doc}, realm, jar, log); err != nil {
		t.Fatal(err)
	}
	return st
}

// signedIn starts an active session of user at aal: its cookie and CSRF token.
func (st *doctorStack) signedIn(user string, aal uint8) (cookie, csrf string) {
	st.t.Helper()
	now := st.svc.Now()
	s := &session.Session{User: user, State: session.Active, AAL: aal, CreatedAt: now, AuthAt: now, ExpiresAt: now.Add(time.Hour)}
	id, err := st.realm.Start(context.Background(), nil, s, now)
	if err != nil {
		st.t.Fatal(err)
	}
	return "mfa_session=" + st.realm.CookieValue(id, s, now), st.svc.CSRFToken(s)
}

// post sends a form or (json) a JSON body to rel under the prefix.
func (st *doctorStack) post(rel, cookie string, body string, json bool) *httptest.ResponseRecorder {
	st.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/_mfa/"+rel, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if json {
		r.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	w := httptest.NewRecorder()
	if err := st.site.Serve(w, r, rel, st.svc.Now()); err != nil {
		st.t.Fatalf("Serve: %v", err)
	}
	return w
}

func form(csrf, user, password string) string {
	v := url.Values{"user": {user}, "password": {password}}
	if csrf != "" {
		v.Set("csrf", csrf)
	}
	return v.Encode()
}

var unsafeReport = &DoctorReport{Verdict: "unsafe", Level: 2, Requests: 21, Findings: []DoctorFinding{
	{Severity: "fail", Topic: "cookies", Text: "the sign-in sets demo_session, which no session_cookie pattern covers", Where: "session_cookie sid", Fix: "add demo_session to session_cookie"},
}}

func reportWith(rep *DoctorReport) func(context.Context, string, string, string) (*DoctorReport, error) {
	return func(context.Context, string, string, string) (*DoctorReport, error) { return rep, nil }
}

// TestDoctorPageAuthorization: only an admin at AAL2, with the form's CSRF
// token and a user and password, gets a check run; everyone else gets the
// refusal of the other admin forms and the doctor never runs.
func TestDoctorPageAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name   string
		user   string
		aal    uint8
		csrf   bool
		body   func(csrf string) string
		status int
		text   string
		runs   bool
	}{
		{"not an admin", "alice", 2, true, func(c string) string { return form(c, "tester", doctorPassword) }, 403, "Only team admins can do this.", false},
		{"admin at AAL1", "root", 1, true, func(c string) string { return form(c, "tester", doctorPassword) }, 403, "two-factor authentication in this sign-in", false},
		{"no session", "", 0, false, func(string) string { return form("", "tester", doctorPassword) }, 401, "Sign in to the app first.", false},
		{"no CSRF token", "root", 2, false, func(string) string { return form("", "tester", doctorPassword) }, 403, "The form expired or came from another site.", false},
		{"wrong CSRF token", "root", 2, false, func(string) string { return form("forged", "tester", doctorPassword) }, 403, "The form expired or came from another site.", false},
		{"empty password", "root", 2, true, func(c string) string { return form(c, "tester", "") }, 400, "Enter the test account&#39;s password.", false},
		{"empty user", "root", 2, true, func(c string) string { return form(c, "  ", doctorPassword) }, 400, "Enter the user name of a test account of the app.", false},
		{"same wrong password", "root", 2, true, func(c string) string {
			return form(c, "tester", doctorPassword) + "&wrong_password=" + url.QueryEscape(doctorPassword)
		}, 400, "must differ", false},
		{"admin at AAL2", "root", 2, true, func(c string) string { return form(c, "tester", doctorPassword) }, 200, "Verdict: unsafe.", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newDoctorStack(t, reportWith(unsafeReport))
			var cookie, csrf string
			if tc.user != "" {
				cookie, csrf = st.signedIn(tc.user, tc.aal)
			}
			if !tc.csrf {
				csrf = ""
			}
			w := st.post("admin/doctor", cookie, tc.body(csrf), false)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.text) {
				t.Errorf("status %d, want %d with %q: %.800s", w.Code, tc.status, tc.text, w.Body.String())
			}
			if ran := st.calls.Load() > 0; ran != tc.runs {
				t.Errorf("the doctor ran: %v, want %v", ran, tc.runs)
			}
			if strings.Contains(w.Body.String(), doctorPassword) {
				t.Error("the page shows the password")
			}
		})
	}
}

// TestDoctorPageRun: a run by an admin at AAL2 gets the report on the
// page, is audited and logged without the password, and a run that could
// not be made says why with a 4xx or 502, never a 500.
func TestDoctorPageRun(t *testing.T) {
	leaky := errors.New("dial tcp 127.0.0.1:1: connect: connection refused (sent " + doctorPassword + ")")
	for _, tc := range []struct {
		name   string
		run    func(context.Context, string, string, string) (*DoctorReport, error)
		status int
		texts  []string
		result string
	}{
		{"unsafe", reportWith(unsafeReport), 200, []string{"Verdict: unsafe.", "<code>session_cookie sid</code>", "Fix: add demo_session to session_cookie", `value="tester"`}, "unsafe"},
		{"safe", reportWith(&DoctorReport{Verdict: "safe", Requests: 19}), 200, []string{"Verdict: safe.", "Nothing to change."}, "safe"},
		{"cannot check", func(context.Context, string, string, string) (*DoctorReport, error) {
			return nil, fmt.Errorf("%w: cannot check: the app did not sign \"tester\" in with the given password", ErrDoctorInput)
		}, 422, []string{"The configuration could not be checked: the app did not sign &#34;tester&#34; in with the given password."}, "cannot_check"},
		{"unreachable", func(context.Context, string, string, string) (*DoctorReport, error) { return nil, leaky }, 502,
			[]string{"The app could not be reached through this gateway&#39;s route: dial tcp 127.0.0.1:1: connect: connection refused (sent ****)"}, "app_unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newDoctorStack(t, tc.run)
			cookie, csrf := st.signedIn("root", 2)
			w := st.post("admin/doctor", cookie, form(csrf, " tester ", doctorPassword)+"&wrong_password=nope", false)
			body := w.Body.String()
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %.600s", w.Code, tc.status, body)
			}
			for _, s := range tc.texts {
				if !strings.Contains(body, s) {
					t.Errorf("the page lacks %q", s)
				}
			}
			if got := <-st.seen; got != [3]string{"tester", doctorPassword, "nope"} {
				t.Errorf("the doctor got %q", got)
			}
			if strings.Contains(body, doctorPassword) || strings.Contains(body, `value="nope"`) {
				t.Error("the page shows a password")
			}
			if !strings.Contains(body, `name="password" id="doctor-password" value=""`) {
				t.Error("the password field is not empty")
			}
			if err := st.svc.Audit.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			evs, _, err := st.svc.Audit.Query(context.Background(), audit.Filter{Type: audit.TypeDoctorRun}, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Actor != "root" || evs[0].Subject != "tester" || evs[0].Detail["result"] != tc.result {
				t.Errorf("audit events %+v, want one doctor_run by root for tester, result %s", evs, tc.result)
			}
			for _, e := range st.logs.All() {
				line := e.Message + fmt.Sprint(e.ContextMap())
				if strings.Contains(line, doctorPassword) {
					t.Errorf("a log line has the password: %s", line)
				}
			}
			if st.logs.FilterMessage("configuration check").FilterField(zap.String("result", tc.result)).Len() != 1 {
				t.Errorf("no log line of the check with result %s: %v", tc.result, st.logs.All())
			}
			for _, ev := range evs {
				if strings.Contains(fmt.Sprint(ev), doctorPassword) {
					t.Error("the audit event has the password")
				}
			}
		})
	}
}

// TestDoctorAPI: the JSON twin answers the report, or the public error.
func TestDoctorAPI(t *testing.T) {
	st := newDoctorStack(t, reportWith(unsafeReport))
	cookie, _ := st.signedIn("root", 2)
	body := func(v map[string]any) string { b, _ := json.Marshal(v); return string(b) }
	w := st.post("api/v1/admin/doctor", cookie, body(map[string]any{"user": "tester", "password": doctorPassword}), true)
	var rep DoctorReport
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &rep) != nil || rep.Verdict != "unsafe" || len(rep.Findings) != 1 || rep.Findings[0].Where != "session_cookie sid" {
		t.Errorf("run: %d %s", w.Code, w.Body.String())
	}
	for _, tc := range []struct {
		name   string
		cookie string
		body   string
		status int
		code   string
	}{
		{"no password", cookie, body(map[string]any{"user": "tester"}), 400, "bad_request"},
		{"password not a string", cookie, body(map[string]any{"user": "tester", "password": 7}), 400, "bad_request"},
		{"not an admin", func() string { c, _ := st.signedIn("alice", 2); return c }(), body(map[string]any{"user": "tester", "password": doctorPassword}), 403, "not_admin"},
		{"admin at AAL1", func() string { c, _ := st.signedIn("root", 1); return c }(), body(map[string]any{"user": "tester", "password": doctorPassword}), 403, "aal2_required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := st.post("api/v1/admin/doctor", tc.cookie, tc.body, true)
			var e struct{ Error string }
			if w.Code != tc.status || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error != tc.code {
				t.Errorf("%d %s, want %d %s", w.Code, w.Body.String(), tc.status, tc.code)
			}
		})
	}
	if n := st.calls.Load(); n != 1 {
		t.Errorf("the doctor ran %d times, want once", n)
	}
}

// TestDoctorLimits: one run at a time, and doctorPerWindow a minute; past
// that 429 with a message that says when to try again.
func TestDoctorLimits(t *testing.T) {
	release := make(chan struct{})
	var block atomic.Bool
	block.Store(true)
	st := newDoctorStack(t, func(ctx context.Context, _, _, _ string) (*DoctorReport, error) {
		if block.Load() {
			<-release
		}
		return &DoctorReport{Verdict: "safe"}, nil
	})
	cookie, csrf := st.signedIn("root", 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if w := st.post("admin/doctor", cookie, form(csrf, "tester", doctorPassword), false); w.Code != 200 {
			t.Errorf("the first run: %d", w.Code)
		}
	}()
	<-st.seen // the first run is in the doctor
	w := st.post("admin/doctor", cookie, form(csrf, "tester", doctorPassword), false)
	if w.Code != 429 || !strings.Contains(w.Body.String(), "A configuration check is already running.") {
		t.Errorf("a second run meanwhile: %d %.300s", w.Code, w.Body.String())
	}
	block.Store(false)
	close(release)
	wg.Wait()
	for i := 1; i < doctorPerWindow; i++ {
		if w := st.post("admin/doctor", cookie, form(csrf, "tester", doctorPassword), false); w.Code != 200 {
			t.Fatalf("run %d: %d", i+1, w.Code)
		}
	}
	w = st.post("admin/doctor", cookie, form(csrf, "tester", doctorPassword), false)
	if w.Code != 429 || !strings.Contains(w.Body.String(), "Too many configuration checks in the last minute.") || w.Header().Get("Retry-After") == "" {
		t.Errorf("run %d in a minute: %d, Retry-After %q: %.300s", doctorPerWindow+1, w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	if n := int(st.calls.Load()); n != doctorPerWindow {
		t.Errorf("the doctor ran %d times, want %d", n, doctorPerWindow)
	}
}

// TestDoctorGateWindow: starts older than the window no longer count.
func TestDoctorGateWindow(t *testing.T) {
	var g doctorGate
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for i := range doctorPerWindow {
		if e := g.enter(t0.Add(time.Duration(i) * time.Second)); e != nil {
			t.Fatalf("run %d: %v", i, e)
		}
		g.leave()
	}
	if e := g.enter(t0.Add(30 * time.Second)); e == nil || e.Code != "check_limited" || e.RetryAfter != 30*time.Second {
		t.Fatalf("a run within the minute: %+v", e)
	}
	if e := g.enter(t0.Add(doctorWindow)); e != nil {
		t.Fatalf("a run once the first start left the window: %v", e)
	}
}
