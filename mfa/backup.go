package mfa

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/storage"
)

// Backup writes a consistent snapshot of the whole database to w while the
// gateway keeps serving, and returns the bytes written. The backup is
// audited, and the audit events and session activity still queued in
// memory are written first, so the copy holds everything up to the call,
// its own event included. A store that cannot copy itself gives an error
// wrapping errors.ErrUnsupported. w may implement storage.BackupSizer.
func (svc *Service) Backup(ctx context.Context, a Actor, w io.Writer) (int64, error) {
	b, ok := svc.Store.(storage.Backuper)
	if !ok {
		return 0, fmt.Errorf("mfa: backup: this store cannot copy itself: %w", errors.ErrUnsupported)
	}
	svc.Audit.Record(a.event(audit.TypeBackup, "", nil))
	svc.FlushActivity()
	if err := svc.Audit.Flush(ctx); err != nil {
		return 0, fmt.Errorf("mfa: backup: write the queued audit events: %w", err)
	}
	n, err := b.Backup(ctx, w)
	if err != nil {
		return n, fmt.Errorf("mfa: backup: %w", err)
	}
	return n, nil
}
