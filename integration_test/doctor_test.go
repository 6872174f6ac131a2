package integration_test

import (
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mfagate/mfagate/demoapp"
)

// `caddy mfa doctor`, end to end: the real binary, a Caddyfile on disk,
// the demo app or MediaWiki as the upstream.

var (
	doctorBinOnce sync.Once
	doctorBinPath string
	doctorBinErr  error
)

// doctorBin builds the caddy binary once for the doctor's tests.
func doctorBin(t *testing.T) string {
	t.Helper()
	doctorBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mfa-doctor-bin")
		if err != nil {
			doctorBinErr = err
			return
		}
		doctorBinPath = filepath.Join(dir, "caddy")
		if out, err := exec.Command("go", "build", "-o", doctorBinPath, "../cmd/caddy").CombinedOutput(); err != nil {
			doctorBinErr = fmt.Errorf("build caddy: %v\n%s", err, out)
		}
	})
	if doctorBinErr != nil {
		t.Fatal(doctorBinErr)
	}
	return doctorBinPath
}

// doctorRun writes the Caddyfile and runs the doctor; it returns stdout,
// stderr and the exit status.
func doctorRun(t *testing.T, caddyfile string, args ...string) (string, string, int) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(doctorBin(t), append([]string{"mfa", "doctor", "--config", file, "--rate", "20"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), status
}

// site is a Caddyfile with one site: the gateway block's lines, and a
// reverse_proxy to upstream (host:port).
func site(upstream, lines string) string {
	return "{\n\tadmin off\n}\n\nhttp://localhost:8080 {\n\tmfa_gateway {\n" + lines + "\t}\n\treverse_proxy " + upstream + "\n}\n"
}

// lineOf is the Caddyfile line number of the first line containing s.
func lineOf(t *testing.T, caddyfile, s string) int {
	t.Helper()
	for i, l := range strings.Split(caddyfile, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no %q in the Caddyfile", s)
	return 0
}

func demoUpstream(t *testing.T, f func(*demoapp.Options)) string {
	t.Helper()
	o := demoapp.DefaultOptions()
	if f != nil {
		f(&o)
	}
	srv := httptest.NewServer(demoapp.New(o))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

const (
	demoGood = "\t\tsign_in POST /login\n\t\tsign_out /logout\n\t\tsession_cookie demo_session\n\t\tuser_from whoami /api/me user\n"
	demoForm = "\t\tsign_in POST /login\n\t\tsign_out /logout\n\t\tsession_cookie demo_session\n\t\tuser_from form username\n" +
		"\t\tstrip_header Authorization\n\t\tstrip_param auth_user auth_pass\n"
)

// TestDoctorDemo runs the command against demo-app shapes with a right and
// a wrong configuration each: its verdict is its exit status, and a
// problem names the Caddyfile line to change.
func TestDoctorDemo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shape  func(*demoapp.Options)
		lines  string
		status int
		want   []string // in the report
		lineAt string   // the report names the line containing this
	}{
		{"default shape, the example's lines", nil, demoGood, 0, []string{"Verdict: safe (exit 0)", `whoami /api/me names "alice"`}, ""},
		{"default shape, session cookie misnamed", nil, strings.Replace(demoGood, "session_cookie demo_session", "session_cookie sid", 1), 2,
			[]string{"the sign-in sets demo_session, which looks like a session cookie, and no session_cookie pattern covers it", "Verdict: unsafe (exit 2)"}, "session_cookie sid"},
		// A body that gets a new app session back is refused without a
		// whoami, so credentials sent to any URL are caught unstripped.
		{"default shape, form user without strip", nil, "\t\tsign_in POST /login\n\t\tsign_out /logout\n\t\tsession_cookie demo_session\n\t\tuser_from form username\n", 0,
			[]string{"multipart body (auth_user=alice, auth_pass=****); the gateway catches it", "Verdict: safe (exit 0)"}, ""},
		{"folding app, form user", func(o *demoapp.Options) { o.FoldNames = true }, demoForm, 2,
			[]string{"the app folds user names"}, "user_from form username"},
		{"folding app, whoami", func(o *demoapp.Options) { o.FoldNames = true }, demoGood, 0, []string{`the app signs "Alice" in as "alice"`}, ""},
		{"wrong password sets a cookie, success default", func(o *demoapp.Options) { o.FailureSetsCookie = true }, demoForm, 2,
			[]string{"success default also holds for a wrong password"}, "sign_in POST /login"},
		{"wrong password sets a cookie, whoami", func(o *demoapp.Options) { o.FailureSetsCookie = true }, demoGood, 0, nil, ""},
		{"sign-out keeps the cookie, no whoami", func(o *demoapp.Options) { o.LogoutKeepsCookie = true }, demoForm, 1,
			[]string{"the app's sign-out deletes no cookie that session_cookie covers, and without a whoami the gateway cannot see it", "Verdict: safe with warnings (exit 1)"}, "sign_out /logout"},
		{"shared path", func(o *demoapp.Options) { o.SharedPath, o.CookieDerived = true, true },
			"\t\tsign_in {\n\t\t\tmethod POST\n\t\t\tpath /index.php\n\t\t}\n\t\tsign_in_field do login\n\t\tsign_out {\n\t\t\tpath /index.php\n\t\t\tquery do=logout\n\t\t}\n" +
				"\t\tsession_cookie SESS*\n\t\tuser_from form username\n\t\tstrip_header Authorization\n\t\tstrip_param auth_user auth_pass\n", 0,
			[]string{"covered by session_cookie SESS*"}, ""},
		{"json sign-in", nil, "\t\tsign_in POST /api/login\n\t\tsign_out /logout\n\t\tsession_cookie demo_session\n\t\tuser_from json username\n" +
			"\t\tstrip_header Authorization\n\t\tstrip_param auth_user auth_pass\n", 0, []string{"POST /api/login (json: password=****, username=alice)"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := site(demoUpstream(t, tc.shape), tc.lines)
			out, errOut, status := doctorRun(t, cf, "--user", "alice", "--password", "alice-password")
			if status != tc.status {
				t.Errorf("exit %d, want %d", status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the report lacks %q", w)
				}
			}
			if tc.lineAt != "" {
				if at := fmt.Sprintf("Caddyfile:%d", lineOf(t, cf, tc.lineAt)); !strings.Contains(out, at) {
					t.Errorf("the report does not name %s (%q)", at, tc.lineAt)
				}
			}
			if strings.Contains(out+errOut, "alice-password") {
				t.Error("the password is in the output")
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}

// TestDoctorBadInput: input the doctor cannot check with gets a message
// that says why, and exit status 3.
func TestDoctorBadInput(t *testing.T) {
	up := demoUpstream(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name      string
		caddyfile string
		args      []string
		want      *regexp.Regexp
	}{
		{"unreachable upstream", site(closed, demoGood), []string{"--user", "alice", "--password", "alice-password"}, regexp.MustCompile(`connection refused`)},
		{"wrong password", site(up, demoGood), []string{"--user", "alice", "--password", "not-alices"}, regexp.MustCompile(`did not sign "alice" in with the given password`)},
		{"no mfa_gateway at the site", site(up, demoGood) + "\nhttp://localhost:8081 {\n\treverse_proxy " + up + "\n}\n",
			[]string{"--site", "http://localhost:8081", "--user", "alice", "--password", "alice-password"}, regexp.MustCompile(`site http://localhost:8081 has no mfa_gateway`)},
		{"no such site", site(up, demoGood), []string{"--site", "example.com", "--user", "alice", "--password", "x"}, regexp.MustCompile(`no site "example.com"`)},
		{"does not parse", site(up, demoGood+"\t\tsession_cookie\n"), []string{"--user", "alice", "--password", "x"}, regexp.MustCompile(`does not load: .*Caddyfile:11`)},
		{"no password", site(up, demoGood), []string{"--user", "alice"}, regexp.MustCompile(`--password`)},
		{"json adapter", site(up, demoGood), []string{"--adapter", "json", "--user", "alice", "--password", "x"}, regexp.MustCompile(`only caddyfile`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, status := doctorRun(t, tc.caddyfile, tc.args...)
			if status != 3 || !tc.want.MatchString(errOut) {
				t.Errorf("exit %d, stderr %q: want 3 and %v", status, errOut, tc.want)
			}
			if strings.Contains(out+errOut, "alice-password") || strings.Contains(out+errOut, "not-alices") {
				t.Error("the password is in the output")
			}
		})
	}
}

// TestDoctorMediaWiki runs the command against MediaWiki (the same wiki
// thirdparty_test.go puts the gateway in front of): the tested block is
// safe; a block that misses the wiki's other session cookies, and one
// that names the user from the form field of a wiki that capitalises
// names, are not.
func TestDoctorMediaWiki(t *testing.T) {
	php := needMediaWiki(t)
	upstream := startMediaWiki(t, php, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	for _, tc := range []struct {
		name   string
		lines  string
		status int
		want   []string
		lineAt string
	}{
		{"the tested block", mwGateway, 0, []string{`names "Alice"`, "the app's sign-out deletes"}, ""},
		{"only wikidb_session", strings.Replace(mwGateway, "session_cookie wikidb_session wikidbUserID wikidbUserName wikidbToken", "session_cookie wikidb_session", 1), 2,
			[]string{"the sign-in sets wikidbUserID, which looks like a session cookie"}, "session_cookie wikidb_session"},
		{"user from the form field", strings.Replace(mwGateway, "user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name nobody_if query.userinfo.anon", "user_from form wpName", 1), 2,
			[]string{"the app folds user names"}, "user_from form wpName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := site(upstream, tc.lines)
			out, errOut, status := doctorRun(t, cf, "--user", "Alice", "--password", mwAlicePass)
			if status != tc.status {
				t.Errorf("exit %d, want %d", status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the report lacks %q", w)
				}
			}
			if tc.lineAt != "" {
				if at := fmt.Sprintf("Caddyfile:%d", lineOf(t, cf, tc.lineAt)); !strings.Contains(out, at) {
					t.Errorf("the report does not name %s (%q)", at, tc.lineAt)
				}
			}
			if strings.Contains(out+errOut, mwAlicePass) {
				t.Error("the password is in the output")
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}
