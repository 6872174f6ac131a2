package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// blackhole accepts every write without doing it.
type blackhole struct{ storage.AuditStore }

func (blackhole) Batch(context.Context, func(storage.AuditTx) error) error  { return nil }
func (blackhole) Update(context.Context, func(storage.AuditTx) error) error { return nil }

const benchUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

// benchEvent is a typical event: a failed challenge.
func benchEvent() Event {
	return Event{
		Type:      TypeChallengeFailed,
		Actor:     "alice",
		Subject:   "alice",
		Remote:    "192.0.2.7:51234",
		UserAgent: benchUA,
		Detail:    map[string]string{"reason": "bad_code", "method": "totp"},
	}
}

// BenchmarkRecord is what a request pays to record an event, from many
// goroutines at once, while the queue has room (as it has unless the store
// is stuck or far behind). The Log's writer is not started: each recording
// goroutine empties the queue itself every 1024 events (cost included),
// standing in for a writer that keeps up. With the real writer, on a
// 2-CPU machine the recording goroutines hold both CPUs until preempted
// and the benchmark would mostly time the drop path (BenchmarkRecordFull).
// The writer's own cost, off the request path, is BenchmarkWrite. The
// event is built once per goroutine, so the figure is Record's own;
// building it is BenchmarkEventLiteral.
func BenchmarkRecord(b *testing.B) {
	l := newUnstarted(blackhole{}, Options{})
	drain := func() {
		l.mu.Lock()
		l.queued.Add(-int64(len(l.queue)))
		clear(l.queue)
		l.queue = l.queue[:0]
		l.mu.Unlock()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := benchEvent()
		for i := 1; pb.Next(); i++ {
			l.Record(e)
			if i%1024 == 0 {
				drain()
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(l.Dropped())/float64(b.N), "drops/op")
}

// BenchmarkRecordFull is Record when the queue is full (the store is stuck
// or far behind): the event is dropped and counted.
func BenchmarkRecordFull(b *testing.B) {
	l := New(blackhole{}, Options{FlushInterval: time.Hour, Buffer: 1})
	defer l.Close()
	l.Record(benchEvent())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := benchEvent()
		for pb.Next() {
			l.Record(e)
		}
	})
}

// BenchmarkEventLiteral is the caller's share: building an Event with its
// Detail map.
func BenchmarkEventLiteral(b *testing.B) {
	b.ReportAllocs()
	var sink Event
	for b.Loop() {
		sink = benchEvent()
	}
	_ = sink
}

// BenchmarkWrite is the writer's cost per event on a real bbolt file
// (encoding, one Batch per flush, fsync), in flushes of 1, 100 and 4096
// events: its inverse is the event rate the log sustains without drops.
func BenchmarkWrite(b *testing.B) {
	for _, per := range []int{1, 100, 4096} {
		b.Run(fmt.Sprint(per), func(b *testing.B) {
			l := New(openStore(b), Options{FlushInterval: time.Hour, Buffer: 8192})
			defer l.Close()
			e := benchEvent()
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Record(e)
				if i++; i%per == 0 {
					if err := l.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
