package integration_test

import (
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestAuditLog: security events are recorded with actor, subject, address
// and user agent, filterable, paged and exportable, and never carry a secret.
func TestAuditLog(t *testing.T) {
	e := start(t, optsWith(manyUsers()), adminGateway)
	_, _, admin := e.enrolled("admin")
	secret, codes, _ := e.enrolled("carol")
	p := e.pending("carol")
	p.api("challenge", map[string]string{"code": wrongCode(t, secret)})
	if r := p.api("challenge", map[string]string{"code": code(t, secret, 1)}); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	admin.api("admin/policy", map[string]any{"require_2fa": true})
	admin.api("admin/timeout", map[string]any{"minutes": 60})
	admin.api("admin/reset", map[string]string{"user": "carol"})

	r := admin.api("admin/audit?user=carol", nil)
	if r.StatusCode != 200 {
		t.Fatalf("audit: %d %s", r.StatusCode, r.Body)
	}
	var page struct {
		Events []struct {
			Type, Actor, Subject string
			Remote               string `json:"remote_addr"`
			UserAgent            string `json:"user_agent"`
		}
		Next string
	}
	json.Unmarshal([]byte(r.Body), &page)
	seen := map[string]bool{}
	for _, ev := range page.Events {
		seen[ev.Type] = true
		if ev.Actor != "carol" && ev.Subject != "carol" {
			t.Fatalf("user filter let through %+v", ev)
		}
		if ev.Remote != "127.0.0.1" || ev.UserAgent == "" {
			t.Fatalf("event without address or agent: %+v", ev)
		}
	}
	for _, want := range []string{"sign_in", "enrol_started", "2fa_enabled", "challenge_failed", "challenge_passed", "admin_reset"} {
		if !seen[want] {
			t.Errorf("no %s event for carol in %s", want, r.Body)
		}
	}
	// Type filter and paging.
	r = admin.api("admin/audit?type=policy_changed", nil)
	if !strings.Contains(r.Body, `"actor":"admin"`) || strings.Contains(r.Body, "sign_in") {
		t.Fatalf("type filter: %s", r.Body)
	}
	var all []string
	cursor := ""
	for range 20 {
		r := admin.api("admin/audit?limit=3&before="+url.QueryEscape(cursor), nil)
		var pg struct {
			Events []map[string]any
			Next   string
		}
		json.Unmarshal([]byte(r.Body), &pg)
		for _, ev := range pg.Events {
			all = append(all, ev["time"].(string)+ev["type"].(string))
		}
		if pg.Next == "" {
			break
		}
		cursor = pg.Next
	}
	if len(all) < 10 {
		t.Fatalf("paging found %d events", len(all))
	}
	dup := map[string]bool{}
	for _, k := range all {
		if dup[k] {
			t.Fatalf("paging repeated %s", k)
		}
		dup[k] = true
	}
	apiErr(t, admin.api("admin/audit?before=zz", nil), 400, "bad_cursor")

	// Exports: JSON Lines parse back, CSV has the header; no secret anywhere.
	jl := admin.get("/_mfa/api/v1/admin/audit/export?format=jsonl")
	if jl.StatusCode != 200 || !strings.Contains(jl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("jsonl export: %d %v", jl.StatusCode, jl.Header)
	}
	lines := strings.Split(strings.TrimSpace(jl.Body), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("export line is not JSON: %q", l)
		}
	}
	cs := admin.get("/_mfa/admin/audit.csv?type=admin_reset")
	rows, err := csv.NewReader(strings.NewReader(cs.Body)).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "time" || rows[1][1] != "admin_reset" {
		t.Fatalf("csv export: %v %q", err, cs.Body)
	}
	for _, body := range []string{jl.Body, cs.Body} {
		// (TOTP codes are not checked: six digits turn up in timestamps.)
		for _, s := range append([]string{strings.ReplaceAll(secret, " ", ""), "carol-password"}, codes...) {
			if strings.Contains(body, s) {
				t.Fatalf("audit export contains a secret %q", s)
			}
		}
	}
	// Only admins read it.
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	apiErr(t, bob.api("admin/audit", nil), 403, "not_admin")
	if r := bob.get("/_mfa/admin/audit.csv"); r.StatusCode != 403 {
		t.Fatalf("non-admin export: %d", r.StatusCode)
	}
}
