package sms

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/contact"
)

// Outbox sends text messages in the background: Queue never blocks, a full
// queue drops (and logs) the message, and one worker sends each message up
// to three times with backoff (a permanent refusal is not retried). Logs
// show numbers masked, never the body: it holds a code.
type Outbox struct {
	s       Sender
	log     *zap.Logger
	backoff time.Duration

	mu     sync.RWMutex
	closed bool
	ch     chan message

	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc
	done   chan struct{}
}

type message struct{ to, body string }

const outboxTries = 3

// NewOutbox starts the worker; size bounds the queue.
func NewOutbox(s Sender, logger *zap.Logger, size int) *Outbox {
	return newOutbox(s, logger, size, 2*time.Second)
}

func newOutbox(s Sender, logger *zap.Logger, size int, backoff time.Duration) *Outbox {
	if logger == nil {
		logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Outbox{s: s, log: logger, backoff: backoff, ch: make(chan message, max(size, 1)), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go o.run()
	return o
}

// Queue hands a message to the worker and reports whether it was queued.
func (o *Outbox) Queue(to, body string) bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return false
	}
	select {
	case o.ch <- message{to, body}:
		return true
	default:
		o.log.Warn("text message dropped: queue full", zap.String("to", contact.MaskPhone(to)), zap.Int("size", cap(o.ch)))
		return false
	}
}

func (o *Outbox) run() {
	defer close(o.done)
	for m := range o.ch {
		o.send(m)
	}
}

func (o *Outbox) send(m message) {
	wait := o.backoff
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(o.ctx, 15*time.Second)
		err := o.s.Send(ctx, m.to, m.body)
		cancel()
		if err == nil {
			o.log.Info("text message sent", zap.String("to", contact.MaskPhone(m.to)))
			return
		}
		var perm *PermanentError
		if errors.As(err, &perm) || try == outboxTries || o.ctx.Err() != nil {
			o.log.Error("text message not sent", zap.String("to", contact.MaskPhone(m.to)), zap.Int("tries", try), zap.Error(err))
			return
		}
		select {
		case <-time.After(wait):
		case <-o.ctx.Done():
		}
		wait *= 2
	}
}

// Close stops accepting messages and waits for the queue until ctx ends;
// then the send in flight is aborted and the rest dropped.
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
		o.cancel()
		<-o.done
		return ctx.Err()
	}
}
