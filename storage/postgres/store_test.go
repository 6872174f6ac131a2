package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/postgres"
	"github.com/mfagate/mfagate/storage/storetest"
)

// openFresh returns an opener of new, empty stores on one database: each
// in a schema of its own, which exercises the schema option as it goes.
func openFresh(dsn string) func(t *testing.T) storage.Store {
	var n atomic.Int64
	return func(t *testing.T) storage.Store {
		t.Helper()
		s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: fmt.Sprintf("t%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.RunConformance(t, openFresh(srv.NewDatabase(t)))
}

func TestAuditConformance(t *testing.T) {
	srv := pgtest.Start(t)
	open := openFresh(srv.NewDatabase(t))
	storetest.RunAuditConformance(t, func(t *testing.T) storage.AuditStore { return open(t).Audit() })
}
