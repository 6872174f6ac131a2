package integration_test

// The gateway's metrics on Caddy's own /metrics: a scripted flow moves each
// counter by exactly what it did, and a config reload keeps the series and
// their counts.

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsSite serves Caddy's metrics on the gateway's site.
const metricsSite = "\tmetrics /metrics"

// scrape reads /metrics into series ("name{labels}" as exposed) and values.
func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	r := e.newClient().get("/metrics")
	if r.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %.300s", r.StatusCode, r.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mfagate_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if len(out) == 0 {
		t.Fatalf("no mfagate_ series on /metrics:\n%.2000s", r.Body)
	}
	return out
}

// present returns m[series], failing if the series is not served.
func present(t *testing.T, m map[string]float64, series string) float64 {
	t.Helper()
	v, ok := m[series]
	if !ok {
		t.Fatalf("series %s not served", series)
	}
	return v
}

func TestMetricsFlowAndReload(t *testing.T) {
	e, _ := wtStart(t, wtBlock)
	e.extra = metricsSite
	e.load(e.gateway)
	_, _, admin := e.enrolled("admin")
	widgetSecret := wtSecret(t, admin) // monitor
	carolSecret, _, _ := e.enrolled("carol")

	before := scrape(t, e)

	// A wrong password, then password, wrong code, right code.
	if r := e.newClient().signIn("carol", "not-her-password"); strings.HasPrefix(r.Location(), "/_mfa/") {
		t.Fatalf("a wrong password reached the gateway's pages: %d %q", r.StatusCode, r.Location())
	}
	c := e.pending("carol")
	apiErr(t, c.api("challenge", map[string]string{"code": wrongCode(t, carolSecret)}), 401, "invalid_code")
	if r := c.api("challenge", map[string]string{"code": code(t, carolSecret, 1)}); r.StatusCode != 200 {
		t.Fatalf("right code: %d %s", r.StatusCode, r.Body)
	}
	// Widget requests: one verified, one without its token.
	wtVerified(t, e, widgetSecret, "u1")
	if r := wtSend(e, wtCase{user: "u1"}); r.StatusCode != 200 {
		t.Fatalf("monitor lets a widget request without a token through: %d", r.StatusCode)
	}

	after := scrape(t, e)
	for _, tc := range []struct {
		series string
		delta  float64
	}{
		{`mfagate_sign_ins_total{outcome="rejected"}`, 1},
		{`mfagate_sign_ins_total{outcome="challenged"}`, 1},
		{`mfagate_sign_ins_total{outcome="no_factor"}`, 0},
		{`mfagate_sign_ins_total{outcome="refused"}`, 0},
		{`mfagate_sign_ins_total{outcome="error"}`, 0},
		{`mfagate_challenges_total{method="totp",result="wrong"}`, 1},
		{`mfagate_challenges_total{method="totp",result="ok"}`, 1},
		{`mfagate_challenges_total{method="totp",result="replayed"}`, 0},
		{`mfagate_challenges_total{method="recovery",result="ok"}`, 0},
		{`mfagate_lockouts_total{kind="user_attempts"}`, 0},
		{`mfagate_widget_checks_total{mode="monitor",result="verified"}`, 1},
		{`mfagate_widget_checks_total{mode="monitor",result="missing_token"}`, 1},
		{`mfagate_widget_checks_total{mode="enforce",result="missing_token"}`, 0},
		{`mfagate_sessions{state="active"}`, 1}, // carol's second browser
		{`mfagate_sessions{state="pending"}`, 0},
		{`mfagate_store_operation_errors_total{op="update",store="state"}`, 0},
		{`mfagate_audit_events_dropped_total{reason="write_failed"}`, 0},
	} {
		if got := present(t, after, tc.series) - present(t, before, tc.series); got != tc.delta {
			t.Errorf("%s moved by %v, want %v", tc.series, got, tc.delta)
		}
	}
	// The challenge was passed in one Update; the sign-in wrote a Batch.
	for _, s := range []string{
		`mfagate_store_operation_duration_seconds_count{op="update",store="state"}`,
		`mfagate_store_operation_duration_seconds_count{op="batch",store="state"}`,
	} {
		if present(t, after, s) <= present(t, before, s) {
			t.Errorf("%s did not move: %v", s, after[s])
		}
	}

	// The reload: a new registry, the same services. Every series is still
	// served, with the counts it had; then they keep counting.
	e.load(e.gateway)
	reloaded := scrape(t, e)
	for s, v := range after {
		if strings.HasPrefix(s, "mfagate_sessions") || strings.HasPrefix(s, "mfagate_store_") || strings.HasPrefix(s, "mfagate_audit_") {
			continue // gauges, and background writes (activity, audit) may move these
		}
		if got, ok := reloaded[s]; !ok || got != v {
			t.Errorf("after the reload: %s = %v (served %v), want %v", s, got, ok, v)
		}
	}
	wtVerified(t, e, widgetSecret, "u2")
	const verified = `mfagate_widget_checks_total{mode="monitor",result="verified"}`
	if got := present(t, scrape(t, e), verified); got != after[verified]+1 {
		t.Fatalf("after the reload: %s = %v, want %v", verified, got, after[verified]+1)
	}

	// Audit events are written in the background, a second apart.
	const written = "mfagate_audit_events_written_total"
	deadline := time.Now().Add(5 * time.Second)
	for present(t, scrape(t, e), written) <= before[written] {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %v", written, before[written])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
