package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/postgres"
)

func init() {
	caddy.RegisterModule(PostgresStore{})
}

// PostgresStore keeps the state in a PostgreSQL database (module
// mfa.stores.postgres), for gateways that should not depend on one local
// file. The tables are created and migrated when the store opens.
//
// It keeps no file beside the database, so it has no default key file:
// handlers on it must set encryption_key (or key_file).
type PostgresStore struct {
	// The connection string, usually "{env.MFA_PG_DSN}" so that the
	// password stays out of the config; placeholders are resolved at
	// provision. Required.
	DSN string `json:"dsn,omitempty"`
	// The most connections the store's pool opens. Default: the larger of
	// 4 and the number of CPUs.
	MaxConns int `json:"max_conns,omitempty"`
	// The schema holding the tables. Default "mfagate".
	Schema string `json:"schema,omitempty"`

	dsn    string // placeholders resolved; holds the password: never log it
	target string // the database without credentials
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "mfa.stores.postgres", New: func() caddy.Module { return new(PostgresStore) }}
}

// Provision resolves and checks the settings; it does not connect, so that
// `caddy validate` and `caddy adapt` never touch the database.
func (p *PostgresStore) Provision(caddy.Context) error {
	if p.DSN == "" {
		return errors.New("postgres store: dsn is required")
	}
	dsn, err := caddy.NewReplacer().ReplaceOrErr(p.DSN, true, true)
	if err != nil {
		// The error names the placeholder, never a resolved value.
		return fmt.Errorf("postgres store: dsn: %w", err)
	}
	target, err := postgres.Target(dsn)
	if err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	if err := postgres.ValidSchema(p.Schema); err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	if p.MaxConns < 0 || p.MaxConns > 1000 {
		return fmt.Errorf("postgres store: max_conns %d: want 1 to 1000 (or 0 for the default)", p.MaxConns)
	}
	p.dsn, p.target = dsn, target
	return nil
}

func (p *PostgresStore) schema() string {
	if p.Schema == "" {
		return postgres.DefaultSchema
	}
	return p.Schema
}

// StoreKey implements Store: the database and schema, without credentials,
// so that configs naming one database share one pool across reloads.
func (p *PostgresStore) StoreKey() string { return p.target + "#" + p.schema() }

// OpenStore implements Store: it connects and migrates the schema.
func (p *PostgresStore) OpenStore() (storage.Store, error) {
	return postgres.Open(context.Background(), postgres.Options{DSN: p.dsn, Schema: p.Schema, MaxConns: int32(p.MaxConns)})
}

// DefaultKeyFile implements Store: none. A key file beside a database on
// another machine does not exist, and one generated per gateway instance
// would make instances unable to read each other's records.
func (p *PostgresStore) DefaultKeyFile() string { return "" }

// Shared implements sharedStore: several Caddy instances may use one
// database.
func (p *PostgresStore) Shared() bool { return true }

// Interface guards.
var (
	_ caddy.Provisioner = (*PostgresStore)(nil)
	_ Store             = (*PostgresStore)(nil)
)
