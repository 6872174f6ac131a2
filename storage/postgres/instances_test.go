package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/postgres"
)

func open(t *testing.T, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestInstances runs the cases that need several stores (pools) on one
// database, as several gateway instances have, on one server.
func TestInstances(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("ConcurrentFirstStart", func(t *testing.T) { testConcurrentFirstStart(t, srv) })
	t.Run("SingleUseAcrossInstances", func(t *testing.T) { testSingleUse(t, srv) })
	t.Run("NoLostUpdateAcrossInstances", func(t *testing.T) { testNoLostUpdate(t, srv) })
	t.Run("AuditOrderAcrossInstances", func(t *testing.T) { testAuditAcross(t, srv) })
	t.Run("SchemaVersions", func(t *testing.T) { testSchemaVersions(t, srv) })
	t.Run("ForeignSchema", func(t *testing.T) { testForeignSchema(t, srv) })
}

// testConcurrentFirstStart starts several instances at once on an empty
// database: the advisory lock makes them take turns, so all start and the
// schema is migrated once.
func testConcurrentFirstStart(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Options{DSN: dsn, MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	rows := query[int](t, dsn, "SELECT version FROM mfagate.schema_version ORDER BY version")
	if !slices.Equal(rows, []int{1, 2}) { // each version once
		t.Fatalf("schema_version rows %v, want [1 2]", rows)
	}
	// Each instance works on the shared tables.
	for i, s := range stores {
		if err := s.Update(context.Background(), func(tx storage.Tx) error {
			return tx.PutUser(storage.User{ID: fmt.Sprint("u", i)})
		}); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	if got := query[int](t, dsn, "SELECT count(*)::int FROM mfagate.users"); got[0] != n {
		t.Fatalf("%d users, want %d", got[0], n)
	}
}

// testSingleUse is a recovery code spent from two instances at once: each
// reads the user, finds the code unused, removes it and records a sign-in.
// Update is serialisable across pools, so exactly one wins each round; the
// loser, run again, finds the code gone.
func testSingleUse(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	a, b := open(t, postgres.Options{DSN: dsn}), open(t, postgres.Options{DSN: dsn})
	errSpent := errors.New("code already used")
	spend := func(s *postgres.Store, code string) (won bool, err error) {
		err = s.Update(context.Background(), func(tx storage.Tx) error {
			won = false // fn may run again
			u, err := tx.User("alice")
			if err != nil {
				return err
			}
			i := -1
			for k, h := range u.RecoveryHashes {
				if string(h) == code {
					i = k
				}
			}
			if i < 0 {
				return errSpent
			}
			u.RecoveryHashes = append(u.RecoveryHashes[:i:i], u.RecoveryHashes[i+1:]...)
			u.TOTPLastStep++ // counts the codes accepted
			if err := tx.PutUser(u); err != nil {
				return err
			}
			won = true
			return nil
		})
		if errors.Is(err, errSpent) {
			return false, nil
		}
		return won, err
	}
	const rounds = 40
	var codes [][]byte
	for i := range rounds {
		codes = append(codes, fmt.Appendf(nil, "code%02d", i))
	}
	if err := a.Update(context.Background(), func(tx storage.Tx) error {
		return tx.PutUser(storage.User{ID: "alice", RecoveryHashes: codes})
	}); err != nil {
		t.Fatal(err)
	}
	for i := range rounds {
		code := fmt.Sprintf("code%02d", i)
		var wins [2]bool
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for k, s := range []*postgres.Store{a, b} {
			wg.Go(func() { <-start; wins[k], errs[k] = spend(s, code) })
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v", i, errs[0], errs[1])
		}
		if wins[0] == wins[1] {
			t.Fatalf("round %d: instance wins %v; want exactly one", i, wins)
		}
	}
	var u storage.User
	if err := b.View(context.Background(), func(tx storage.Tx) (err error) { u, err = tx.User("alice"); return }); err != nil {
		t.Fatal(err)
	}
	if len(u.RecoveryHashes) != 0 || u.TOTPLastStep != rounds {
		t.Fatalf("after %d rounds: %d codes left, %d accepted", rounds, len(u.RecoveryHashes), u.TOTPLastStep)
	}
}

// testNoLostUpdate is the conformance suite's lost-update check with the
// writers split over three pools.
func testNoLostUpdate(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	stores := []*postgres.Store{open(t, postgres.Options{DSN: dsn}), open(t, postgres.Options{DSN: dsn}), open(t, postgres.Options{DSN: dsn})}
	if err := stores[0].Update(context.Background(), func(tx storage.Tx) error { return tx.PutUser(storage.User{ID: "alice"}) }); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- stores[i%len(stores)].Update(context.Background(), func(tx storage.Tx) error {
				u, err := tx.User("alice")
				if err != nil {
					return err
				}
				u.TOTPLastStep++
				u.RecoveryHashes = append(u.RecoveryHashes, []byte{byte(i)})
				return tx.PutUser(u)
			})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var u storage.User
	if err := stores[1].View(context.Background(), func(tx storage.Tx) (err error) { u, err = tx.User("alice"); return }); err != nil {
		t.Fatal(err)
	}
	seen := map[byte]bool{}
	for _, h := range u.RecoveryHashes {
		seen[h[0]] = true
	}
	if u.TOTPLastStep != n || len(u.RecoveryHashes) != n || len(seen) != n {
		t.Fatalf("step %d, %d marks (%d distinct); want %d of each", u.TOTPLastStep, len(u.RecoveryHashes), len(seen), n)
	}
}

// testAuditAcross appends from two instances at one instant: every reader
// sees the same order, and paging with one instance's cursors on the other
// finds every record once.
func testAuditAcross(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	a, b := open(t, postgres.Options{DSN: dsn}), open(t, postgres.Options{DSN: dsn})
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	var wg sync.WaitGroup
	for k, s := range []*postgres.Store{a, b} {
		wg.Go(func() {
			for i := range 20 {
				if err := s.Audit().Update(context.Background(), func(tx storage.AuditTx) error {
					return tx.AppendAudit(at, fmt.Appendf(nil, "%d-%02d", k, i))
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	scan := func(s *postgres.Store, before string, max int) (cursors, data []string) {
		if err := s.Audit().View(context.Background(), func(tx storage.AuditTx) error {
			cursors, data = nil, nil
			return tx.ScanAudit(before, func(c string, _ time.Time, d []byte) (bool, error) {
				cursors, data = append(cursors, c), append(data, string(d))
				return len(data) < max, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return cursors, data
	}
	_, fromA := scan(a, "", 1000)
	_, fromB := scan(b, "", 1000)
	if len(fromA) != 40 || strings.Join(fromA, ",") != strings.Join(fromB, ",") {
		t.Fatalf("instances disagree on the order:\n%q\n%q", fromA, fromB)
	}
	// Each instance's own appends keep their order (newest first).
	last := map[byte]string{}
	for _, d := range fromA {
		if prev, ok := last[d[0]]; ok && prev < d {
			t.Fatalf("%s after %s: same-time records out of append order", d, prev)
		}
		last[d[0]] = d
	}
	var paged []string
	cursor := ""
	for i := 0; ; i++ {
		s := []*postgres.Store{a, b}[i%2]
		cs, ds := scan(s, cursor, 7)
		if len(ds) == 0 {
			break
		}
		paged, cursor = append(paged, ds...), cs[len(cs)-1]
	}
	if strings.Join(paged, ",") != strings.Join(fromA, ",") {
		t.Fatalf("paging across instances:\n%q\nwant\n%q", paged, fromA)
	}
}

// testSchemaVersions: a schema at a newer version than this build is
// refused with a clear error; the schema option keeps stores apart.
func testSchemaVersions(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	one := open(t, postgres.Options{DSN: dsn, Schema: "one"})
	two := open(t, postgres.Options{DSN: dsn, Schema: "two"})
	if err := one.Update(context.Background(), func(tx storage.Tx) error { return tx.PutSetting("k", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := two.View(context.Background(), func(tx storage.Tx) error {
		_, err := tx.Setting("k")
		if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("schema two sees schema one's setting: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Reopening finds the schema current and changes nothing.
	_ = open(t, postgres.Options{DSN: dsn, Schema: "one"})
	if got := query[int](t, dsn, "SELECT count(*)::int FROM one.schema_version"); got[0] != 2 { // one row per version
		t.Fatalf("reopen: %d schema_version rows, want 2", got[0])
	}
	exec(t, dsn, "INSERT INTO one.schema_version (version) VALUES (99)")
	_, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: "one"})
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer than this build supports") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

// testForeignSchema: a schema holding another program's tables is refused,
// not written into.
func testForeignSchema(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	exec(t, dsn, "CREATE TABLE public.users (name text)")
	_, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: "public"})
	if err == nil || !strings.Contains(err.Error(), "tables of another program") {
		t.Fatalf("open on a foreign schema: %v", err)
	}
	if got := query[int](t, dsn, "SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public'"); got[0] != 1 {
		t.Fatalf("the refused open left %d tables in public, want the 1 it found", got[0])
	}
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func query[T any](t *testing.T, dsn, sql string) []T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), sql)
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
