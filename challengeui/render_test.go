package challengeui

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testCSRF = "csrf-token-123"

func newTestRenderer(t *testing.T, opts Options) *Renderer {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "/auth/"
	}
	if opts.Issuer == "" {
		opts.Issuer = "Demo Dashboard"
	}
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// tinyPNG is a 1x1 PNG, enough for an <img> in tests.
const tinyPNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

func sampleCodes() []string {
	return []string{
		"h7kq-2m9x", "p3vd-8rwt", "c6nz-4fyb", "t2xj-9kqe", "w8mr-5hga",
		"b4uf-7ncs", "y9ek-3pdw", "r5ht-6vzm", "g2wq-8jxc", "n7cy-4ubf",
	}
}

func sampleSetup(errText string) *SetupView {
	return &SetupView{
		Secret:     "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
		OTPAuthURI: "otpauth://totp/Demo%20Dashboard:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Demo%20Dashboard",
		QRDataURI:  tinyPNG,
		Error:      errText,
	}
}

func TestRenderPages(t *testing.T) {
	r := newTestRenderer(t, Options{})
	base := Base{CSRF: testCSRF, User: "alice@example.com"}
	codes := sampleCodes()

	tests := []struct {
		name    string
		status  int
		page    Page
		want    []string
		notWant []string
	}{
		{
			name:   "challenge",
			status: http.StatusOK,
			page:   ChallengePage{Base: base, Account: "alice", Next: "/dash/home?tab=1"},
			want: []string{
				`<title>Two-factor authentication · Demo Dashboard</title>`,
				`Signing in as <strong>alice</strong>`,
				`action="/auth/sign-out" class="not-you"`, `Not you? <button type="submit" class="btn-link">Sign out</button>`,
				`action="/auth/challenge"`,
				`name="code" id="code" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9 \-]*" maxlength="12" autofocus required data-autosubmit`,
				`<label for="code">`,
				`<input type="hidden" name="next" value="/dash/home?tab=1">`,
				`href="/auth/challenge/recovery?next=%2Fdash%2Fhome%3Ftab%3D1">Use a recovery code</a>`,
				`>Verify</button>`,
			},
			notWant: []string{`role="alert"`, `aria-invalid`},
		},
		{
			name:   "challenge error",
			status: http.StatusUnauthorized,
			page:   ChallengePage{Base: base, Error: "That code didn't work. Try again."},
			want: []string{
				`role="alert" id="code-error">That code didn&#39;t work. Try again.</div>`,
				`aria-describedby="code-help code-error" aria-invalid="true"`,
				`href="/auth/challenge/recovery">Use a recovery code</a>`,
			},
			notWant: []string{`name="next"`},
		},
		{
			name:   "recovery",
			status: http.StatusOK,
			page:   &RecoveryPage{Base: base, Next: "/dash", Error: "That recovery code is not valid."},
			want: []string{
				`<title>Use a recovery code · Demo Dashboard</title>`,
				`action="/auth/challenge/recovery"`,
				`name="recovery_code" id="recovery_code" autocomplete="off" autocapitalize="none" spellcheck="false"`,
				`<label for="recovery_code">Recovery code</label>`,
				`turns off your current authenticator app`,
				`href="/auth/challenge?next=%2Fdash">Use your authenticator app</a>`,
				`role="alert" id="recovery-error"`,
				`aria-describedby="recovery-help recovery-note recovery-error"`,
			},
		},
		{
			name:   "security not enrolled",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, Next: "/dash"},
			want: []string{
				`<title>Security · Demo Dashboard</title>`,
				`<h1>Security</h1>`,
				`<span class="badge badge-off">Off</span>`,
				`action="/auth/security/enroll"`,
				`>Enable 2FA</button>`,
				`href="/dash"`, `Back to the app`,
			},
			notWant: []string{`<dialog`, `inert`, `security/disable`, `security/regenerate`, `requires two-factor`},
		},
		{
			name:   "security required, must enrol, setup open",
			status: http.StatusOK,
			page: SecurityPage{
				Base: base, Required: true, MustEnrol: true, Next: "/dash",
				Setup: sampleSetup("That code didn't match. Check the time on your phone."),
			},
			want: []string{
				`Your team requires two-factor authentication. Set it up to continue.`,
				`<div class="shell" inert>`,
				`<dialog open class="modal" aria-modal="true" aria-labelledby="setup-title"`,
				`<img class="qr" src="` + tinyPNG + `" alt="QR code for your authenticator app"`,
				"Enter this key by hand",
				`>JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP</code>`,
				`data-copy-target="totp-secret"`,
				`href="otpauth://totp/Demo%20Dashboard:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&amp;issuer=Demo%20Dashboard">Open in your authenticator app</a>`,
				`action="/auth/security/confirm"`,
				`name="code" id="setup-code" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9 \-]*" maxlength="12" autofocus required`,
				`role="alert" id="setup-code-error"`,
				`<p class="dialog-reason" role="status">Your team requires two-factor authentication.`,
				`action="/auth/sign-out"`,
				`aria-describedby="setup-code-help setup-code-error" aria-invalid="true"`,
				`finish setting up two-factor authentication before you can continue`,
			},
			notWant: []string{`Back to the app`, `>Enable 2FA</button>`, `data-cancel`, `>Cancel</a>`},
		},
		{
			name:   "security setup first visit",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, Setup: sampleSetup("")},
			want: []string{
				`name="code" id="setup-code" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9 \-]*" maxlength="12" required aria-describedby="setup-code-help">`,
				`Back to the app`,
				// Focus goes to the dialog's heading, not to the code box
				// (which would scroll a phone past the key).
				`<h2 id="setup-title" tabindex="-1" autofocus>`,
				`data-cancel="/auth/security#enable-btn"`, `>Cancel</a>`,
			},
			notWant: []string{`required autofocus`, `role="alert"`, `requires two-factor`},
		},
		{
			name:   "security codes dialog first visit",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, Enrolled: true, Codes: codes, DownloadHref: DownloadURL("x")},
			want: []string{
				`<input type="checkbox" name="saved" value="yes" id="saved" required>`,
				`download="recovery-codes.txt"`,
			},
			notWant: []string{`autofocus`, `role="alert"`},
		},
		{
			name:   "security codes dialog",
			status: http.StatusOK,
			page: SecurityPage{
				Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 10, Next: "/dash",
				Codes: codes, CodesError: "Confirm that you saved your recovery codes",
				DownloadHref: DownloadURL(strings.Join(codes, "\n")),
			},
			want: []string{
				`<div class="shell" inert>`,
				`<ol class="recovery-codes" id="recovery-codes"`,
				`<li><code class="recovery-code">h7kq-2m9x</code></li>`,
				`<li><code class="recovery-code">n7cy-4ubf</code></li>`,
				`data-copy-target="recovery-codes"`,
				`download="recovery-codes.txt" href="data:text/plain;charset=utf-8;base64,`,
				`<input type="checkbox" name="saved" value="yes" id="saved" required autofocus aria-invalid="true" aria-describedby="saved-error">`,
				`<label for="saved">I have saved my recovery codes in a safe place</label>`,
				`role="alert" id="saved-error">Confirm that you saved your recovery codes</div>`,
				`action="/auth/security/acknowledge"`,
				`>Done</button>`,
				`shown only once`, `Each code works only once.`,
			},
			notWant: []string{`security/confirm`},
		},
		{
			name:   "security enrolled, AAL2",
			status: http.StatusOK,
			page: SecurityPage{
				Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 7,
				Notice: "Two-factor authentication is on.",
			},
			want: []string{
				`<span class="badge badge-on">On</span>`,
				`<dt>Authenticator app</dt><dd>Set up</dd>`,
				`<dd>7 remaining</dd>`,
				`class="banner banner-info" role="status"><p>Two-factor authentication is on.</p>`,
				`href="/auth/security?confirm=regenerate" aria-describedby="regen-help">Regenerate recovery codes</a>`,
				`old codes stop working`,
				`href="/auth/security?confirm=disable" aria-describedby="disable-help">Disable 2FA</a>`,
				`action="/auth/security/change"`, `>Change authenticator app</button>`,
				`href="/"`,
			},
			notWant: []string{`disabled>`, `Sign in again with your authenticator`, `<dialog`, `security/enroll`, `id="no-authenticator"`},
		},
		{
			name:   "security enrolled, AAL1 cannot disable",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, Enrolled: true, RecoveryRemaining: 1, Error: "Something failed."},
			want: []string{
				`aria-describedby="disable-help disable-hint" disabled>Disable 2FA</button>`,
				`aria-describedby="regen-help" disabled>Regenerate recovery codes</button>`,
				`Sign in again with your authenticator to disable 2FA`,
				`Only 1 recovery code left.`,
				`role="alert" id="page-error"`,
			},
		},
		{
			name:   "security confirm dialog",
			status: http.StatusUnauthorized,
			page: SecurityPage{
				Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 10,
				Confirm: &ConfirmView{Action: "disable", Error: "That code is not valid."},
			},
			want: []string{
				`<div class="shell" inert>`,
				`Turn off two-factor authentication?`,
				`action="/auth/security/disable"`,
				`name="code" id="confirm-code"`,
				`required autofocus aria-invalid="true" aria-describedby="confirm-error"`,
				`role="alert" id="confirm-error">That code is not valid.</div>`,
				`>Turn off 2FA</button>`,
				`href="/auth/security#disable-btn">Cancel</a>`,
			},
		},
		{
			name:   "security change dialog",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 10, Change: sampleSetup("")},
			want: []string{
				`Change authenticator app</h2>`,
				`Your current app keeps working until then`,
				`action="/auth/security/change/confirm"`,
				`href="/auth/security#change-btn">Cancel</a>`,
			},
			notWant: []string{`action="/auth/security/confirm"`},
		},
		{
			name:   "security after a recovery code",
			status: http.StatusOK,
			page:   SecurityPage{Base: base, CanDisable: true, RecoveryRemaining: 9, Setup: sampleSetup("")},
			want: []string{
				`id="no-authenticator"`, `you signed in with a recovery code`, `(9 left, each works once)`,
				`<dd>Off: recovery codes only</dd>`,
				`>Not now</a>`,
			},
		},
		{
			name:   "error page",
			status: http.StatusForbidden,
			page:   ErrorPage{Base: Base{CSRF: testCSRF}, Status: 403, Message: "Your session expired.", Href: "/login", LinkText: "Sign in again"},
			want: []string{
				`<title>Forbidden · Demo Dashboard</title>`,
				`Error 403`,
				`Your session expired.`,
				`href="/login">Sign in again</a>`,
			},
			notWant: []string{`<form`},
		},
		{
			name:   "title override",
			status: http.StatusOK,
			page:   ChallengePage{Base: Base{CSRF: testCSRF, Title: "Verify it's you"}},
			want:   []string{`<title>Verify it&#39;s you · Demo Dashboard</title>`},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := r.Render(rec, tc.status, tc.page); err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkPageHeaders(t, rec, tc.status)
			body := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q", w)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(body, nw) {
					t.Errorf("body unexpectedly contains %q", nw)
				}
			}
			checkForms(t, body, "/auth/")
			checkNoInline(t, body, "/auth/")
		})
	}
}

func checkPageHeaders(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d", rec.Code, status)
	}
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

var (
	formRe      = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	actionRe    = regexp.MustCompile(`action="([^"]*)"`)
	scriptRe    = regexp.MustCompile(`(?s)<script\b([^>]*)>(.*?)</script>`)
	inlineEvtRe = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// checkForms: every form POSTs to a URL under the prefix and carries the CSRF
// token, except GET forms (the audit filter), which must not carry it: it
// would end up in the URL, the history and the logs.
func checkForms(t *testing.T, body, prefix string) {
	t.Helper()
	for _, m := range formRe.FindAllStringSubmatch(body, -1) {
		attrs, inner := m[1], m[2]
		a := actionRe.FindStringSubmatch(attrs)
		if a == nil || !strings.HasPrefix(a[1], prefix) {
			t.Errorf("form action not under %s: %s", prefix, attrs)
		}
		switch {
		case strings.Contains(attrs, `method="get"`):
			if strings.Contains(inner, `name="csrf"`) {
				t.Errorf("GET form %s carries the csrf token", attrs)
			}
		case !strings.Contains(attrs, `method="post"`):
			t.Errorf("form without method=post: %s", attrs)
		case !strings.Contains(inner, `<input type="hidden" name="csrf" value="`+testCSRF+`">`):
			t.Errorf("form %s lacks the csrf field", attrs)
		}
	}
	if strings.Count(body, "<form") != len(formRe.FindAllString(body, -1)) {
		t.Errorf("unbalanced <form> tags")
	}
}

// checkNoInline: scripts only reference the bundled asset; no inline script,
// style or event handlers, which the CSP would block anyway.
func checkNoInline(t *testing.T, body, prefix string) {
	t.Helper()
	scripts := scriptRe.FindAllStringSubmatch(body, -1)
	if len(scripts) != 1 || strings.Count(body, "<script") != 1 {
		t.Fatalf("want exactly one <script>, got %d", strings.Count(body, "<script"))
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], `src="`+prefix+`assets/mfa.js?v=`) || strings.TrimSpace(s[2]) != "" {
			t.Errorf("script is not the bundled asset: %s", s[0])
		}
	}
	for _, bad := range []string{"<style", ` style="`, "javascript:"} {
		if strings.Contains(body, bad) {
			t.Errorf("body contains %q", bad)
		}
	}
	if m := inlineEvtRe.FindString(body); m != "" {
		t.Errorf("inline event handler %q", m)
	}
	if !strings.Contains(body, `<link rel="stylesheet" href="`+prefix+`assets/mfa.css?v=`) {
		t.Errorf("stylesheet link missing")
	}
}

func TestRenderEscapesHostileInput(t *testing.T) {
	r := newTestRenderer(t, Options{})
	const (
		xssErr  = `<script>alert(1)</script>`
		xssUser = `"><img src=x onerror=alert(2)>`
		xssNext = `/dash?x="><script>alert(3)</script>`
	)
	b := Base{CSRF: `"><b>csrf`, User: xssUser}
	pages := map[string]Page{
		"challenge": ChallengePage{Base: b, Next: xssNext, Error: xssErr},
		"recovery":  RecoveryPage{Base: b, Next: xssNext, Error: xssErr},
		"security": SecurityPage{Base: b, Next: xssNext, Error: xssErr, Notice: xssErr, CodesError: xssErr,
			Codes: []string{xssErr}, Setup: sampleSetup(xssErr)},
		"setup":  SecurityPage{Base: b, Next: xssNext, Setup: &SetupView{Secret: xssErr, Error: xssErr}},
		"error":  ErrorPage{Base: b, Status: 400, Message: xssErr, Href: "javascript:alert(4)", LinkText: xssErr},
		"jsnext": SecurityPage{Base: b, Next: "javascript:alert(5)"},
	}
	for name, p := range pages {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := r.Render(rec, 200, p); err != nil {
				t.Fatal(err)
			}
			body := rec.Body.String()
			for _, raw := range []string{"<script>alert", "<img src=x", `"><b>`, `href="javascript:`} {
				if strings.Contains(body, raw) {
					t.Errorf("unescaped %q in body", raw)
				}
			}
			if strings.Count(body, "<script") != 1 {
				t.Errorf("extra <script> in body")
			}
		})
	}
	rec := httptest.NewRecorder()
	_ = r.Render(rec, 200, SecurityPage{Base: b, Next: "javascript:alert(5)"})
	if !strings.Contains(rec.Body.String(), `href="#ZgotmplZ"`) {
		t.Errorf("a javascript: next was not neutralised in the back link")
	}
	rec = httptest.NewRecorder()
	_ = r.Render(rec, 200, ChallengePage{Base: b, Next: xssNext, Error: xssErr})
	body := rec.Body.String()
	for _, w := range []string{
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`Signed in as <strong>&#34;&gt;&lt;img src=x onerror=alert(2)&gt;</strong>`,
		`<input type="hidden" name="next" value="/dash?x=&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;">`,
		`href="/auth/challenge/recovery?next=%2Fdash%3Fx%3D%22%3E%3Cscript%3Ealert%283%29%3C%2Fscript%3E"`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("body lacks escaped %q", w)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	dir := t.TempDir()
	// Parses fine, fails at execution: the field does not exist.
	writeFile(t, filepath.Join(dir, "error.html"), `{{define "content"}}<p>partial</p>{{.Page.NoSuchField}}{{end}}`)
	r := newTestRenderer(t, Options{TemplateDir: dir})

	tests := []struct {
		name string
		page Page
	}{
		{"exec error", ErrorPage{Status: 500}},
		{"nil pointer page", (*ChallengePage)(nil)},
		{"nil page", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := r.Render(rec, http.StatusOK, tc.page); err == nil {
				t.Fatal("Render returned no error")
			}
			if rec.Code != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control not no-store")
			}
			if strings.Contains(rec.Body.String(), "<") {
				t.Errorf("partial HTML written: %q", rec.Body.String())
			}
		})
	}
}

func TestNew(t *testing.T) {
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "challenge.html"), `{{define "content"}}{{.Oops}`)
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"default prefix", Options{Prefix: "/_mfa/"}, false},
		{"root prefix", Options{Prefix: "/"}, false},
		{"empty prefix", Options{}, true},
		{"no trailing slash", Options{Prefix: "/_mfa"}, true},
		{"relative", Options{Prefix: "_mfa/"}, true},
		{"missing override dir is fine", Options{Prefix: "/_mfa/", TemplateDir: filepath.Join(bad, "nope")}, false},
		{"broken override", Options{Prefix: "/_mfa/", TemplateDir: bad}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if (err != nil) != tc.wantErr {
				t.Errorf("New(%+v) error = %v, wantErr %v", tc.opts, err, tc.wantErr)
			}
		})
	}
}

func TestTemplateDirOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "error.html"), `{{define "content"}}<p id="custom">Custom: {{.Page.Message}}</p>{{end}}`)
	writeFile(t, filepath.Join(dir, "unrelated.html"), `{{ this is not parsed }`)
	r := newTestRenderer(t, Options{TemplateDir: dir})

	rec := httptest.NewRecorder()
	if err := r.Render(rec, http.StatusNotFound, ErrorPage{Status: 404, Message: "<gone>"}); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<p id="custom">Custom: &lt;gone&gt;</p>`) {
		t.Errorf("override not used: %s", body)
	}
	if !strings.Contains(body, `<link rel="stylesheet"`) || strings.Contains(body, "status-code") {
		t.Errorf("override should replace only the error page content")
	}

	rec = httptest.NewRecorder()
	if err := r.Render(rec, http.StatusOK, ChallengePage{Base: Base{CSRF: testCSRF}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Body.String(), `name="code"`) {
		t.Errorf("challenge page changed by an unrelated override")
	}
}

func TestDownloadURL(t *testing.T) {
	text := "Demo Dashboard recovery codes\nh7kq-2m9x\n<&>\n"
	u := string(DownloadURL(text))
	const pre = "data:text/plain;charset=utf-8;base64,"
	if !strings.HasPrefix(u, pre) {
		t.Fatalf("prefix: %q", u)
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(u, pre))
	if err != nil || string(got) != text {
		t.Errorf("round trip = %q, %v", got, err)
	}
}

func TestGroupSecret(t *testing.T) {
	for in, want := range map[string]string{"": "", "ABC": "ABC", "ABCD": "ABCD", "ABCDE": "ABCD E", "ABCDEFGH": "ABCD EFGH"} {
		if got := groupSecret(in); got != want {
			t.Errorf("groupSecret(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
