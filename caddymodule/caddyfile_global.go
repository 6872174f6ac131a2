package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("mfa", parseGlobal)
}

// parseGlobal sets up the mfa app from the global options. Syntax:
//
//	{
//	    mfa {
//	        store bolt [<path>]    # default: mfagate/mfagate.db in Caddy's data directory
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
			default:
				return nil, d.Errf("unknown store %q: want bolt", backend)
			}
		default:
			return nil, d.Errf("unrecognized mfa option '%s'", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "mfa", Value: caddyconfig.JSON(app, nil)}, nil
}
