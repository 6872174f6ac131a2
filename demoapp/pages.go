package demoapp

import (
	"bytes"
	"html/template"
	"net/http"
)

// loginPage is the data of the sign-in form.
type loginPage struct {
	Action     string
	SharedPath bool
	Error      string
	Next       string
	CSRF       string
}

// dashboardPage is the data of the signed-in dashboard.
type dashboardPage struct {
	User       string
	Role       string
	SharedPath bool
	Searched   bool
	Query      string
	Stats      stats
	// Security is the gateway's security page.
	Security string
	// Widget is the support widget's address, with the claim (and a token
	// when WidgetSigned); SecretPath is where an admin saves the secret.
	Widget       string
	WidgetSigned bool
	SecretPath   string
}

// stats are the made-up dashboard numbers.
type stats struct {
	Visitors     int
	Signups      int
	RevenueCents int
	OpenTickets  int
}

func demoStats() stats {
	return stats{Visitors: 12840, Signups: 312, RevenueCents: 4821950, OpenTickets: 7}
}

// pagesSource holds every page template.
const pagesSource = `
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · Demo Dashboard</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:40rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0002}
label{display:block;margin:.75rem 0 .25rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}
a{color:#1a56b0}section{margin-top:1.5rem;padding-top:1rem;border-top:1px solid #d6d9e0}h2{font-size:1.125rem}
.verdict{font-size:1.25rem;font-weight:600}
</style></head><body><main>{{end}}

{{define "login"}}{{template "head" "Sign in"}}
<h1>Sign in</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{if .SharedPath}}<input type="hidden" name="do" value="login">{{end}}
{{if .CSRF}}<input type="hidden" name="csrf_token" value="{{.CSRF}}">{{end}}
{{if .Next}}<input type="hidden" name="next" value="{{.Next}}">{{end}}
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main></body></html>
{{end}}

{{define "dashboard"}}{{template "head" "Dashboard"}}
<h1>Dashboard</h1>
<p>Signed in as <strong id="user">{{.User}}</strong> ({{.Role}})</p>
<p><a id="security-link" href="{{.Security}}">Account security (two-factor authentication)</a></p>
{{if .SharedPath}}
<form method="post" action="/index.php"><input type="hidden" name="do" value="search">
<label for="q">Search</label><input type="text" id="q" name="q" value="{{.Query}}"><button type="submit">Search</button></form>
{{if .Searched}}<p id="results">No results for “{{.Query}}”.</p>{{end}}
{{end}}
<dl>
<dt>Visitors</dt><dd>{{.Stats.Visitors}}</dd>
<dt>Sign-ups</dt><dd>{{.Stats.Signups}}</dd>
<dt>Revenue (cents)</dt><dd>{{.Stats.RevenueCents}}</dd>
<dt>Open tickets</dt><dd>{{.Stats.OpenTickets}}</dd>
</dl>
<section aria-labelledby="widget-title">
<h2 id="widget-title">Support widget</h2>
<p>The widget claims you are {{.User}}{{if .WidgetSigned}}, with a token the app signed with the identity secret{{else}}, without a token: the app has no identity secret yet{{end}}.</p>
<p><a id="widget-link" href="{{.Widget}}">Open the support widget</a></p>
{{if eq .Role "admin"}}<form method="post" action="{{.SecretPath}}">
<label for="widget-secret">Identity secret, from Team security, Identity verification</label>
<input type="password" id="widget-secret" name="secret" autocomplete="off">
<button type="submit">Save identity secret</button>
</form>{{end}}
</section>
{{if .SharedPath}}
<form method="post" action="/index.php"><input type="hidden" name="do" value="logout"><button type="submit">Sign out</button></form>
<p><a href="/index.php?do=logout">Sign out</a></p>
{{else}}
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<p><a href="/logout">Sign out</a></p>
{{end}}
</main></body></html>
{{end}}

{{define "widget"}}{{template "head" "Support widget"}}
<h1>Support widget</h1>
{{if .User}}<p>Claimed user: <strong id="claimed">{{.User}}</strong>, {{if .HasToken}}with a token{{else}}without a token{{end}}.</p>{{else}}<p>No user claimed.</p>{{end}}
<p>The gateway's verdict: <span class="verdict" id="verdict">{{or .Verdict "none"}}</span></p>
<p>{{if eq .Verdict "verified"}}The token proves the claim: the widget can trust it.
{{else if eq .Verdict "unverified"}}The claim is not proven: no valid token, or verification is Off. In Enforce mode the gateway refuses such a request.
{{else if eq .Verdict "anonymous"}}No user is claimed, so there is nothing to prove.
{{else}}The gateway does not check this path: its widget block is not configured.{{end}}</p>
<p><a href="/">Back to the dashboard</a></p>
</main></body></html>
{{end}}
`

// parsePages parses pagesSource; it is constant, so an error is a programming
// bug caught by any test.
func parsePages() *template.Template {
	return template.Must(template.New("pages").Parse(pagesSource))
}

// render executes a page into a buffer first, so a template error becomes a
// 500 instead of a half-written page.
func (a *App) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := a.pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
