package caddymodule

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

func backupService(t *testing.T, store storage.Store) *mfa.Service {
	t.Helper()
	svc, err := mfa.Open(mfa.Options{Store: store, Key: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

// TestServeBackup: GET streams a database file with its length and type,
// which checks clean; other methods and stores that cannot copy themselves
// get an error answer, not a file.
func TestServeBackup(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "mfa.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := backupService(t, store)

	rec := httptest.NewRecorder()
	if err := serveBackup(rec, httptest.NewRequest("GET", adminBase+"backup", nil), svc); err != nil {
		t.Fatalf("GET: %v", err)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Fatalf("Content-Length %q for a %d-byte body", cl, rec.Body.Len())
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := bolt.Check(path); err != nil || rep.AuditEvents != 1 {
		t.Fatalf("the streamed backup: %+v, %v; want a good file holding the backup's audit event", rep, err)
	}

	rec = httptest.NewRecorder()
	err = serveBackup(rec, httptest.NewRequest("POST", adminBase+"backup", nil), svc)
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusMethodNotAllowed || rec.Body.Len() != 0 {
		t.Fatalf("POST: %v, body %d bytes", err, rec.Body.Len())
	}

	other, err := bolt.Open(filepath.Join(t.TempDir(), "other.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	err = serveBackup(rec, httptest.NewRequest("GET", adminBase+"backup", nil), backupService(t, struct{ storage.Store }{other}))
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusNotImplemented || rec.Body.Len() != 0 {
		t.Fatalf("a store without backups: %v, body %d bytes", err, rec.Body.Len())
	}
}
