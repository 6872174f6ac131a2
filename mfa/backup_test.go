package mfa

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// TestBackupHoldsQueuedEvents: events still queued in memory when the
// backup is asked for are in it, and so is the backup's own event.
func TestBackupHoldsQueuedEvents(t *testing.T) {
	svc, _ := newService(t)
	svc.Audit.Record(audit.Event{Type: audit.TypeSignIn, Actor: "alice", Subject: "alice"})
	var buf bytes.Buffer
	n, err := svc.Backup(context.Background(), Operator, &buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Backup: %d bytes (wrote %d), %v", n, buf.Len(), err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := bolt.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.AuditEvents != 2 {
		t.Fatalf("the backup holds %d audit events, want the queued sign-in and the backup", rep.AuditEvents)
	}
}

// noBackup is a store that cannot copy itself.
type noBackup struct{ storage.Store }

func TestBackupUnsupported(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Open(Options{Store: noBackup{store}, Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	if _, err := svc.Backup(context.Background(), Operator, &bytes.Buffer{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Backup on a store without it: %v, want ErrUnsupported", err)
	}
}
