package caddymodule

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/web"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves /mfa_gateway/ on Caddy's admin endpoint: the live way in
// for `caddy mfa`, so the command never opens the locked database.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mfa_gateway",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

const adminBase = "/mfa_gateway/"

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminBase, Handler: caddy.AdminHandlerFunc(serveAdmin)}}
}

// serveAdmin picks the database (?db=<path>, needed only when several are
// open) and hands the request to the gateway's operator API.
func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	rts := map[string]*mfa.Service{}
	pool.Range(func(k, v any) bool {
		rts[k.(string)] = v.(serviceCloser).Service
		return true
	})
	rt, err := pickRuntime(rts, r.URL.Query().Get("db"))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	sub := r.Clone(r.Context())
	sub.URL.Path = strings.TrimPrefix(r.URL.Path, adminBase)
	web.OperatorHandler(rt).ServeHTTP(w, sub)
	return nil
}

func pickRuntime(rts map[string]*mfa.Service, db string) (*mfa.Service, error) {
	if db != "" {
		if rt, ok := rts[db]; ok {
			return rt, nil
		}
		return nil, fmt.Errorf("no mfa_gateway database open at %s", db)
	}
	switch len(rts) {
	case 0:
		return nil, fmt.Errorf("no mfa_gateway is configured in the running Caddy")
	case 1:
		for _, rt := range rts {
			return rt, nil
		}
	}
	var paths []string
	for p := range rts {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return nil, fmt.Errorf("several databases are open; choose one with db=: %s", strings.Join(paths, ", "))
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
