package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage"
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
	path := strings.TrimPrefix(r.URL.Path, adminBase)
	if strings.Trim(path, "/") == "backup" {
		return serveBackup(w, r, rt)
	}
	sub := r.Clone(r.Context())
	sub.URL.Path = path
	web.OperatorHandler(rt).ServeHTTP(w, sub)
	return nil
}

// serveBackup streams a consistent copy of the whole database, taken by the
// process that holds it open. The copy is everything the gateway knows
// (secrets sealed with the key, which is not in it): whoever reaches the
// admin endpoint can take it.
func serveBackup(w http.ResponseWriter, r *http.Request, svc *mfa.Service) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: GET the backup", r.Method)}
	}
	bw := &backupWriter{w: w}
	_, err := svc.Backup(r.Context(), mfa.Operator, bw)
	switch {
	case err == nil:
		return nil
	case !bw.started && errors.Is(err, errors.ErrUnsupported):
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented, Err: err}
	case !bw.started:
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	// Part of the copy is out with a 200: an error message appended to it
	// would read as more of the file. Cutting the connection leaves the
	// client a short body, which it can tell from a whole one.
	caddy.Log().Named("admin.api.mfa_gateway").Error("backup cut short", zap.Error(err))
	panic(http.ErrAbortHandler)
}

// backupWriter sends the answer's headers with the first byte of the copy,
// so a backup that fails before it starts can still answer with an error.
type backupWriter struct {
	w       http.ResponseWriter
	started bool
}

// SetBackupSize implements storage.BackupSizer.
func (b *backupWriter) SetBackupSize(n int64) {
	b.w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
}

func (b *backupWriter) Write(p []byte) (int, error) {
	if !b.started {
		b.started = true
		h := b.w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="mfagate-backup.db"`)
		h.Set("Cache-Control", "no-store")
		b.w.WriteHeader(http.StatusOK)
	}
	return b.w.Write(p)
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

// Interface guards.
var (
	_ caddy.AdminRouter   = adminAPI{}
	_ storage.BackupSizer = (*backupWriter)(nil)
)
