package demoapp

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signedIn returns a client signed in as user on an app with opts.
func signedIn(t *testing.T, opts Options, user string) *client {
	t.Helper()
	c := newClient(t, opts)
	resp, _ := c.postForm("/login", url.Values{"username": {user}, "password": {user + "-password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d", user, resp.StatusCode)
	}
	return c
}

var securityLink = regexp.MustCompile(`<a id="security-link" href="([^"]*)">([^<]*)</a>`)

// TestDashboardLinksToSecurity: the dashboard links to the gateway's
// security page, under the default prefix or the one given.
func TestDashboardLinksToSecurity(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, want string
	}{
		{"default prefix", "", "/_mfa/security"},
		{"own prefix", "/auth", "/auth/security"},
		{"own prefix with slash", "/mfa/", "/mfa/security"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.GatewayPrefix = tc.prefix
			c := signedIn(t, opts, "alice")
			_, body := c.get("/")
			m := securityLink.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("the dashboard has no security link:\n%s", body)
			}
			if m[1] != tc.want || !strings.Contains(m[2], "Account security") || !strings.Contains(m[2], "two-factor") {
				t.Errorf("security link %q %q, want href %q and words naming account security and two-factor", m[1], m[2], tc.want)
			}
		})
	}
}

var widgetLink = regexp.MustCompile(`<a id="widget-link" href="([^"]*)">`)

// widgetHref is the support widget's address on the dashboard.
func widgetHref(t *testing.T, c *client) *url.URL {
	t.Helper()
	_, body := c.get("/")
	m := widgetLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the dashboard has no widget link:\n%s", body)
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestWidget: the dashboard's widget claims the signed-in user, with a
// token signed with the identity secret once an admin saves one; the
// widget page shows the gateway's verdict.
func TestWidget(t *testing.T) {
	opts := DefaultOptions()
	alice := signedIn(t, opts, "alice")
	u := widgetHref(t, alice)
	if u.Path != WidgetPath || u.Query().Get(WidgetUserParam) != "alice" || u.Query().Has(WidgetTokenParam) {
		t.Errorf("widget link without a secret: %s, want %s?%s=alice and no token", u, WidgetPath, WidgetUserParam)
	}
	if _, body := alice.get("/"); strings.Contains(body, `id="widget-secret"`) {
		t.Errorf("a member sees the identity secret form")
	}

	for verdict, words := range map[string]string{
		"verified":   "The token proves the claim",
		"unverified": "In Enforce mode the gateway refuses such a request",
		"":           "its widget block is not configured",
	} {
		h := http.Header{}
		if verdict != "" {
			h.Set(WidgetVerdictHeader, verdict)
		}
		resp, body := alice.do(http.MethodGet, u.RequestURI(), "", "", h)
		want := verdict
		if want == "" {
			want = "none"
		}
		if resp.StatusCode != 200 || !strings.Contains(body, `id="verdict">`+want+`<`) || !strings.Contains(body, words) ||
			!strings.Contains(body, `<strong id="claimed">alice</strong>, without a token`) {
			t.Errorf("widget page with verdict %q: %d\n%s", verdict, resp.StatusCode, body)
		}
	}

	// Only an admin saves the secret.
	if resp, _ := alice.postForm(widgetSecretPath, url.Values{"secret": {"ha_secret_x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a member saving the identity secret: %d, want 403", resp.StatusCode)
	}
	admin := signedInOn(t, alice, "admin") // the same app: one workspace
	if _, body := admin.get("/"); !strings.Contains(body, `id="widget-secret"`) {
		t.Errorf("the admin sees no identity secret form")
	}
	const secret = "ha_secret_demo-widget-secret-0123456789abcdefghijklmno"
	if resp, _ := admin.postForm(widgetSecretPath, url.Values{"secret": {" " + secret + "\n"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("saving the identity secret: %d", resp.StatusCode)
	}

	u = widgetHref(t, alice)
	if u.Query().Get(WidgetUserParam) != "alice" {
		t.Fatalf("widget link %s does not claim alice", u)
	}
	tok, err := jwt.Parse(u.Query().Get(WidgetTokenParam), func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the widget's token does not verify with the saved secret: %v", err)
	}
	if sub, _ := tok.Claims.GetSubject(); sub != "alice" {
		t.Errorf("the token's sub is %q, want alice", sub)
	}
	if exp, _ := tok.Claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > widgetTokenLife || time.Until(exp.Time) < widgetTokenLife-time.Minute {
		t.Errorf("the token expires at %v, want in about %v", exp, widgetTokenLife)
	}
	if _, body := alice.get(u.RequestURI()); !strings.Contains(body, "with a token") {
		t.Errorf("the widget page does not say a token came:\n%s", body)
	}
}

// signedInOn signs user in with a new cookie jar on the same app as c.
func signedInOn(t *testing.T, c *client, user string) *client {
	t.Helper()
	n := newClient(t, DefaultOptions())
	n.app, n.srv = c.app, c.srv
	resp, _ := n.postForm("/login", url.Values{"username": {user}, "password": {user + "-password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d", user, resp.StatusCode)
	}
	return n
}
