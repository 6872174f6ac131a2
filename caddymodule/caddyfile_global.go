package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/mfagate/mfagate/storage/postgres"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("mfa", parseGlobal)
}

// parseGlobal sets up the mfa app from the global options. Syntax:
//
//	{
//	    mfa {
//	        store bolt [<path>]    # default: mfagate/mfagate.db in Caddy's data directory
//	        # or
//	        store postgres {
//	            dsn <dsn>          # required; e.g. {env.MFA_PG_DSN}
//	            pool <n>           # most connections; default max(4, CPUs)
//	            schema <name>      # default mfagate
//	        }
//	    }
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if app.StoreRaw != nil {
				return nil, d.Err("store already specified")
			}
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			switch backend := d.Val(); backend {
			case "bolt":
				st := new(BoltStore)
				if d.NextArg() {
					st.Path = d.Val()
				}
				if d.NextArg() {
					return nil, d.ArgErr()
				}
				app.StoreRaw = caddyconfig.JSONModuleObject(st, "backend", backend, nil)
			case "postgres":
				st, err := parsePostgresStore(d)
				if err != nil {
					return nil, err
				}
				app.StoreRaw = caddyconfig.JSONModuleObject(st, "backend", backend, nil)
			default:
				return nil, d.Errf("unknown store %q: want bolt or postgres", backend)
			}
		default:
			return nil, d.Errf("unrecognized mfa option '%s'", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "mfa", Value: caddyconfig.JSON(app, nil)}, nil
}

// parsePostgresStore reads the block of `store postgres`. Values are checked
// here as far as they can be without placeholders resolved, so that a typo
// is reported with its line.
func parsePostgresStore(d *caddyfile.Dispenser) (*PostgresStore, error) {
	st := new(PostgresStore)
	if d.NextArg() {
		return nil, d.Errf("store postgres takes a block (dsn, pool, schema), not %q", d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("store postgres: %s already specified", opt)
		}
		seen[opt] = true
		var val string
		if !d.Args(&val) {
			return nil, d.Errf("store postgres: %s needs a value", opt)
		}
		if d.NextArg() {
			return nil, d.Errf("store postgres: %s takes one value", opt)
		}
		switch opt {
		case "dsn":
			st.DSN = val
		case "pool":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000 {
				return nil, d.Errf("store postgres: pool %q: want a number of connections from 1 to 1000", val)
			}
			st.MaxConns = n
		case "schema":
			if err := postgres.ValidSchema(val); err != nil {
				return nil, d.Errf("store postgres: %v", err)
			}
			st.Schema = val
		default:
			return nil, d.Errf("store postgres: unknown option %q: want dsn, pool or schema", opt)
		}
	}
	if st.DSN == "" {
		return nil, d.Err("store postgres: dsn is required (such as dsn {env.MFA_PG_DSN})")
	}
	return st, nil
}
