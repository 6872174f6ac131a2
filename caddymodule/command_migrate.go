package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/postgres"
)

// migrateCommand is `caddy mfa db migrate`: copy a whole store into another,
// bolt to PostgreSQL or back, with no Caddy running on either.
func migrateCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate --from bolt:PATH|postgres:DSN --to bolt:PATH|postgres:DSN",
		Short: "Copy every user, session, setting and audit event into another store (Caddy stopped); safe to run again",
		Long: `Copies every user, session, setting and audit event from one store into
another and checks that the destination holds them all, equal. Records are
put by ID and audit events the destination already holds are not added
again, so running it twice gives the same result. The destination's other
records are kept.

A store is bolt:PATH (a database file no running Caddy holds) or
postgres:DSN (postgres: alone reads the DSN from $MFA_PG_DSN, which keeps
the password out of the shell history). Stop Caddy first; use the same
encryption key with the new store, since sealed secrets are copied as they
are.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         cmdDBMigrate,
	}
	c.Flags().String("from", "", "the store to copy from (required)")
	c.Flags().String("to", "", "the store to copy into (required)")
	c.Flags().String("schema", postgres.DefaultSchema, "the PostgreSQL schema, for a postgres: store")
	return c
}

// endpoint is one side of a migration.
type endpoint struct {
	kind string // "bolt" or "postgres"
	path string // bolt: absolute path
	dsn  string // postgres
	name string // for messages: the path, or the database without credentials
}

// parseEndpoint reads bolt:PATH, postgres:DSN, postgres: (DSN from
// $MFA_PG_DSN) or a bare postgres:// URL.
func parseEndpoint(flag, spec string) (endpoint, error) {
	switch {
	case spec == "":
		return endpoint{}, fmt.Errorf("--%s is required: bolt:PATH or postgres:DSN", flag)
	case strings.HasPrefix(spec, "bolt:"):
		p := strings.TrimPrefix(spec, "bolt:")
		if p == "" {
			return endpoint{}, fmt.Errorf("--%s bolt: needs the database file's path", flag)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return endpoint{}, fmt.Errorf("--%s: %w", flag, err)
		}
		return endpoint{kind: "bolt", path: abs, name: abs}, nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"), strings.HasPrefix(spec, "postgres:"):
		dsn := spec // a bare URL
		if !strings.HasPrefix(spec, "postgres://") && !strings.HasPrefix(spec, "postgresql://") {
			dsn = strings.TrimPrefix(spec, "postgres:")
		}
		if dsn == "" {
			if dsn = os.Getenv("MFA_PG_DSN"); dsn == "" {
				return endpoint{}, fmt.Errorf("--%s postgres: with no DSN reads $MFA_PG_DSN, which is not set", flag)
			}
		}
		target, err := postgres.Target(dsn)
		if err != nil {
			return endpoint{}, fmt.Errorf("--%s: %w", flag, err)
		}
		return endpoint{kind: "postgres", dsn: dsn, name: target}, nil
	}
	return endpoint{}, fmt.Errorf("--%s %q: want bolt:PATH or postgres:DSN", flag, redactSpec(spec))
}

// redactSpec shows at most the kind of a spec that was not understood: it
// may be a DSN with a password.
func redactSpec(spec string) string {
	if kind, _, ok := strings.Cut(spec, ":"); ok {
		return kind + ":…"
	}
	if len(spec) > 20 {
		return spec[:20] + "…"
	}
	return spec
}

// open opens the store at e. A source bolt file must exist (bolt would make
// an empty one), and no running Caddy may hold a bolt file on either side.
func (e endpoint) open(ctx context.Context, source bool, schema string) (storage.Store, error) {
	switch e.kind {
	case "bolt":
		if _, err := os.Stat(e.path); source && err != nil {
			return nil, fmt.Errorf("the source %w", err)
		}
		inUse, err := bolt.InUse(e.path)
		if err != nil {
			return nil, err
		}
		if inUse {
			return nil, fmt.Errorf("%s is in use by a running Caddy: stop Caddy first, then migrate", e.path)
		}
		return bolt.Open(e.path, bolt.Options{Timeout: time.Second})
	default:
		return postgres.Open(ctx, postgres.Options{DSN: e.dsn, Schema: schema})
	}
}

func cmdDBMigrate(cmd *cobra.Command, _ []string) error {
	fromSpec, _ := cmd.Flags().GetString("from")
	toSpec, _ := cmd.Flags().GetString("to")
	schema, _ := cmd.Flags().GetString("schema")
	from, err := parseEndpoint("from", fromSpec)
	if err != nil {
		return err
	}
	to, err := parseEndpoint("to", toSpec)
	if err != nil {
		return err
	}
	if from.kind == to.kind && from.name == to.name {
		return errors.New("--from and --to name the same store")
	}
	ctx := cmd.Context()
	src, err := from.open(ctx, true, schema)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := to.open(ctx, false, schema)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	rep, err := storage.Copy(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("migrate %s to %s: %w", from.name, to.name, err)
	}
	if printJSON(cmd, rep) {
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "copied %s to %s and verified\n", from.name, to.name)
	table(cmd, "USERS\tSESSIONS\tSETTINGS\tAUDIT EVENTS\tAUDIT EVENTS ADDED", [][]string{{
		fmt.Sprint(rep.Users), fmt.Sprint(rep.Sessions), fmt.Sprint(rep.Settings),
		fmt.Sprint(rep.AuditEvents), fmt.Sprint(rep.AuditAdded),
	}})
	return nil
}
