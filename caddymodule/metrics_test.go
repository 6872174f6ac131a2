package caddymodule

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/identity"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// openTestService opens a service on a fresh bolt file, as the pool does.
func openTestService(t *testing.T) serviceCloser {
	t.Helper()
	st := &BoltStore{path: filepath.Join(t.TempDir(), "mfa.db")}
	sc, err := openService(st, bytes.Repeat([]byte{7}, 32), mfa.Options{FlushInterval: time.Hour}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

// sample reads one series' value (a counter or gauge, or a histogram's
// sample count) from what reg serves; -1 if it is absent.
func sample(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// activity moves some counter of every family once.
func activity(t *testing.T, sc serviceCloser) {
	t.Helper()
	ctx := context.Background()
	sc.Stats().SignInRejected()
	sc.Stats().Widget(identity.Enforce, identity.Unverified, identity.CauseExpiredToken)
	sc.Sessions.Put(&session.Session{Key: session.Key{byte(sc.Sessions.Len() + 1)}, State: session.Pending})
	if err := sc.Store.View(ctx, func(storage.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	sc.Audit.Record(audit.Event{Type: audit.TypeSignOut}) // never folded: one event each
	if err := sc.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsCollect: the collector serves every family under its name
// and labels, passes the linter, and on Caddy's pedantic registry.
func TestMetricsCollect(t *testing.T) {
	sc := openTestService(t)
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg, func() []serviceCloser { return []serviceCloser{sc} }); err != nil {
		t.Fatal(err)
	}
	activity(t, sc)
	const want = `
# HELP mfagate_sign_ins_total Sign-ins the app accepted or was sent, by how they ended.
# TYPE mfagate_sign_ins_total counter
mfagate_sign_ins_total{outcome="challenged"} 0
mfagate_sign_ins_total{outcome="error"} 0
mfagate_sign_ins_total{outcome="must_enrol"} 0
mfagate_sign_ins_total{outcome="no_factor"} 0
mfagate_sign_ins_total{outcome="refused"} 0
mfagate_sign_ins_total{outcome="rejected"} 1
# HELP mfagate_sessions Gateway sessions held, by state.
# TYPE mfagate_sessions gauge
mfagate_sessions{state="active"} 0
mfagate_sessions{state="anonymous"} 0
mfagate_sessions{state="pending"} 1
# HELP mfagate_audit_events_written_total Audit events stored.
# TYPE mfagate_audit_events_written_total counter
mfagate_audit_events_written_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mfagate_sign_ins_total", "mfagate_sessions", "mfagate_audit_events_written_total"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mfagate_widget_checks_total", []string{"mode", "enforce", "result", "expired_token"}, 1},
		{"mfagate_widget_checks_total", []string{"mode", "monitor", "result", "verified"}, 0},
		{"mfagate_challenges_total", []string{"method", "totp", "result", "ok"}, 0},
		{"mfagate_lockouts_total", []string{"kind", "authenticator"}, 0},
		{"mfagate_store_operation_errors_total", []string{"store", "state", "op", "view"}, 0},
		{"mfagate_audit_events_dropped_total", []string{"reason", "queue_full"}, 0},
		{"mfagate_audit_events_pruned_total", []string{"reason", "size_cap"}, 0},
	} {
		if got := sample(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The View above, and the service's own loading of sessions at open.
	if got := sample(t, reg, "mfagate_store_operation_duration_seconds", "store", "state", "op", "view"); got < 2 {
		t.Errorf("state views timed: %v, want at least 2", got)
	}
	if got := sample(t, reg, "mfagate_store_operation_duration_seconds", "store", "audit", "op", "batch"); got != 1 {
		t.Errorf("audit batches timed: %v, want 1", got)
	}
	problems, err := testutil.CollectAndLint(newCollector(func() []serviceCloser { return []serviceCloser{sc} }))
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

// TestMetricsAcrossReloads: each config registers a collector on its own
// new registry; the counts live in the services, so they carry on
// counting. A second registration on one registry is no error.
func TestMetricsAcrossReloads(t *testing.T) {
	sc := openTestService(t)
	src := func() []serviceCloser { return []serviceCloser{sc} }
	first := prometheus.NewPedanticRegistry()
	if err := registerMetrics(first, src); err != nil {
		t.Fatal(err)
	}
	activity(t, sc)
	if got := sample(t, first, "mfagate_sign_ins_total", "outcome", "rejected"); got != 1 {
		t.Fatalf("first config: rejected = %v, want 1", got)
	}
	second := prometheus.NewPedanticRegistry() // the reload
	if err := registerMetrics(second, src); err != nil {
		t.Fatal(err)
	}
	if err := registerMetrics(second, src); err != nil {
		t.Fatalf("registering twice on one registry: %v", err)
	}
	activity(t, sc)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mfagate_sign_ins_total", []string{"outcome", "rejected"}, 2},
		{"mfagate_widget_checks_total", []string{"mode", "enforce", "result", "expired_token"}, 2},
		{"mfagate_sessions", []string{"state", "pending"}, 2},
		{"mfagate_audit_events_written_total", nil, 2},
	} {
		if got := sample(t, second, tc.name, tc.labels...); got != tc.want {
			t.Errorf("after the reload: %s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestMetricsAddServices: services of several stores add up; no series
// names a store. With none open, nothing is served.
func TestMetricsAddServices(t *testing.T) {
	a, b := openTestService(t), openTestService(t)
	var open []serviceCloser
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg, func() []serviceCloser { return open }); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("no service open: %d series, %v", n, err)
	}
	open = []serviceCloser{a, b}
	activity(t, a)
	activity(t, b)
	activity(t, b)
	if got := sample(t, reg, "mfagate_sign_ins_total", "outcome", "rejected"); got != 3 {
		t.Fatalf("rejected = %v, want 3", got)
	}
	if got := sample(t, reg, "mfagate_audit_events_written_total"); got != 3 {
		t.Fatalf("audit written = %v, want 3", got)
	}
}
