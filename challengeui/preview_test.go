package challengeui

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWritePreview writes every page, as HTML, plus the assets into
// $MFA_PREVIEW_DIR so a person can open them in a browser:
//
//	MFA_PREVIEW_DIR=/tmp/mfa-preview go test ./challengeui -run TestWritePreview
//	open /tmp/mfa-preview/index.html
//
// Asset URLs are rewritten to relative ones so file:// works.
func TestWritePreview(t *testing.T) {
	dir := os.Getenv("MFA_PREVIEW_DIR")
	if dir == "" {
		t.Skip("set MFA_PREVIEW_DIR to write the preview pages")
	}
	const prefix = "/_mfa/"
	r := newTestRenderer(t, Options{Prefix: prefix, Issuer: "Demo Dashboard"})
	if err := os.MkdirAll(filepath.Join(dir, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(files, "assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := files.ReadFile("assets/" + e.Name())
		writeFile(t, filepath.Join(dir, "assets", e.Name()), string(b))
	}

	base := Base{CSRF: "preview-csrf", User: "alice@example.com"}
	codes := sampleCodes()
	setup := sampleSetup("")
	setup.QRDataURI = fakeQR(t)
	setupErr := *setup
	setupErr.Error = "That code didn't match. Check that the time on your phone is correct and try again."
	admin := sampleAdminPage(base)
	adminNewSecret := admin
	adminNewSecret.Notice = ""
	id := *admin.Identity
	id.NewSecret, id.PrevUntil = "ha_secret_Zq8vN3xK1mW7pR5tY2uB9cE4dF6gH0jLq2w3e4r5t6y7", t0.Add(24*time.Hour)
	id.Health, id.Failures, id.TopCauseWords, id.EnforceAllowed = "healthy", nil, "", true
	adminNewSecret.Identity = &id
	adminDoctor := admin
	adminDoctor.Notice = ""
	adminDoctor.Doctor = &DoctorView{User: "tester", Result: &DoctorResult{Verdict: "unsafe", Level: 2, Requests: 23, Findings: []DoctorFinding{
		{Severity: "ok", Topic: "identity", Text: "before sign-in, whoami /api/me names nobody", Where: "user_from whoami /api/me user"},
		{Severity: "fail", Topic: "cookies", Text: "the sign-in sets demo_session, which looks like a session cookie, and no session_cookie pattern covers it: it would reach the app without the gateway session", Where: "session_cookie sid", Fix: "add demo_session to session_cookie"},
		{Severity: "warn", Topic: "sign-out", Text: "the app's sign-out deletes no cookie that session_cookie covers, and without a whoami the gateway cannot see it", Where: "sign_out /logout", Fix: "sign_out_on_request, or user_from whoami <path> <field>"},
		{Severity: "info", Topic: "rotation", Text: "the app starts its session at sign-in (no session cookie before it)"},
	}, Exchanges: []DoctorExchange{{Label: "sign-in, right password", Request: "POST /login (form: password=****, username=tester)", Status: 303, Location: "/",
		Cookies: []string{"sets demo_session (HttpOnly): looks like a session cookie, not covered by session_cookie"}}}}}
	adminDoctorError := admin
	adminDoctorError.Notice = ""
	adminDoctorError.Doctor = &DoctorView{User: "tester", Error: "The app could not be reached through this gateway's route: GET /login: the handler after mfa_gateway failed (502): dial tcp 127.0.0.1:9080: connect: connection refused."}
	pages := []struct {
		file string
		page Page
	}{
		{"challenge", ChallengePage{Base: base, Next: "/dashboard"}},
		{"challenge-error", ChallengePage{Base: base, Next: "/dashboard", Error: "That code didn't work. Check your authenticator app and try again."}},
		{"recovery", RecoveryPage{Base: base, Next: "/dashboard"}},
		{"recovery-error", RecoveryPage{Base: base, Next: "/dashboard", Error: "That recovery code isn't valid or was already used."}},
		{"security-off", SecurityPage{Base: base, Next: "/dashboard"}},
		{"security-required", SecurityPage{Base: base, Required: true, MustEnrol: true, Next: "/dashboard"}},
		{"security-setup", SecurityPage{Base: base, Required: true, MustEnrol: true, Next: "/dashboard", Setup: setup}},
		{"security-setup-error", SecurityPage{Base: base, Next: "/dashboard", Setup: &setupErr}},
		{"security-codes", SecurityPage{Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 10, Next: "/dashboard",
			Codes: codes, DownloadHref: DownloadURL("Demo Dashboard recovery codes\n" + strings.Join(codes, "\n") + "\n")}},
		{"security-codes-error", SecurityPage{Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 10,
			Codes: codes, CodesError: "Confirm that you saved your recovery codes", DownloadHref: DownloadURL(strings.Join(codes, "\n"))}},
		{"security-on", SecurityPage{Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 8, Next: "/dashboard",
			Notice: "Two-factor authentication is on. You'll be asked for a code each time you sign in."}},
		{"security-on-aal1", SecurityPage{Base: base, Enrolled: true, RecoveryRemaining: 2, Next: "/dashboard",
			Error: "That action needs a fresh sign-in with your authenticator."}},
		{"security-sessions", SecurityPage{Base: Base{CSRF: base.CSRF, User: base.User, IsAdmin: true}, Enrolled: true, CanDisable: true,
			RecoveryRemaining: 8, Next: "/dashboard", Sessions: sampleSessions(base.User)}},
		{"admin", admin},
		{"admin-new-secret", adminNewSecret},
		{"admin-doctor", adminDoctor},
		{"admin-doctor-error", adminDoctorError},
		{"admin-empty", AdminPage{Base: Base{CSRF: base.CSRF, User: base.User, IsAdmin: true},
			Policy: PolicyView{GraceDays: 7, IdleMinutes: 240, Error: "The timeout must be between 5 and 1440 minutes."},
			Audit:  AuditView{Types: []string{"enrol", "challenge_failed"}},
			Identity: &IdentityView{Mode: "off", Health: "none", WidgetKey: "ab_live_7Qm2xV9kLp3RzT",
				GateError:     "Enforce needs at least one verified request in the last 24 hours and no failures.",
				EnforceReason: "No verified request in the last 24 hours yet."}}},
		{"error", ErrorPage{Base: base, Status: 403, Message: "Your sign-in expired. Sign in again to continue.", Href: "/login", LinkText: "Back to sign in"}},
	}
	var index bytes.Buffer
	index.WriteString("<!doctype html><meta charset=utf-8><title>mfagate preview</title><h1>mfagate preview</h1><ul>\n")
	for _, p := range pages {
		rec := httptest.NewRecorder()
		if err := r.Render(rec, 200, p.page); err != nil {
			t.Fatalf("%s: %v", p.file, err)
		}
		html := strings.ReplaceAll(rec.Body.String(), prefix+"assets/", "assets/")
		writeFile(t, filepath.Join(dir, p.file+".html"), html)
		fmt.Fprintf(&index, "<li><a href=%q>%s</a></li>\n", p.file+".html", p.file)
		if p.file == "admin" {
			// The reset confirmation as it looks after a click on "Reset 2FA".
			open := strings.Replace(html, `<details class="confirm">`, `<details class="confirm" open>`, 1)
			writeFile(t, filepath.Join(dir, "admin-confirm.html"), open)
			fmt.Fprintf(&index, "<li><a href=%q>%s</a></li>\n", "admin-confirm.html", "admin-confirm")
		}
	}
	index.WriteString("</ul>\n")
	writeFile(t, filepath.Join(dir, "index.html"), index.String())
	t.Logf("wrote %d pages to %s", len(pages), dir)
}

// fakeQR draws a QR-looking PNG (finder patterns and noise), enough to judge
// the layout without a QR encoder in the standard library.
func fakeQR(t *testing.T) template.URL {
	t.Helper()
	const n, scale = 29, 6
	img := image.NewGray(image.Rect(0, 0, n*scale, n*scale))
	seed := uint32(2463534242)
	dark := func(x, y int) bool {
		for _, c := range [][2]int{{0, 0}, {n - 7, 0}, {0, n - 7}} {
			dx, dy := x-c[0], y-c[1]
			if dx >= -1 && dx <= 7 && dy >= -1 && dy <= 7 {
				if dx < 0 || dy < 0 || dx > 6 || dy > 6 {
					return false
				}
				ring := dx == 0 || dy == 0 || dx == 6 || dy == 6
				core := dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4
				return ring || core
			}
		}
		seed ^= seed << 13
		seed ^= seed >> 17
		seed ^= seed << 5
		return seed%2 == 0
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			c := color.Gray{Y: 255}
			if dark(x, y) {
				c = color.Gray{Y: 0}
			}
			for py := 0; py < scale; py++ {
				for px := 0; px < scale; px++ {
					img.SetGray(x*scale+px, y*scale+py, c)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
}
