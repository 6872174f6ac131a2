package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions: migrations[i] takes the schema
// from version i to i+1. A version, once released, never changes; a layout
// change appends a step. "{s}" stands for the quoted schema name.
//
// The version reached is recorded in {s}.schema_version, one row per step
// applied, so that an older build refuses a schema a newer one migrated
// instead of misreading it.
var migrations = []string{
	// 1: users, sessions, settings, audit.
	`CREATE TABLE {s}.users (
		id   bytea PRIMARY KEY,
		data json  NOT NULL
	);
	CREATE TABLE {s}.sessions (
		id   bytea PRIMARY KEY,
		data json  NOT NULL
	);
	CREATE TABLE {s}.settings (
		key   bytea PRIMARY KEY,
		value bytea NOT NULL
	);
	CREATE TABLE {s}.audit (
		at_ns bigint    NOT NULL,
		seq   bigserial NOT NULL,
		data  bytea     NOT NULL,
		PRIMARY KEY (at_ns, seq)
	);`,

	// 2: the change feed (feed.go). Triggers log every write to sessions
	// and settings in the writer's own transaction, whoever the writer is
	// (this build, an older one, `caddy mfa db migrate`, an operator's
	// SQL), and announce it on the schema's channel; the announcement is
	// delivered at commit and carries only the version.
	//
	// txid is the writing transaction, so that a reader can tell a version
	// still to commit from a gap (see Store.Changes). at is the insert's
	// own time, not the transaction's, for pruning.
	//
	// An update of a session that changes only last_seen (the activity
	// flush, every few seconds for every active session) is logged as
	// 'seen' but not announced: readers pick it up on their once-a-second
	// read, which is soon enough for idle expiry, and do not wake for it.
	// Go's encoding/json writes "last_seen":"<time>" once per record and
	// escapes every quote inside strings, so the pattern matches that
	// field only. (jsonb cannot be used to compare: it refuses the NUL
	// characters a json column keeps.)
	//
	// changes_pruned holds the highest version pruned: a reader whose
	// position is below it has missed changes.
	`CREATE TABLE {s}.changes (
		version bigserial   PRIMARY KEY,
		kind    text        NOT NULL,
		id      bytea       NOT NULL,
		txid    bigint      NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
		at      timestamptz NOT NULL DEFAULT clock_timestamp()
	);
	CREATE INDEX changes_txid ON {s}.changes (txid);
	CREATE INDEX changes_at ON {s}.changes (at);
	CREATE TABLE {s}.changes_pruned (
		one     boolean PRIMARY KEY DEFAULT true CHECK (one),
		version bigint  NOT NULL
	);
	INSERT INTO {s}.changes_pruned (version) VALUES (0);

	CREATE FUNCTION {s}.session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		v bigint;
	BEGIN
		IF TG_OP = 'UPDATE' AND OLD.id = NEW.id
			AND regexp_replace(OLD.data::text, '"last_seen":"[^"]*"', '')
			  = regexp_replace(NEW.data::text, '"last_seen":"[^"]*"', '') THEN
			INSERT INTO {s}.changes (kind, id) VALUES ('seen', NEW.id);
			RETURN NULL;
		END IF;
		IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
			INSERT INTO {s}.changes (kind, id) VALUES ('session', OLD.id);
		END IF;
		INSERT INTO {s}.changes (kind, id)
			VALUES ('session', CASE TG_OP WHEN 'DELETE' THEN OLD.id ELSE NEW.id END)
			RETURNING version INTO v;
		PERFORM pg_notify({channel}, v::text);
		RETURN NULL;
	END $$;
	CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON {s}.sessions
		FOR EACH ROW EXECUTE FUNCTION {s}.session_changed();

	CREATE FUNCTION {s}.setting_changed() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		v bigint;
	BEGIN
		IF TG_OP = 'UPDATE' AND OLD.key <> NEW.key THEN
			INSERT INTO {s}.changes (kind, id) VALUES ('setting', OLD.key);
		END IF;
		INSERT INTO {s}.changes (kind, id)
			VALUES ('setting', CASE TG_OP WHEN 'DELETE' THEN OLD.key ELSE NEW.key END)
			RETURNING version INTO v;
		PERFORM pg_notify({channel}, v::text);
		RETURN NULL;
	END $$;
	CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON {s}.settings
		FOR EACH ROW EXECUTE FUNCTION {s}.setting_changed();

	CREATE FUNCTION {s}.table_reset() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		v bigint;
	BEGIN
		INSERT INTO {s}.changes (kind, id) VALUES ('reset', ''::bytea) RETURNING version INTO v;
		PERFORM pg_notify({channel}, v::text);
		RETURN NULL;
	END $$;
	CREATE TRIGGER reset AFTER TRUNCATE ON {s}.sessions
		FOR EACH STATEMENT EXECUTE FUNCTION {s}.table_reset();
	CREATE TRIGGER reset AFTER TRUNCATE ON {s}.settings
		FOR EACH STATEMENT EXECUTE FUNCTION {s}.table_reset();`,
}

// schemaVersion is the version this build reads and writes.
func schemaVersion() int { return len(migrations) }

// lockKey is the advisory lock that serialises migrations of one schema
// across every instance (and every database on the server, which costs
// nothing: migrations are rare and short).
func lockKey(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("mfagate schema migration\x00" + schema))
	return int64(h.Sum64())
}

// migrate creates the schema or brings it to this build's version, all in
// one transaction under a transaction-level advisory lock: two instances
// starting at once on an empty database take turns, and the second finds
// the work done. A failed step leaves the schema as it was.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema)); err != nil {
		return fmt.Errorf("wait for the migration lock: %w", err)
	}
	v, err := currentVersion(ctx, tx, schema)
	if err != nil {
		return err
	}
	if v > schemaVersion() {
		return fmt.Errorf("schema version %d is newer than this build supports (%d): run the newer build, or restore a backup taken before it", v, schemaVersion())
	}
	if v == schemaVersion() {
		return nil // nothing to write: leave the lock at once
	}
	s := pgx.Identifier{schema}.Sanitize()
	if v == 0 {
		// Created only when missing: CREATE SCHEMA IF NOT EXISTS needs the
		// right to create schemas even when it exists, which a role given
		// a ready schema may lack.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return fmt.Errorf("look for the schema: %w", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE "+s+`.schema_version (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
	}
	r := strings.NewReplacer("{s}", s, "{channel}", quoteLiteral(channelName(schema)))
	for i := v; i < schemaVersion(); i++ {
		if _, err := tx.Exec(ctx, r.Replace(migrations[i])); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+s+".schema_version (version) VALUES ($1)", i+1); err != nil {
			return fmt.Errorf("record version %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}

// channelName is the channel a schema's changes are announced on. Channel
// names are at most 63 bytes: a longer one is cut, and two long schemas
// sharing a prefix then share a channel, which costs only a needless
// wake-up (an announcement says nothing but that something changed).
func channelName(schema string) string {
	c := "mfagate_" + schema
	return c[:min(len(c), 63)]
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// currentVersion is the schema's version: 0 for a missing or empty schema.
// A schema with tables but no schema_version belongs to another program and
// is refused rather than written into.
func currentVersion(ctx context.Context, tx pgx.Tx, schema string) (int, error) {
	var tables int
	var versioned bool
	err := tx.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(tablename = 'schema_version'), false)
		FROM pg_tables WHERE schemaname = $1`, schema).Scan(&tables, &versioned)
	if err != nil {
		return 0, fmt.Errorf("read the schema's tables: %w", err)
	}
	switch {
	case tables == 0:
		return 0, nil
	case !versioned:
		return 0, errors.New("the schema holds tables of another program (no schema_version table): choose another schema")
	}
	var v int
	err = tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+pgx.Identifier{schema, "schema_version"}.Sanitize()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema_version: %w", err)
	}
	if v == 0 {
		return 0, errors.New("schema_version is empty: a first migration was cut short outside a transaction, or the table was edited; restore the schema or choose another")
	}
	return v, nil
}

// queries are the statements of a store, with its schema's tables named in
// full: they never depend on the connection's search_path.
type queries struct {
	getUser, putUser, delUser, listUsers             string
	getSession, putSession, delSession, listSessions string
	getSessions                                      string
	getSetting, putSetting, listSettings             string
	appendAudit, scanAudit, pruneAudit, trimAudit    string
}

// page is how many rows a listing fetches at a time. Rows are read in full
// before fn sees them, since fn may write in the same transaction.
const page = 256

func newQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{s}", s)
	get := func(table string) string { return r.Replace("SELECT data FROM {s}." + table + " WHERE id = $1") }
	put := func(table string) string {
		return r.Replace("INSERT INTO {s}." + table + " (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data")
	}
	del := func(table string) string { return r.Replace("DELETE FROM {s}." + table + " WHERE id = $1") }
	list := func(table string) string {
		return r.Replace(fmt.Sprintf("SELECT id, data FROM {s}.%s WHERE id > $1 ORDER BY id LIMIT %d", table, page))
	}
	return queries{
		getUser: get("users"), putUser: put("users"), delUser: del("users"), listUsers: list("users"),
		getSession: get("sessions"), putSession: put("sessions"), delSession: del("sessions"), listSessions: list("sessions"),
		getSessions:  r.Replace("SELECT id, data FROM {s}.sessions WHERE id = ANY($1)"),
		getSetting:   r.Replace("SELECT value FROM {s}.settings WHERE key = $1"),
		listSettings: r.Replace(fmt.Sprintf("SELECT key, value FROM {s}.settings WHERE key > $1 ORDER BY key LIMIT %d", page)),
		putSetting:   r.Replace("INSERT INTO {s}.settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),

		appendAudit: r.Replace("INSERT INTO {s}.audit (at_ns, data) VALUES ($1, $2)"),
		scanAudit: r.Replace(fmt.Sprintf(`SELECT at_ns, seq, data FROM {s}.audit
			WHERE (at_ns, seq) < ($1, $2) ORDER BY at_ns DESC, seq DESC LIMIT %d`, page)),
		pruneAudit: r.Replace("DELETE FROM {s}.audit WHERE at_ns < $1"),
		// The records past the newest $1, in one statement: the count is
		// the transaction's own, after any earlier prune in it.
		trimAudit: r.Replace(`DELETE FROM {s}.audit a USING (
			SELECT at_ns, seq FROM {s}.audit ORDER BY at_ns DESC, seq DESC OFFSET $1
		) old WHERE a.at_ns = old.at_ns AND a.seq = old.seq`),
	}
}
