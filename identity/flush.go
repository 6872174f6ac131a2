package identity

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
)

// closeFlushTimeout bounds the final flush in Close.
const closeFlushTimeout = 5 * time.Second

// Flush writes the health counts made since the last flush to the store,
// in one Batch transaction, adding them to what the store holds (which
// another instance, or the previous config during a reload, may have added
// to meanwhile); then the merged counts become this instance's base. With
// nothing new counted it writes nothing and only re-reads the stored
// counts, so an idle instance still sees others' traffic.
//
// Failures counted since the last flush are logged here, once per flush
// (one warning with counts per cause), rather than once per request.
//
// On error nothing is lost: the counts stay in memory for the next flush.
func (s *Service) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	d := s.health.pending()
	cur := hourOf(s.now())
	if d.empty() {
		return s.pullHealth(ctx, cur)
	}
	var merged *baseCounts
	var corrupt error
	err := s.store.Batch(ctx, func(tx storage.Tx) error {
		// Batch may run this more than once: recompute from what this
		// transaction reads, every time.
		raw, err := setting(tx, SettingHealth)
		if err != nil {
			return err
		}
		var stored *baseCounts
		corrupt = nil
		if raw != nil {
			if stored, corrupt = decodeCounts(raw, cur); corrupt != nil {
				stored = nil // overwrite: unreadable counts cannot be added to
			}
		}
		merged = d.mergeInto(stored, cur)
		out, err := encodeCounts(merged.hours, merged.last)
		if err != nil {
			return err
		}
		return tx.PutSetting(SettingHealth, out)
	})
	if err != nil {
		return fmt.Errorf("identity: flush health: %w", err)
	}
	s.health.settle(d, merged)
	if corrupt != nil {
		s.log.Warn("identity health counters in the store were unreadable and were replaced", zap.Error(corrupt))
	}
	s.logFailures(&d)
	return nil
}

// pullHealth replaces the base with the stored counts.
func (s *Service) pullHealth(ctx context.Context, cur int64) error {
	var raw []byte
	if err := s.store.View(ctx, func(tx storage.Tx) error {
		var err error
		raw, err = setting(tx, SettingHealth)
		return err
	}); err != nil {
		return fmt.Errorf("identity: read health: %w", err)
	}
	if raw == nil {
		return nil
	}
	bc, err := decodeCounts(raw, cur)
	if err != nil {
		return err
	}
	// The live shards were empty when pending ran and anything counted
	// since is still there, so base = stored loses nothing.
	s.health.base.Store(bc)
	return nil
}

func (s *Service) logFailures(d *drain) {
	total, per := d.failures()
	if total == 0 {
		return
	}
	fields := []zap.Field{zap.Uint64("failures", total), zap.String("mode", string(s.Mode()))}
	list := causeList()
	for k, n := range per {
		if n > 0 {
			fields = append(fields, zap.Uint64(string(list[k]), n))
		}
	}
	s.log.Warn("identity verification failures since the last flush", fields...)
}

// loop flushes and refreshes every interval until Close.
func (s *Service) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		if err := s.Flush(ctx); err != nil {
			s.log.Warn("identity health flush failed; will retry", zap.Error(err))
		}
		if err := s.Refresh(ctx); err != nil {
			s.log.Warn("identity state refresh failed", zap.Error(err))
		}
		cancel()
	}
}

// Close stops the flush loop and flushes a last time. It does not close the
// store. Calling it again returns the first result. Check keeps working
// after Close, but nothing more is flushed.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
		defer cancel()
		s.closeErr = s.Flush(ctx)
	})
	return s.closeErr
}
