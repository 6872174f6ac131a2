package caddymodule

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage/instrumented"
)

// The services and their counters outlive config reloads (they live in the
// pool), but Caddy builds a new metrics registry for every config. So the
// counters stay plain atomics in the core, and each config registers one
// collector that reads them when scraped: nothing to re-register or carry
// over, and the counts keep counting across reloads.

// registerMetrics registers a collector of every open service's counters.
// Two configs registering on one registry is no error: either collector
// reads the same services.
func registerMetrics(reg *prometheus.Registry, services func() []serviceCloser) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(newCollector(services))
	var dup prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &dup) {
		return fmt.Errorf("mfa: registering metrics: %w", err)
	}
	return nil
}

// poolServices is every service open in the pool, each once.
func poolServices() []serviceCloser {
	var out []serviceCloser
	pool.Range(func(_, v any) bool {
		if sc, ok := v.(serviceCloser); ok {
			out = append(out, sc)
		}
		return true
	})
	return out
}

// collector reads the services' counters at scrape time. The series of
// several services (handlers with a db_path of their own) are added up:
// labels never name a store, a user or an address.
type collector struct {
	services func() []serviceCloser

	signIns, challenges, lockouts, widget              *prometheus.Desc
	sessions                                           *prometheus.Desc
	storeLatency, storeErrors                          *prometheus.Desc
	auditWritten, auditDropped, auditPrun, auditFolded *prometheus.Desc
}

func newCollector(services func() []serviceCloser) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mfagate_"+name, help, labels, nil)
	}
	return &collector{
		services:     services,
		signIns:      d("sign_ins_total", "Sign-ins the app accepted or was sent, by how they ended.", "outcome"),
		challenges:   d("challenges_total", "Second-factor challenge answers, by method and result.", "method", "result"),
		lockouts:     d("lockouts_total", "Lock-outs begun by wrong codes, by what was locked.", "kind"),
		widget:       d("widget_checks_total", "Widget identity checks, by identity mode and result (verdict or cause).", "mode", "result"),
		sessions:     d("sessions", "Gateway sessions held, by state.", "state"),
		storeLatency: d("store_operation_duration_seconds", "Store transaction latency, by store part and operation.", "store", "op"),
		storeErrors:  d("store_operation_errors_total", "Store transactions the store failed (not the caller's own errors), by store part and operation.", "store", "op"),
		auditWritten: d("audit_events_written_total", "Audit events stored."),
		auditDropped: d("audit_events_dropped_total", "Audit events lost: dropped with the queue full, or lost in a failed write.", "reason"),
		auditPrun:    d("audit_events_pruned_total", "Audit events deleted on purpose: past the retention period, or over the size cap.", "reason"),
		auditFolded:  d("audit_events_folded_total", "Repeats of an event a client can cause at will, counted into one record per minute instead of stored one by one."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.signIns, c.challenges, c.lockouts, c.widget, c.sessions,
		c.storeLatency, c.storeErrors, c.auditWritten, c.auditDropped, c.auditPrun, c.auditFolded} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	svcs := c.services()
	if len(svcs) == 0 {
		return // nothing open yet (or any more): no series rather than zeros
	}
	var (
		stats                 mfa.StatsSnapshot
		anon, pending, active int
		aud                   audit.Stats
		ops                   []instrumented.OpSnapshot
	)
	for i, sc := range svcs {
		s := sc.Stats().Snapshot()
		a, p, act := sc.Sessions.Counts()
		as := sc.Audit.Stats()
		o := sc.store.Snapshot()
		if i == 0 {
			stats, ops = s, o
		} else {
			stats.Add(s)
			for j := range ops {
				addOp(&ops[j], o[j])
			}
		}
		anon, pending, active = anon+a, pending+p, active+act
		aud.Written += as.Written
		aud.QueueFull += as.QueueFull
		aud.WriteFailed += as.WriteFailed
		aud.Pruned += as.Pruned
		aud.Trimmed += as.Trimmed
		aud.Folded += as.Folded
	}
	counters := func(d *prometheus.Desc, cs []mfa.Count) {
		for _, x := range cs {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(x.N), x.Labels...)
		}
	}
	counters(c.signIns, stats.SignIns)
	counters(c.challenges, stats.Challenges)
	counters(c.lockouts, stats.Lockouts)
	counters(c.widget, stats.Widget)
	gauge := func(state string, n int) {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n), state)
	}
	gauge("anonymous", anon)
	gauge("pending", pending)
	gauge("active", active)
	bounds := instrumented.Bounds()
	for _, o := range ops {
		buckets := make(map[float64]uint64, len(bounds))
		for i, b := range bounds {
			buckets[b] = o.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.storeLatency, o.Count, o.SumSeconds, buckets, o.Part.String(), o.Op.String())
		ch <- prometheus.MustNewConstMetric(c.storeErrors, prometheus.CounterValue, float64(o.Errors), o.Part.String(), o.Op.String())
	}
	counter := func(d *prometheus.Desc, n uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	counter(c.auditWritten, aud.Written)
	counter(c.auditDropped, aud.QueueFull, "queue_full")
	counter(c.auditDropped, aud.WriteFailed, "write_failed")
	counter(c.auditPrun, aud.Pruned, "retention")
	counter(c.auditPrun, aud.Trimmed, "size_cap")
	counter(c.auditFolded, aud.Folded)
}

func addOp(dst *instrumented.OpSnapshot, src instrumented.OpSnapshot) {
	for i := range dst.Buckets {
		dst.Buckets[i] += src.Buckets[i]
	}
	dst.Count += src.Count
	dst.SumSeconds += src.SumSeconds
	dst.Errors += src.Errors
}
