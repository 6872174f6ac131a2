package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// waitStats polls until cond holds on the Outbox's counters.
func waitStats(t *testing.T, o *Outbox, cond func(sent, failed, dropped uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, f, d := o.Stats()
		if cond(s, f, d) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats sent=%d failed=%d dropped=%d", s, f, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noFullAddress fails if any log field holds a recipient's local part.
func noFullAddress(t *testing.T, logs *observer.ObservedLogs, locals ...string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, l := range locals {
			if strings.Contains(strings.ToLower(line), strings.ToLower(l)+"@") {
				t.Errorf("log shows an address: %s", line)
			}
		}
	}
}

func TestOutboxDelivers(t *testing.T) {
	sink := startSink(t, smtpsink.Options{TLS: true, Users: map[string]string{"relay": "s3cret"}})
	cfg := sinkConfig(sink, SecurityStartTLS)
	cfg.Username, cfg.Password = "relay", "s3cret"
	logger, logs := observed()
	o := NewOutbox(mustSMTP(t, cfg), logger, 32)
	for i := range 20 {
		m := ResetNotice("Acme Desk", fmt.Sprint("user", i), "carol")
		m.To = fmt.Sprintf("user%d@example.com", i)
		if !o.Queue(m) {
			t.Fatalf("Queue %d refused", i)
		}
	}
	got, err := sink.WaitFor(20, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		// One worker: in order.
		if want := fmt.Sprintf("user%d@example.com", i); r.To[0] != want || !r.TLS || r.Auth != "relay" {
			t.Errorf("message %d: to %v tls %v auth %q", i, r.To, r.TLS, r.Auth)
		}
	}
	if s, f, d := o.Stats(); s != 20 || f != 0 || d != 0 {
		t.Errorf("stats %d/%d/%d, want 20/0/0", s, f, d)
	}
	if n := logs.FilterMessage("email sent").FilterField(zap.String("domain", "example.com")).Len(); n != 20 {
		t.Errorf("%d 'email sent' logs, want 20", n)
	}
	noFullAddress(t, logs, "user1", "user10")
}

func TestOutboxSinkDown(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	cfg := sinkConfig(sink, SecurityNone)
	sink.Close() // nothing listens on cfg's port now
	logger, logs := observed()
	o := newOutbox(mustSMTP(t, cfg), logger, 4, 3, 10*time.Millisecond)
	if !o.Queue(Message{To: "Bob <Bob.Smith@example.com>", Subject: "s", Text: "t"}) {
		t.Fatal("Queue refused")
	}
	waitStats(t, o, func(s, f, d uint64) bool { return f == 1 })
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, f, d := o.Stats(); s != 0 || f != 1 || d != 0 {
		t.Errorf("stats %d/%d/%d, want 0/1/0", s, f, d)
	}
	tries := logs.FilterMessage("email send failed").All()
	if len(tries) != 3 {
		t.Fatalf("%d failed tries logged, want 3", len(tries))
	}
	for i, e := range tries {
		m := e.ContextMap()
		if m["domain"] != "example.com" || m["try"] != int64(i+1) || m["retry"] != (i < 2) {
			t.Errorf("try %d logged %v", i+1, m)
		}
	}
	if logs.FilterMessage("email not delivered").Len() != 1 {
		t.Error("final failure not logged")
	}
	noFullAddress(t, logs, "bob.smith")
}

func TestOutboxRetryThenSent(t *testing.T) {
	sink := startSink(t, smtpsink.Options{TempFail: 2})
	logger, logs := observed()
	o := newOutbox(mustSMTP(t, sinkConfig(sink, SecurityNone)), logger, 4, 3, 10*time.Millisecond)
	o.Queue(Message{To: "bob@example.com", Subject: "s", Text: "t"})
	if _, err := sink.WaitFor(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, f, d := o.Stats(); s != 1 || f != 0 || d != 0 {
		t.Errorf("stats %d/%d/%d, want 1/0/0", s, f, d)
	}
	if n := logs.FilterMessage("email send failed").Len(); n != 2 {
		t.Errorf("%d failed tries logged, want 2", n)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink has %d messages, want 1", n)
	}
}

// funcSender adapts a function to Sender.
type funcSender func(context.Context, Message) error

func (f funcSender) Send(ctx context.Context, m Message) error { return f(ctx, m) }

func TestOutboxPermanentNotRetried(t *testing.T) {
	var calls atomic.Int32
	s := funcSender(func(context.Context, Message) error {
		calls.Add(1)
		return fmt.Errorf("smtp x: %w", &smtp.SMTPError{Code: 550, Message: "5.1.1 <Bob@Example.com>: no such user"})
	})
	logger, logs := observed()
	o := newOutbox(s, logger, 4, 3, time.Millisecond)
	o.Queue(Message{To: "bob@example.com", Subject: "s"})
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d tries, want 1", calls.Load())
	}
	if _, f, _ := o.Stats(); f != 1 {
		t.Errorf("failed %d, want 1", f)
	}
	if e := logs.FilterMessage("email send failed").All(); len(e) != 1 || !strings.Contains(e[0].ContextMap()["error"].(string), "<…@Example.com>") {
		t.Errorf("logged %v", e)
	}
	noFullAddress(t, logs, "bob")
}

// blockSender blocks each Send until released or ctx ends.
type blockSender struct {
	started chan struct{}
	release chan struct{}
	sent    atomic.Int32
}

func (b *blockSender) Send(ctx context.Context, _ Message) error {
	b.started <- struct{}{}
	select {
	case <-b.release:
		b.sent.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestOutboxQueueNeverBlocks(t *testing.T) {
	b := &blockSender{started: make(chan struct{}, 10), release: make(chan struct{})}
	logger, logs := observed()
	o := newOutbox(b, logger, 2, 3, time.Millisecond)
	m := Message{To: "bob@example.com", Subject: "s"}
	o.Queue(m)
	<-b.started // the worker holds one; the queue has room for 2
	start := time.Now()
	var ok int
	for range 50 {
		if o.Queue(m) {
			ok++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("50 Queue calls took %v", d)
	}
	if ok != 2 {
		t.Errorf("%d queued, want 2", ok)
	}
	if _, _, d := o.Stats(); d != 48 {
		t.Errorf("dropped %d, want 48", d)
	}
	if n := logs.FilterMessage("email dropped: queue full").Len(); n != 48 {
		t.Errorf("%d drops logged, want 48", n)
	}

	// Close's deadline passes with a send in flight and 2 queued: the send
	// is aborted (failed), the rest dropped, and Close says why.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := o.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
	if s, f, d := o.Stats(); s != 0 || f != 1 || d != 50 {
		t.Errorf("stats %d/%d/%d, want 0/1/50", s, f, d)
	}
	if o.Queue(m) {
		t.Error("Queue after Close accepted")
	}
	if err := o.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestOutboxCloseDrains(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s := funcSender(func(ctx context.Context, m Message) error {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		got = append(got, m.To)
		mu.Unlock()
		return nil
	})
	o := NewOutbox(s, nil, 0)
	for i := range 10 {
		o.Queue(Message{To: fmt.Sprintf("u%d@example.com", i), Subject: "s"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s, f, d := o.Stats(); s != 10 || f != 0 || d != 0 || len(got) != 10 {
		t.Errorf("stats %d/%d/%d, got %d, want 10/0/0", s, f, d, len(got))
	}
	if o.Queue(Message{To: "late@example.com"}) {
		t.Error("Queue after Close accepted")
	}
	if _, _, d := o.Stats(); d != 1 {
		t.Errorf("dropped %d after a late Queue, want 1", d)
	}
}

func TestOutboxRefusesBadMessage(t *testing.T) {
	var calls atomic.Int32
	o := NewOutbox(funcSender(func(context.Context, Message) error { calls.Add(1); return nil }), nil, 4)
	for _, m := range []Message{
		{To: "", Subject: "s"},
		{To: "bob@example.com\r\nBcc: eve@evil.example", Subject: "s"},
		{To: "bob@example.com", Subject: "s\r\nBcc: eve@evil.example"},
	} {
		if o.Queue(m) {
			t.Errorf("Queue(%q) accepted", m)
		}
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, f, d := o.Stats(); s != 0 || f != 3 || d != 0 || calls.Load() != 0 {
		t.Errorf("stats %d/%d/%d, calls %d", s, f, d, calls.Load())
	}
}

func TestRedact(t *testing.T) {
	err := errors.New("550 5.1.1 <Bob.Smith@Example.com>: unknown; bob.smith@example.com again")
	got := redact(err, "Bob <bob.smith@example.com>")
	if strings.Contains(strings.ToLower(got), "bob.smith") || !strings.Contains(got, "…@Example.com") {
		t.Errorf("redact = %q", got)
	}
}
