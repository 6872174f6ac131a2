package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage"
)

// TestMigrateFromVersion1: a schema an earlier build left at version 1,
// with records, is brought to the change feed's version on open; the
// records stay and writes from then on are logged.
func TestMigrateFromVersion1(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v1 := strings.ReplaceAll(migrations[0], "{s}", "old")
	if _, err := conn.Exec(ctx, `CREATE SCHEMA old;
		CREATE TABLE old.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO old.schema_version (version) VALUES (1);`+v1+`
		INSERT INTO old.sessions (id, data) VALUES ('\x6b', '{"id":"k","state":2,"aal":1,"created_at":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z","expires_at":"2999-01-01T00:00:00Z"}')`); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, Options{DSN: dsn, Schema: "old"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM old.schema_version").Scan(&v); err != nil || v != schemaVersion() {
		t.Fatalf("schema version %d (%v), want %d", v, err, schemaVersion())
	}
	pos, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		rec, err := tx.Session("k")
		if err != nil {
			return err
		}
		rec.LastSeen = time.Now()
		return tx.PutSession(rec)
	}); err != nil {
		t.Fatal(err)
	}
	cs, _, err := s.Changes(ctx, pos, 10)
	if err != nil || len(cs) != 1 || cs[0].Kind != storage.SessionSeen || cs[0].ID != "k" {
		t.Fatalf("changes after migrating: %+v, %v; want the one activity update of k", cs, err)
	}
}
