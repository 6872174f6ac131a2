package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

// FuzzScanAuditCursor feeds arbitrary cursors to ScanAudit, as a client
// editing an admin page's "older" link would: it must never panic, must
// refuse what it did not issue with ErrBadCursor, and a cursor it accepts
// must name a key (round trip) and yield only records strictly before it.
func FuzzScanAuditCursor(f *testing.F) {
	b, err := Open(filepath.Join(f.TempDir(), "fuzz.db"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	base := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	if err := b.Audit().Update(ctx, func(tx storage.AuditTx) error {
		for i := range 20 {
			if err := tx.AppendAudit(base.Add(time.Duration(i%7)*time.Second), []byte(`{"n":1}`)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	f.Add("")
	f.Add(strings.Repeat("0", auditCursorLen))
	f.Add(strings.Repeat("f", auditCursorLen))
	f.Add(strings.Repeat("F", auditCursorLen))
	f.Add("182cb5d2c8d8a2000000000000000005")
	f.Add("182CB5D2C8D8A20000000000000000zz")
	f.Add("not-a-cursor")
	f.Add(strings.Repeat("a", auditCursorLen+2))
	f.Fuzz(func(t *testing.T, cursor string) {
		var keys []string
		err := b.Audit().View(ctx, func(tx storage.AuditTx) error {
			return tx.ScanAudit(cursor, func(c string, at time.Time, data []byte) (bool, error) {
				keys = append(keys, c)
				return true, nil
			})
		})
		if err != nil {
			if !errors.Is(err, storage.ErrBadCursor) {
				t.Fatalf("ScanAudit(%q): %v, want ErrBadCursor", cursor, err)
			}
			return
		}
		if cursor == "" {
			if len(keys) != 20 {
				t.Fatalf("full scan: %d records", len(keys))
			}
			return
		}
		k, err := parseAuditCursor(cursor)
		if err != nil {
			t.Fatalf("ScanAudit accepted %q but parse refused it: %v", cursor, err)
		}
		if got := strings.ToLower(cursor); formatAuditCursor(k) != got {
			t.Fatalf("round trip %q -> %q", cursor, formatAuditCursor(k))
		}
		for i, c := range keys {
			if c >= strings.ToLower(cursor) || (i > 0 && c >= keys[i-1]) {
				t.Fatalf("cursor %q: record %d has cursor %q, out of order", cursor, i, c)
			}
		}
	})
}
