// Package postgres implements storage.Store and storage.AuditStore on
// PostgreSQL, so that the gateway's records can live in a database that
// several gateway instances reach. It passes the same conformance suite as
// the bbolt store (package storage/storetest).
//
// # Layout
//
// All tables live in one schema (default "mfagate"), created and migrated by
// Open (see schema.go). Users and sessions are one row each: the ID as
// bytea (IDs are arbitrary strings, NUL bytes included, which text columns
// refuse) and the record as JSON in a json column, the same encoding the
// bbolt store uses. json rather than jsonb keeps the text exactly as
// written: jsonb refuses a NUL character in a string, which a user agent
// or a next URL may carry. Sealed fields stay opaque (base64 inside the
// JSON); the database never sees a secret in the clear. Settings are
// bytea key and value. The audit log is its own table keyed by
// (at_ns, seq): the time in Unix nanoseconds and a bigserial, so records
// from every instance sort the same way, same-time records keep their
// append order, and a cursor is a position that survives pruning.
//
// # Transactions
//
// Update and Batch run at SERIALIZABLE and are retried (with a short,
// jittered back-off, a bounded number of times) when PostgreSQL reports a
// serialisation failure or a deadlock, which is why the contract lets fn run
// more than once. Batch is Update: every caller gets its own transaction.
// View runs at REPEATABLE READ, READ ONLY: one snapshot, writes refused.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mfagate/mfagate/storage"
)

// DefaultSchema is the schema the tables live in when Options.Schema is
// empty: its own, so that it never mixes with an application's tables in
// public.
const DefaultSchema = "mfagate"

// ApplicationName is the application_name of the store's connections unless
// the DSN sets one.
const ApplicationName = "mfagate"

// Options configures Open.
type Options struct {
	// DSN is the connection string, as a URL
	// (postgres://user:password@host:5432/db?sslmode=verify-full) or as
	// key=value pairs. Required.
	DSN string
	// Schema holds the tables: lower-case letters, digits and underscores,
	// starting with a letter or underscore, at most 63. Default "mfagate".
	Schema string
	// MaxConns bounds the connection pool; 0 keeps pgx's default (the
	// larger of 4 and the number of CPUs). The change feed's listener,
	// once started, holds one connection more.
	MaxConns int32
	// ChangeRetention is how long the change log keeps a change; 0 means
	// DefaultChangeRetention.
	ChangeRetention time.Duration
}

// Store is a storage.Store on a PostgreSQL database. It is safe for
// concurrent use; open it once per process.
type Store struct {
	pool   *pgxpool.Pool
	target string // the database, without credentials, for messages
	q      queries
	fq     feedQueries

	connConfig *pgx.ConnConfig // for the change listener's own connection
	retention  time.Duration
	listening  atomic.Bool
	life       context.Context // ends at Close, stopping the listener
	closeLife  context.CancelFunc
	bg         sync.WaitGroup
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.AuditStore    = auditLog{}
	_ storage.AuditTx       = (*txn)(nil)
	_ storage.SettingLister = (*txn)(nil)
	_ storage.SessionReader = (*txn)(nil)
)

// connectTimeout bounds each connection attempt when the DSN sets none, so
// an unreachable database fails the start with a clear error rather than
// hanging it.
const connectTimeout = 10 * time.Second

// openTimeout bounds Open as a whole: connecting, waiting for another
// instance's migration, migrating.
const openTimeout = time.Minute

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether name (empty meaning DefaultSchema) is a schema
// name Open accepts, and why not.
func ValidSchema(name string) error {
	if name == "" || schemaName.MatchString(name) {
		return nil
	}
	return fmt.Errorf("schema %q: want lower-case letters, digits and underscores, starting with a letter or underscore, at most 63", name)
}

// Target describes the database a DSN names, without its password: user,
// host, port and database. It is safe to log and stable for one database.
func Target(dsn string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message shows the DSN with the password redacted.
		return "", fmt.Errorf("postgres: dsn: %w", err)
	}
	return fmt.Sprintf("postgres://%s@%s/%s", cfg.User, hostPort(cfg.Host, cfg.Port), cfg.Database), nil
}

func hostPort(host string, port uint16) string {
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// Open connects to the database, creates or migrates the schema (see
// migrate), and returns the store. An unreachable database, a refused
// login or a schema of a newer build is an error naming the database
// (never its password).
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("postgres: open: empty dsn")
	}
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if err := ValidSchema(schema); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	target, err := Target(opts.DSN)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: dsn: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	// Named, so that an operator (and a test) can tell the gateway's
	// connections apart in pg_stat_activity.
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = ApplicationName
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", target, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", target, err)
	}
	if err := migrate(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s schema %q: %w", target, schema, err)
	}
	retention := opts.ChangeRetention
	if retention <= 0 {
		retention = DefaultChangeRetention
	}
	life, closeLife := context.WithCancel(context.Background())
	return &Store{
		pool: pool, target: target, q: newQueries(schema), fq: newFeedQueries(schema),
		connConfig: cfg.ConnConfig, retention: retention, life: life, closeLife: closeLife,
	}, nil
}

// Target describes the store's database without credentials.
func (s *Store) Target() string { return s.target }

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	return s.run(ctx, true, func(t *txn) error { return fn(t) })
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.run(ctx, false, func(t *txn) error { return fn(t) })
}

// Batch implements storage.Store. It is Update: PostgreSQL commits are
// cheap enough next to the work of coalescing, and one transaction per
// caller keeps a failing caller's writes apart from the others'.
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Update(ctx, fn)
}

// Audit implements storage.Store. The log shares the database and its
// transactions: a storage.Tx of this store is a storage.AuditTx too, so an
// event can commit (or roll back) with the change it records.
func (s *Store) Audit() storage.AuditStore { return auditLog{s} }

// Close implements storage.Store: it stops the change listener and closes
// the pool. Calling it again returns nil.
func (s *Store) Close() error {
	s.closeLife()
	s.bg.Wait()
	s.pool.Close()
	return nil
}

// maxAttempts bounds how often a transaction runs when it keeps losing
// serialisation conflicts. Conflicts need two writers of one record at
// once, which in the gateway is one user's own requests racing: a few
// retries settle it; the bound only stops a pathological loop.
const maxAttempts = 50

// backoff is the wait before attempt n+1: random, up to a ceiling that
// doubles from 1ms to 64ms, so that the losers of a conflict do not meet
// again at once.
func backoff(n int) time.Duration {
	ceiling := time.Millisecond << min(n, 6)
	return rand.N(ceiling) + time.Millisecond/4
}

// run runs fn in a transaction, again when it fails on a serialisation
// conflict or a deadlock, until it commits, fails otherwise, or ran
// maxAttempts times.
func (s *Store) run(ctx context.Context, readOnly bool, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable}
	if readOnly {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	for n := 1; ; n++ {
		err := s.once(ctx, opts, readOnly, fn)
		if err == nil || !retryable(err) {
			return err
		}
		if n == maxAttempts {
			return fmt.Errorf("postgres: %s: gave up after %d attempts on conflicting transactions: %w", s.target, n, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: %w (while retrying after: %v)", ctx.Err(), err)
		case <-time.After(backoff(n)):
		}
	}
}

// once runs fn in one transaction. fn's own error comes back as it is, so
// that errors.Is finds it.
func (s *Store) once(ctx context.Context, opts pgx.TxOptions, readOnly bool, fn func(*txn) error) error {
	ptx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: %s: begin: %w", s.target, err)
	}
	// Rolled back however fn ends, a panic included; after a commit this
	// is a no-op. It runs even when ctx is done, to return the connection
	// clean.
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	t := &txn{ctx: ctx, tx: ptx, q: &s.q, readOnly: readOnly}
	defer func() { t.tx = nil }()
	if err := fn(t); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: %s: commit: %w", s.target, err)
	}
	return nil
}

// retryable reports a serialisation failure or a deadlock: the transaction
// was rolled back and may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// auditLog is the store's audit log: the store's transactions, typed for
// storage.AuditTx.
type auditLog struct{ s *Store }

// View implements storage.AuditStore.
func (a auditLog) View(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.s.run(ctx, true, func(t *txn) error { return fn(t) })
}

// Update implements storage.AuditStore.
func (a auditLog) Update(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.s.run(ctx, false, func(t *txn) error { return fn(t) })
}

// Batch implements storage.AuditStore; see Store.Batch.
func (a auditLog) Batch(ctx context.Context, fn func(storage.AuditTx) error) error {
	return a.Update(ctx, fn)
}
