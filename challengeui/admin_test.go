package challengeui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/useragent"
)

const (
	uaChromeLinux  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefoxWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

var t0 = time.Date(2026, 11, 26, 14, 5, 0, 0, time.UTC)

func sampleSessions(user string) []SessionView {
	return []SessionView{
		{ID: "s-cur", User: user, Device: useragent.Describe(uaChromeLinux), Address: "203.0.113.7", Started: t0.Add(-3 * time.Hour), LastActive: t0, AAL: 2, Current: true},
		{ID: "s-phone", User: user, Device: useragent.Describe(uaSafariIPhone), Address: "198.51.100.23", Started: t0.Add(-50 * time.Hour), LastActive: t0.Add(-26 * time.Hour), AAL: 2},
		{ID: "s-old", User: user, Device: useragent.Describe(uaFirefoxWin), Address: "2001:db8::1f", Started: t0.Add(-8 * 24 * time.Hour), LastActive: t0.Add(-7 * 24 * time.Hour), AAL: 1},
	}
}

func sampleAdminPage(base Base) AdminPage {
	base.IsAdmin = true
	sessions := sampleSessions(base.User)
	sessions = append(sessions,
		SessionView{ID: "s-bob", User: "bob@example.com", Device: useragent.Describe("curl/8.5.0"), Address: "192.0.2.44", Started: t0.Add(-time.Hour), LastActive: t0.Add(-5 * time.Minute), AAL: 1},
		SessionView{ID: "s-carol", User: "carol.with.a.rather.long.address@support.example.com", Device: useragent.Describe("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15"), Address: "192.0.2.101", Started: t0.Add(-2 * time.Hour), LastActive: t0.Add(-time.Minute), AAL: 2},
	)
	return AdminPage{
		Base:            base,
		Notice:          "Session timeout saved: 120 minutes.",
		EmailConfigured: true,
		Policy: PolicyView{
			Scope: "agents", Require2FA: true, Since: t0.Add(-48 * time.Hour), GraceDays: 7,
			GraceEnds: t0.Add(5 * 24 * time.Hour), IdleMinutes: 120, Unenrolled: 2,
		},
		Members: []MemberView{
			{User: base.User, Email: "alice@example.com", Enrolled: true, Method: "Authenticator app", LastSignIn: t0.Add(-3 * time.Hour), Sessions: 3, Admin: true},
			{User: "bob@example.com", Email: "bob@example.com", Method: "—", LastSignIn: t0.Add(-time.Hour), Sessions: 1},
			{User: "carol.with.a.rather.long.address@support.example.com", Enrolled: true, Method: "Recovery codes only", LastSignIn: t0.Add(-2 * time.Hour), Sessions: 1},
			{User: "dave", Method: "—"},
		},
		Sessions: sessions,
		Audit: AuditView{
			Events: []AuditRow{
				{Time: t0, Type: "policy_change", Actor: base.User, Subject: "agents", Address: "203.0.113.7", UserAgent: uaChromeLinux, Detail: "require_2fa: off → on"},
				{Time: t0.Add(-time.Hour), Type: "challenge_failed", Actor: "bob@example.com", Subject: "bob@example.com", Address: "192.0.2.44", UserAgent: "curl/8.5.0", Detail: "wrong code (3 of 5 attempts)"},
				{Time: t0.Add(-2 * time.Hour), Type: "recovery_used", Actor: "carol.with.a.rather.long.address@support.example.com", Subject: "carol.with.a.rather.long.address@support.example.com", Address: "192.0.2.101", UserAgent: uaSafariIPhone, Detail: "authenticator removed; 9 recovery codes left"},
				{Time: t0.Add(-26 * time.Hour), Type: "session_revoked", Actor: base.User, Subject: "dave", Address: "203.0.113.7", UserAgent: uaFirefoxWin},
			},
			User: "bob@example.com", Type: "challenge_failed",
			Types:       []string{"enrol", "confirm", "challenge_passed", "challenge_failed", "recovery_used", "codes_regenerated", "disable", "lockout", "policy_change", "timeout_change", "admin_reset", "session_revoked", "forced_logout"},
			Next:        "1732629900000-17",
			ExportJSONL: "/_mfa/admin/audit.jsonl?type=challenge_failed&user=bob%40example.com",
			ExportCSV:   "/_mfa/admin/audit.csv?type=challenge_failed&user=bob%40example.com",
		},
		Identity: &IdentityView{
			Mode: "monitor", HasSecret: true, SecretCreated: t0.Add(-30 * time.Hour),
			WidgetKey: "ab_live_7Qm2xV9kLp3RzT", Health: "warning", LastVerified: t0.Add(-10 * time.Minute),
			Verified: 1843, Failures: []CauseCount{{Cause: "expired_token", Words: "expired token", N: 12}, {Cause: "missing_token", Words: "missing token", N: 3}},
			TopCauseWords: "expired token",
			EnforceReason: "Enforce needs 24 hours without identity failures; 15 were recorded in the last 24 hours.",
			Examples: []CodeExample{
				{Lang: "Node.js", Code: "import jwt from \"jsonwebtoken\";\n\nconst token = jwt.sign({ sub: user.id }, process.env.HALO_IDENTITY_SECRET, {\n  algorithm: \"HS256\",\n  expiresIn: \"1h\",\n});"},
				{Lang: "Python", Code: "import jwt, os, time\n\ntoken = jwt.encode({\"sub\": user.id, \"exp\": int(time.time()) + 3600},\n                   os.environ[\"HALO_IDENTITY_SECRET\"], algorithm=\"HS256\")"},
				{Lang: "Go", Code: "tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{\n\t\"sub\": user.ID,\n\t\"exp\": time.Now().Add(time.Hour).Unix(),\n})\ns, err := tok.SignedString(secret)"},
				{Lang: "PHP", Code: "use Firebase\\JWT\\JWT;\n\n$token = JWT::encode(['sub' => $user->id, 'exp' => time() + 3600], getenv('HALO_IDENTITY_SECRET'), 'HS256');"},
			},
		},
	}
}

func renderBody(t *testing.T, r *Renderer, p Page) string {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := r.Render(rec, http.StatusOK, p); err != nil {
		t.Fatalf("Render: %v", err)
	}
	checkPageHeaders(t, rec, http.StatusOK)
	// humanTime keeps dates together with no-break spaces; compare with plain ones.
	return strings.ReplaceAll(rec.Body.String(), "\u00a0", " ")
}

// formsByAction maps each form's action to its attributes and inner HTML.
func formsByAction(body string) map[string][]string {
	m := make(map[string][]string)
	for _, f := range formRe.FindAllStringSubmatch(body, -1) {
		if a := actionRe.FindStringSubmatch(f[1]); a != nil {
			m[a[1]] = append(m[a[1]], f[0])
		}
	}
	return m
}

func TestRenderAdminPage(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	p := sampleAdminPage(Base{CSRF: testCSRF, User: "alice@example.com"})
	body := renderBody(t, r, p)
	checkForms(t, body, "/_mfa/")
	checkNoInline(t, body, "/_mfa/")

	forms := formsByAction(body)
	wantForms := map[string]struct {
		n      int
		fields []string
	}{
		"/_mfa/admin/policy":             {1, []string{`name="scope" value="agents"`, `type="checkbox" name="require_2fa" value="on" id="require_2fa" checked`}},
		"/_mfa/admin/alerts":             {1, []string{`type="checkbox" name="alerts" id="alerts"`}},
		"/_mfa/admin/timeout":            {1, []string{`name="scope" value="agents"`, `type="number" name="minutes" id="minutes" min="5" max="1440" step="1" inputmode="numeric" required value="120"`}},
		"/_mfa/admin/reset":              {2, []string{`name="user" value="`}},
		"/_mfa/admin/sessions/revoke":    {4, []string{`name="session" value="s-`}},
		"/_mfa/admin/identity/secret":    {1, []string{`>Rotate secret</button>`}},
		"/_mfa/admin/identity/mode":      {1, []string{`name="mode" value="off"`, `name="mode" value="monitor" id="mode-monitor" checked`, `name="mode" value="enforce"`}},
		"/_mfa/admin#audit":              {1, []string{`name="user"`, `name="type"`}},
		"/_mfa/security/sessions/revoke": {0, nil},
	}
	for action, w := range wantForms {
		got := forms[action]
		if len(got) != w.n {
			t.Errorf("%d forms post to %s, want %d", len(got), action, w.n)
			continue
		}
		for _, f := range got {
			for _, field := range w.fields {
				if !strings.Contains(f, field) {
					t.Errorf("form %s lacks %q", action, field)
				}
			}
		}
	}
	if len(forms) != len(wantForms)-1 {
		t.Errorf("unexpected forms: %v", keys(forms))
	}
	// The current session has no Sign out button; the others each have one.
	for _, id := range []string{"s-phone", "s-old", "s-bob", "s-carol"} {
		if !strings.Contains(body, `name="session" value="`+id+`"`) {
			t.Errorf("no revoke form for %s", id)
		}
	}
	if strings.Contains(body, `value="s-cur"`) {
		t.Errorf("the current session has a revoke form")
	}

	for _, w := range []string{
		`<title>Team security · Demo Dashboard</title>`,
		`<body class="page-admin">`,
		`<a class="topbar-link" href="/_mfa/admin" aria-current="page">Team security</a>`,
		`<h1>Team security</h1>`,
		`href="#policy"`, `href="#members"`, `href="#sessions"`, `href="#audit"`, `href="#identity"`,
		`id="policy"`, `id="members"`, `id="sessions"`, `id="audit"`, `id="identity"`,
		`Require 2FA for everyone <span class="scope">· agents</span>`,
		`On since <time datetime="2026-11-24T14:05:00Z">24 Nov 2026, 14:05 UTC</time>`,
		`signed out on <time datetime="2026-12-01T14:05:00Z">1 Dec 2026, 14:05 UTC</time>`,
		`2 members have not set up 2FA yet.`,
		`Current sessions are not interrupted.`,
		`Members without 2FA get an email`,
		`signed out after 7 days`,
		`<td>15–60</td><td>High-security teams (finance, healthcare)</td>`,
		`<td>240 (4 hours)</td>`, `<td>1440 (24 hours)</td>`,
		`2FA not set up</span>`,
		`<span class="badge badge-neutral">Admin</span>`,
		`<details class="confirm">`,
		`Reset 2FA for <strong>alice@example.com</strong>? This deletes their authenticator and recovery codes, signs them out everywhere and emails them.`,
		`>Reset 2FA for alice@example.com</button>`,
		`<span class="tag tag-2fa">2FA</span>`, `<span class="tag">password</span>`,
		`Chrome on Linux <span class="badge badge-on">This device</span>`,
		`<option value="challenge_failed" selected>challenge_failed</option>`,
		`<option value="">All events</option>`,
		`name="user" id="audit-user" value="bob@example.com"`,
		`href="/_mfa/admin/audit.jsonl?type=challenge_failed&amp;user=bob%40example.com" download>JSON Lines</a>`,
		`href="/_mfa/admin/audit.csv?type=challenge_failed&amp;user=bob%40example.com" download>CSV</a>`,
		`href="/_mfa/admin?before=1732629900000-17&amp;type=challenge_failed&amp;user=bob%40example.com#audit">Older events`,
		`<span class="mono">203.0.113.7</span><span class="client" title="` + uaChromeLinux + `">Chrome on Linux</span>`,
		`class="health health-warning" role="status"`,
		`15 failures in the last 24 h. Most common: expired token.`,
		`<dt>Failed: expired token</dt><dd>12</dd>`,
		`Widget key <span class="muted">(public, identifies your workspace)</span>`,
		`<code class="secret-value" id="widget-key">ab_live_7Qm2xV9kLp3RzT</code>`,
		`Created <time datetime="2026-11-25T08:05:00Z">25 Nov 2026, 08:05 UTC</time>.`,
		`The previous one keeps working for 24 h`,
		`Reject authenticated widget requests without a valid token (403).`,
		`id="mode-enforce" disabled aria-describedby="mode-enforce-help mode-enforce-reason">`,
		`id="mode-enforce-reason">Enforce needs 24 hours without identity failures;`,
		`<details class="example" open>`,
		`<summary>Python</summary>`,
		`<pre tabindex="0"><code id="example-0">import jwt from &#34;jsonwebtoken&#34;;`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("admin page lacks %q", w)
		}
	}
	for _, nw := range []string{
		`id="new-secret"`, `won't be shown again`, `Generate identity secret`,
		`previous secret keeps working until`, `Emails are not configured`, `role="alert"`, `<dialog`, ` inert`,
	} {
		if strings.Contains(body, nw) {
			t.Errorf("admin page unexpectedly contains %q", nw)
		}
	}
	// Unenrolled members have no reset button.
	if strings.Contains(body, `name="user" value="bob@example.com"`) || strings.Contains(body, `name="user" value="dave"`) {
		t.Errorf("an unenrolled member has a reset form")
	}
}

func TestRenderAdminVariants(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	base := Base{CSRF: testCSRF, User: "alice@example.com"}
	full := sampleAdminPage(base)

	newSecret := full
	id := *full.Identity
	id.NewSecret = "ha_secret_Zq8vN3xK1mW7pR5tY2uB9cE4dF6gH0jL"
	id.PrevUntil = t0.Add(24 * time.Hour)
	id.Mode, id.Health, id.EnforceAllowed, id.Failures, id.TopCauseWords = "monitor", "healthy", true, nil, ""
	newSecret.Identity = &id

	gate := full
	gid := *full.Identity
	gid.HasSecret, gid.Health, gid.Verified, gid.Failures = false, "none", 0, nil
	gid.GateError = "Enforce needs at least one verified request in the last 24 hours."
	gate.Identity = &gid

	enforced := full
	eid := *full.Identity
	eid.Mode, eid.Health, eid.Failures = "enforce", "failing", []CauseCount{{Cause: "signature_mismatch", Words: "signature mismatch", N: 1}}
	eid.TopCauseWords = "signature mismatch"
	enforced.Identity = &eid

	tests := []struct {
		name    string
		page    Page
		want    []string
		notWant []string
	}{
		{
			name: "new secret shown once, enforce allowed",
			page: &newSecret,
			want: []string{
				`<div class="new-secret" id="new-secret">`,
				`Copy it now; it won't be shown again.`,
				`<code class="secret-value" id="identity-secret">ha_secret_Zq8vN3xK1mW7pR5tY2uB9cE4dF6gH0jL</code>`,
				`data-copy-target="identity-secret"`,
				`href="#new-secret"`,
				`The previous secret keeps working until <time datetime="2026-11-27T14:05:00Z">27 Nov 2026, 14:05 UTC</time>.`,
				`class="health health-healthy"`,
				`Verified requests are succeeding. Last verified request: <time datetime="2026-11-26T13:55:00Z">26 Nov 2026, 13:55 UTC</time>.`,
				`id="mode-enforce" aria-describedby="mode-enforce-help">`,
			},
			notWant: []string{`disabled`, `mode-enforce-reason`},
		},
		{
			name: "gate refused, no secret, no traffic",
			page: gate,
			want: []string{
				`<div class="alert alert-error" role="alert" id="gate-error"><p>Enforce needs at least one verified request in the last 24 hours.</p></div>`,
				`<fieldset class="options" aria-describedby="gate-error">`,
				`class="health health-none"`, `No widget traffic in the last 24 hours.`,
				`Not generated yet.`, `>Generate identity secret</button>`,
				`id="mode-enforce" disabled`,
			},
			notWant: []string{`id="new-secret"`, `Rotate secret`, `Verified requests, last 24 h`},
		},
		{
			name: "enforcing while failing keeps the enforce option usable",
			page: enforced,
			want: []string{
				`<span class="badge badge-on">Enforce</span>`,
				`class="health health-failing"`,
				`1 failure in the last 24 h. Most common: signature mismatch.`,
				`id="mode-enforce" checked aria-describedby="mode-enforce-help">`,
			},
			notWant: []string{`id="mode-enforce" checked disabled`},
		},
		{
			name: "no email, policy off, empty lists, no identity, no cursor",
			page: AdminPage{Base: Base{CSRF: testCSRF, User: "root", IsAdmin: true},
				Policy: PolicyView{GraceDays: 1, IdleMinutes: 240}, Error: "Only admins who signed in with 2FA can change the policy."},
			want: []string{
				`Require 2FA for everyone</h2>`,
				`<span class="badge badge-off">Off</span>`,
				`<strong>Emails are not configured</strong>, so members without 2FA won't be notified.`,
				`signed out after 1 day.`,
				`name="scope" value=""`,
				`value="240"`,
				`No members yet.`, `No active sessions.`, `No events yet.`,
				`role="alert" id="page-error"`,
			},
			notWant: []string{`id="identity"`, `href="#identity"`, `Older events`, `Export:`, `Clear filters`, `members have not set up`, `Every member has`},
		},
		{
			name: "no email: reset confirm says so",
			page: func() AdminPage { p := full; p.EmailConfigured = false; return p }(),
			want: []string{
				`signs them out everywhere.</p>`,
				`Emails are not configured, so they won't be notified.`,
			},
			notWant: []string{`and emails them`, `get an email`},
		},
		{
			name: "policy error",
			page: func() AdminPage {
				p := full
				p.Policy.Error = "The timeout must be between 5 and 1440 minutes."
				return p
			}(),
			want: []string{`<div class="alert alert-error" role="alert" id="policy-error"><p>The timeout must be between 5 and 1440 minutes.</p></div>`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := renderBody(t, r, tc.page)
			checkForms(t, body, "/_mfa/")
			checkNoInline(t, body, "/_mfa/")
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
		})
	}
}

func TestOlderURLEncodesFilters(t *testing.T) {
	tests := []struct {
		a    AuditView
		want string
	}{
		{AuditView{Next: "c1"}, "/_mfa/admin?before=c1#audit"},
		{AuditView{Next: "a&b=c#d", User: "x y&admin=1", Type: "t?#"},
			"/_mfa/admin?before=a%26b%3Dc%23d&type=t%3F%23&user=x+y%26admin%3D1#audit"},
	}
	for _, tc := range tests {
		if got := olderURL("/_mfa/", tc.a); got != tc.want {
			t.Errorf("olderURL(%+v) = %q, want %q", tc.a, got, tc.want)
		}
	}
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	body := renderBody(t, r, AdminPage{Base: Base{CSRF: testCSRF}, Audit: tests[1].a})
	if !strings.Contains(body, `href="/_mfa/admin?before=a%26b%3Dc%23d&amp;type=t%3F%23&amp;user=x&#43;y%26admin%3D1#audit"`) {
		t.Errorf("Older events link not encoded: %s", regexp.MustCompile(`href="[^"]*before[^"]*"`).FindString(body))
	}
}

func TestRenderSecuritySessions(t *testing.T) {
	r := newTestRenderer(t, Options{})
	base := Base{CSRF: testCSRF, User: "alice@example.com"}
	body := renderBody(t, r, SecurityPage{Base: base, Enrolled: true, CanDisable: true, RecoveryRemaining: 5, Next: "/dash", Sessions: sampleSessions("alice@example.com")})
	checkForms(t, body, "/auth/")
	checkNoInline(t, body, "/auth/")
	forms := formsByAction(body)
	if n := len(forms["/auth/security/sessions/revoke"]); n != 2 {
		t.Errorf("%d revoke forms, want 2 (one per non-current session)", n)
	}
	for _, f := range forms["/auth/security/sessions/revoke"] {
		if strings.Contains(f, `value="s-cur"`) {
			t.Errorf("the current session has a Sign out button")
		}
	}
	if n := len(forms["/auth/security/sessions/revoke-others"]); n != 1 {
		t.Errorf("%d revoke-others forms, want 1", n)
	}
	for _, w := range []string{
		`<h2 id="sessions-title">Active sessions</h2>`,
		`<strong>Chrome on Linux</strong> <span class="badge badge-on">This device</span>`,
		`<strong>Safari on iPhone</strong></p>`,
		`<strong>Firefox on Windows</strong></p>`,
		`<dd>2001:db8::1f</dd>`,
		`<dd><time datetime="2026-11-26T14:05:00Z">26 Nov 2026, 14:05 UTC</time></dd>`,
		`<input type="hidden" name="session" value="s-phone">`,
		`Sign out<span class="sr-only"> Safari on iPhone, 198.51.100.23</span></button>`,
		`>Sign out everywhere else</button>`,
		`<span class="tag">password</span>`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("security page lacks %q", w)
		}
	}
	if strings.Contains(body, "topbar-link") {
		t.Errorf("a non-admin sees the admin link")
	}

	// Only the current session: no revoke buttons at all; zero times are a dash.
	body = renderBody(t, r, SecurityPage{Base: Base{CSRF: testCSRF, IsAdmin: true}, Sessions: []SessionView{{ID: "only", Device: "curl", Current: true}}})
	for _, nw := range []string{`sessions/revoke`, `revoke-others`, `<time`} {
		if strings.Contains(body, nw) {
			t.Errorf("single-session page contains %q", nw)
		}
	}
	for _, w := range []string{`<dd>—</dd>`, `<a class="topbar-link" href="/auth/admin">Team security</a>`, `and turn on two-factor authentication`} {
		if !strings.Contains(body, w) {
			t.Errorf("single-session page lacks %q", w)
		}
	}
	body = renderBody(t, r, SecurityPage{Base: base})
	if strings.Contains(body, "Active sessions") {
		t.Errorf("empty Sessions should hide the card")
	}
}

func TestAdminEscapesHostileInput(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	const (
		x1 = `<script>alert(1)</script>`
		x2 = `"><img src=x onerror=alert(2)>`
		x3 = `</code></pre><script>alert(3)</script>`
	)
	p := sampleAdminPage(Base{CSRF: testCSRF, User: x2})
	p.Notice, p.Error = x1, x1
	p.Policy.Scope, p.Policy.Error = x2, x1
	p.Members = append(p.Members, MemberView{User: x2, Email: x1, Enrolled: true, Method: x1})
	p.Sessions = append(p.Sessions, SessionView{ID: x2, User: x1, Device: useragent.Describe(x1 + " " + x2), Address: x2})
	p.Audit.Events = append(p.Audit.Events, AuditRow{Time: t0, Type: x1, Actor: x2, Subject: x1, Address: x2, UserAgent: x2 + x1, Detail: x1})
	p.Audit.User, p.Audit.Type, p.Audit.Types, p.Audit.Next = x2, x1, []string{x1, x2}, x2
	p.Audit.ExportCSV, p.Audit.ExportJSONL = "javascript:alert(4)", x2
	id := *p.Identity
	id.NewSecret, id.WidgetKey, id.GateError, id.EnforceReason, id.TopCauseWords = x1, x2, x1, x1, x2
	id.Failures = append(id.Failures, CauseCount{Cause: x1, Words: x2, N: 1})
	id.Examples = append(id.Examples, CodeExample{Lang: x2, Code: x3})
	p.Identity = &id

	body := renderBody(t, r, p)
	for _, raw := range []string{"<script>alert", "<img src=x", `href="javascript:`, "</code></pre><script>"} {
		if strings.Contains(body, raw) {
			t.Errorf("unescaped %q in the admin page", raw)
		}
	}
	if strings.Count(body, "<script") != 1 {
		t.Errorf("extra <script> in the admin page")
	}
	for _, w := range []string{
		`&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;</code></pre>`,
		`Reset 2FA for <strong>&#34;&gt;&lt;img src=x onerror=alert(2)&gt;</strong>?`,
		`<input type="hidden" name="user" value="&#34;&gt;&lt;img src=x onerror=alert(2)&gt;">`,
		`<input type="hidden" name="session" value="&#34;&gt;&lt;img src=x onerror=alert(2)&gt;">`,
		`<td class="detail">&lt;script&gt;alert(1)&lt;/script&gt;</td>`,
		`href="#ZgotmplZ"`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("admin page lacks escaped %q", w)
		}
	}

	sec := renderBody(t, r, SecurityPage{Base: Base{CSRF: testCSRF}, Sessions: []SessionView{{ID: x2, Device: x1, Address: x2}}})
	for _, raw := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(sec, raw) {
			t.Errorf("unescaped %q in the security page", raw)
		}
	}
}

func TestHumanTime(t *testing.T) {
	local := time.FixedZone("CET", 3600)
	tests := []struct {
		t          time.Time
		human, iso string
	}{
		{t0, "26\u00a0Nov\u00a02026, 14:05\u00a0UTC", "2026-11-26T14:05:00Z"},
		{time.Date(2026, 3, 5, 9, 7, 59, 0, local), "5\u00a0Mar\u00a02026, 08:07\u00a0UTC", "2026-03-05T08:07:59Z"},
	}
	for _, tc := range tests {
		if got := humanTime(tc.t); got != tc.human {
			t.Errorf("humanTime = %q, want %q", got, tc.human)
		}
		if got := isoTime(tc.t); got != tc.iso {
			t.Errorf("isoTime = %q, want %q", got, tc.iso)
		}
	}
	if got := clip(5, "abcdefgh"); got != "abcd…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip(5, "abc"); got != "abc" {
		t.Errorf("clip = %q", got)
	}
	if plural(1, "a", "b") != "a" || plural(uint64(1), "a", "b") != "a" || plural(0, "a", "b") != "b" || plural(uint64(7), "a", "b") != "b" {
		t.Errorf("plural")
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A sign-in waiting for its second factor is labelled as such on both
// session lists, never as a password session.
func TestRenderPendingSessionLabel(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	pending := SessionView{ID: "s-pend", User: "bob", Device: "Firefox on Windows", Started: t0, LastActive: t0, AAL: 1, Pending: true}
	done := SessionView{ID: "s-pw", User: "bob", Device: "curl", Started: t0, LastActive: t0, AAL: 1}
	pages := map[string]Page{
		"admin":    AdminPage{Base: Base{CSRF: testCSRF, User: "alice", IsAdmin: true}, Sessions: []SessionView{pending}},
		"security": SecurityPage{Base: Base{CSRF: testCSRF, User: "bob"}, Sessions: []SessionView{pending, {ID: "s-cur", User: "bob", Current: true, AAL: 2}}},
	}
	for name, p := range pages {
		body := renderBody(t, r, p)
		if !strings.Contains(body, `<span class="tag tag-pending">Waiting for second factor</span>`) {
			t.Errorf("%s page: the pending session is not labelled as waiting for the second factor", name)
		}
		if strings.Contains(body, `<span class="tag">password</span>`) {
			t.Errorf("%s page: a pending session reads as a password sign-in", name)
		}
	}
	body := renderBody(t, r, AdminPage{Base: Base{CSRF: testCSRF, User: "alice", IsAdmin: true}, Sessions: []SessionView{done}})
	if !strings.Contains(body, `<span class="tag">password</span>`) || strings.Contains(body, "Waiting for second factor") {
		t.Errorf("a finished password sign-in is not labelled password")
	}
}

// The notice leads the page (the redirect lands on #notice), as a status,
// focusable by script, escaped.
func TestRenderAdminNoticeLeadsThePage(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	p := sampleAdminPage(Base{CSRF: testCSRF, User: "alice"})
	p.Notice = `2FA reset for <b>bob</b> — they were emailed.`
	body := renderBody(t, r, p)
	want := `<div class="banner banner-info banner-notice" role="status" id="notice" tabindex="-1"><p>2FA reset for &lt;b&gt;bob&lt;/b&gt; — they were emailed.</p></div>`
	i := strings.Index(body, want)
	if i < 0 {
		t.Fatalf("the notice is not rendered as %q", want)
	}
	if h := strings.Index(body, "<h1>"); h < i {
		t.Errorf("the notice comes after the heading (at %d, heading at %d)", i, h)
	}
	p.Notice = ""
	if body := renderBody(t, r, p); strings.Contains(body, `id="notice"`) {
		t.Errorf("an empty notice is rendered")
	}
}

// The identity section says when Enforce opens and which failures hold it.
func TestRenderEnforceGateOpens(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	p := sampleAdminPage(Base{CSRF: testCSRF, User: "alice"})
	p.Identity.EnforceOpensAt = t0.Add(20 * time.Hour)
	body := renderBody(t, r, p)
	for _, w := range []string{
		`<div class="gate" id="enforce-gate">`,
		`Enforce can be switched on from <time datetime="2026-11-27T10:05:00Z">`,
		`<li>12 expired token</li><li>3 missing token</li>`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("the identity section lacks %q", w)
		}
	}
	if strings.Contains(body, "once a verified request arrives") {
		t.Errorf("says a verified request is needed when NeedsVerified is false")
	}
	p.Identity.NeedsVerified = true
	if body := renderBody(t, r, p); !strings.Contains(body, ", once a verified request arrives after then") {
		t.Errorf("does not say a verified request is still needed")
	}
	p.Identity.EnforceOpensAt, p.Identity.NeedsVerified, p.Identity.EnforceAllowed = time.Time{}, false, true
	if body := renderBody(t, r, p); strings.Contains(body, `id="enforce-gate"`) {
		t.Errorf("an open gate still shows when it opens")
	}
}

// TestRenderAdminDoctor: "Check this configuration" shows its form, and
// after a check the verdict, each finding with its severity and what to
// change; the password fields are always empty.
func TestRenderAdminDoctor(t *testing.T) {
	r := newTestRenderer(t, Options{Prefix: "/_mfa/"})
	unsafe := &DoctorResult{Verdict: "unsafe", Level: 2, Requests: 23, Findings: []DoctorFinding{
		{Severity: "fail", Topic: "cookies", Text: "the sign-in sets demo_session, which no session_cookie pattern covers", Where: "session_cookie sid", Fix: "add demo_session to session_cookie"},
		{Severity: "ok", Topic: "success", Text: "success whoami holds for the right password (303)", Where: "user_from whoami /api/me user"},
	}, Exchanges: []DoctorExchange{{Label: "sign-in, right password", Request: "POST /login (form: password=****, username=tester)", Status: 303, Location: "/", Cookies: []string{"sets demo_session (HttpOnly): looks like a session cookie, not covered by session_cookie"}}}}
	for _, tc := range []struct {
		name string
		view *DoctorView
		want []string
		not  []string
	}{
		{"hidden", nil, nil, []string{`id="doctor"`, `href="#doctor"`}},
		{"form", &DoctorView{}, []string{`href="#doctor"`, `action="/_mfa/admin/doctor#doctor"`, `name="user" id="doctor-user" value=""`,
			`type="password" name="password" id="doctor-password" value=""`, `name="wrong_password" id="doctor-wrong" value=""`}, []string{`id="doctor-result"`, `id="doctor-error"`}},
		{"refused", &DoctorView{User: "tester", Error: "Enter the test account's password."},
			[]string{`role="alert" id="doctor-error"`, "Enter the test account&#39;s password.", `value="tester"`, `aria-describedby="doctor-error"`}, []string{`id="doctor-result"`}},
		{"unsafe", &DoctorView{User: "tester", Result: unsafe}, []string{`<span class="badge badge-fail">`, "Verdict: unsafe.", "1 finding needs attention",
			"23 requests sent to the app", `class="finding finding-fail"`, "Fails open", "<code>session_cookie sid</code>", "Fix: add demo_session to session_cookie",
			"POST /login (form: password=****, username=tester)", `type="password" name="password" id="doctor-password" value=""`}, nil},
		{"safe", &DoctorView{User: "tester", Result: &DoctorResult{Verdict: "safe", Requests: 20, Findings: []DoctorFinding{{Severity: "ok", Topic: "cookies", Text: "covered"}}}},
			[]string{`<span class="badge badge-on">Safe</span>`, "Verdict: safe.", "Nothing to change."}, []string{"badge-fail", "Fix:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sampleAdminPage(Base{CSRF: testCSRF, User: "alice@example.com"})
			p.Doctor = tc.view
			body := renderBody(t, r, p)
			checkForms(t, body, "/_mfa/")
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(body, w) {
					t.Errorf("the page has %q", w)
				}
			}
		})
	}
}
