package mail

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Outbox defaults.
const (
	DefaultOutboxSize = 100
	outboxTries       = 3
	outboxBackoff     = 2 * time.Second
	// abortGrace is how long Close waits, after its deadline, for the
	// worker to notice the abort. Sender honours ctx, so this is plenty;
	// it only keeps a stuck Sender from hanging a config reload.
	abortGrace = time.Second
)

// Outbox sends messages in the background so that no request waits on the
// mail server. Queue never blocks: when the bounded queue is full the
// message is dropped, counted and logged. One worker sends, in order, each
// message up to three times with exponential backoff; a 5xx reply
// (IsPermanent) is not retried. Logs name the recipient's domain, never the
// full address.
type Outbox struct {
	s       Sender
	log     *zap.Logger
	tries   int
	backoff time.Duration

	mu     sync.RWMutex // guards closed against a send on a closed ch
	closed bool
	ch     chan Message

	// ctx is cancelled when Close's deadline passes: it aborts the send in
	// flight and the backoff wait, and the rest of the queue is dropped.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	sent, failed, dropped atomic.Uint64
}

// NewOutbox starts an Outbox sending through s with room for size queued
// messages (DefaultOutboxSize if size <= 0). A nil logger logs nothing.
func NewOutbox(s Sender, logger *zap.Logger, size int) *Outbox {
	return newOutbox(s, logger, size, outboxTries, outboxBackoff)
}

func newOutbox(s Sender, logger *zap.Logger, size, tries int, backoff time.Duration) *Outbox {
	if logger == nil {
		logger = zap.NewNop()
	}
	if size <= 0 {
		size = DefaultOutboxSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Outbox{
		s:       s,
		log:     logger,
		tries:   tries,
		backoff: backoff,
		ch:      make(chan Message, size),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go o.run()
	return o
}

// Queue hands m to the worker and reports whether it was queued. It never
// blocks. A message with a bad recipient or subject is refused and counted
// as failed; one that finds the queue full, or the Outbox closed, is
// dropped.
func (o *Outbox) Queue(m Message) bool {
	domain := recipientDomain(m.To)
	if _, err := parseRecipient(m.To); err != nil {
		o.failed.Add(1)
		o.log.Error("email not queued", zap.String("domain", domain), zap.String("reason", "bad recipient"))
		return false
	}
	if err := checkHeader("subject", m.Subject); err != nil {
		o.failed.Add(1)
		o.log.Error("email not queued", zap.String("domain", domain), zap.Error(err))
		return false
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		n := o.dropped.Add(1)
		o.log.Warn("email dropped: outbox closed", zap.String("domain", domain), zap.Uint64("dropped", n))
		return false
	}
	select {
	case o.ch <- m:
		return true
	default:
		n := o.dropped.Add(1)
		o.log.Warn("email dropped: queue full", zap.String("domain", domain), zap.Int("size", cap(o.ch)), zap.Uint64("dropped", n))
		return false
	}
}

// Close stops accepting messages and waits until the queue is sent or ctx
// ends. At ctx's end the send in flight is aborted, what is left in the
// queue is dropped, and ctx's error is returned. Close may be called more
// than once.
func (o *Outbox) Close(ctx context.Context) error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
	o.mu.Unlock()
	select {
	case <-o.done:
		o.cancel()
		return nil
	case <-ctx.Done():
	}
	o.cancel()
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
	}
	return ctx.Err()
}

// Stats returns how many messages were sent, failed after all tries (or
// were refused by Queue), and dropped.
func (o *Outbox) Stats() (sent, failed, dropped uint64) {
	return o.sent.Load(), o.failed.Load(), o.dropped.Load()
}

func (o *Outbox) run() {
	defer close(o.done)
	for m := range o.ch {
		if o.ctx.Err() != nil {
			n := o.dropped.Add(1)
			o.log.Warn("email dropped: outbox closed before it was sent",
				zap.String("domain", recipientDomain(m.To)), zap.Uint64("dropped", n))
			continue
		}
		o.deliver(m)
	}
}

func (o *Outbox) deliver(m Message) {
	domain := recipientDomain(m.To)
	wait := o.backoff
	for try := 1; ; try++ {
		err := o.s.Send(o.ctx, m)
		if err == nil {
			o.sent.Add(1)
			o.log.Info("email sent", zap.String("domain", domain), zap.Int("try", try))
			return
		}
		last := try >= o.tries || IsPermanent(err) || o.ctx.Err() != nil
		o.log.Warn("email send failed",
			zap.String("domain", domain),
			zap.Int("try", try),
			zap.Bool("retry", !last),
			zap.String("error", redact(err, m.To)))
		if last {
			o.failed.Add(1)
			o.log.Error("email not delivered", zap.String("domain", domain), zap.Int("tries", try))
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-o.ctx.Done():
			t.Stop()
			o.failed.Add(1)
			o.log.Error("email not delivered: outbox closed", zap.String("domain", domain), zap.Int("tries", try))
			return
		}
		wait *= 2
	}
}

// recipientDomain is the part of the recipient that logs may show.
func recipientDomain(to string) string {
	if a, err := parseRecipient(to); err == nil {
		return domainOf(a.Address)
	}
	return ""
}

// redact removes the recipient's local part from an error text: servers
// echo the address in replies such as "550 5.1.1 <bob@example.com>: no
// such user", and logs carry the domain only.
func redact(err error, to string) string {
	msg := err.Error()
	addr := to
	if a, perr := parseRecipient(to); perr == nil {
		addr = a.Address
	}
	i := len(addr) - len(domainOf(addr)) - 1
	if addr == "" || i <= 0 {
		return msg
	}
	re, rerr := regexp.Compile(`(?i)` + regexp.QuoteMeta(addr[:i]) + `@`)
	if rerr != nil {
		return msg
	}
	return re.ReplaceAllLiteralString(msg, "…@")
}
