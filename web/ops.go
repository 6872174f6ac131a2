package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mfa"
)

// The operator's API on one database: what `caddy mfa` calls, through
// Caddy's admin endpoint while Caddy runs, or in-process (Operate, no HTTP)
// on the database file when it does not. Paths (after any prefix):
//
//	GET  users                      members and their 2FA status
//	POST users/reset   {"user"}     delete a user's factor and codes, end their sessions
//	POST users/unlock  {"user"}     unlock an authenticator locked by wrong codes
//	GET  policy?scope=              the scope's policy
//	POST policy        {"scope", "require_2fa", "idle_minutes"}
//	GET  sessions?user=             live sessions
//	POST sessions/revoke {"session"}
//	GET  audit?format=jsonl|csv&user=&type=   the audit log, newest first
//
// There is no session or CSRF here: Caddy's admin endpoint (or local file
// access) is the operator's authority.

// OperatorHandler serves the operator API over HTTP.
func OperatorHandler(svc *mfa.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.Trim(r.URL.Path, "/")
		if r.Method == http.MethodGet && path == "audit" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := ExportAudit(r.Context(), svc, w, r.URL.Query()); err != nil {
				WriteJSON(w, http.StatusBadRequest, opsError("bad_request", err.Error()))
			}
			return
		}
		var body map[string]json.RawMessage
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxJSONBytes)
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				WriteJSON(w, http.StatusBadRequest, opsError("bad_request", "the body must be a JSON object"))
				return
			}
		}
		status, v := Operate(r.Context(), svc, r.Method, path, r.URL.Query(), body)
		WriteJSON(w, status, v)
	})
}

// Operate performs one operator request and returns the HTTP status and the
// JSON answer.
func Operate(ctx context.Context, svc *mfa.Service, method, path string, q url.Values, body map[string]json.RawMessage) (int, any) {
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(body[name], &s)
		return s
	}
	switch method + " " + path {
	case "GET users":
		ms, err := svc.Members(ctx)
		if err != nil {
			return http.StatusServiceUnavailable, opsError("store", err.Error())
		}
		return http.StatusOK, map[string]any{"members": orEmpty(ms)}
	case "POST users/reset":
		user := str("user")
		ended, emailed, err := svc.OperatorReset(ctx, user)
		if errors.Is(err, mfa.ErrUnknownUser) || errors.Is(err, mfa.ErrNoUserNamed) {
			return http.StatusNotFound, opsError("unknown_user", "no such user: "+user)
		}
		if err != nil {
			return http.StatusServiceUnavailable, opsError("store", err.Error())
		}
		return http.StatusOK, map[string]any{"ok": true, "sessions_ended": ended, "emailed": emailed}
	case "POST users/unlock":
		user := str("user")
		err := svc.UnlockUser(ctx, mfa.Operator, user)
		if errors.Is(err, mfa.ErrUnknownUser) || errors.Is(err, mfa.ErrNoUserNamed) {
			return http.StatusNotFound, opsError("unknown_user", "no such user: "+user)
		}
		if err != nil {
			return http.StatusServiceUnavailable, opsError("store", err.Error())
		}
		return http.StatusOK, map[string]any{"ok": true}
	case "GET policy", "POST policy":
		scope := q.Get("scope")
		if method == http.MethodPost {
			scope = str("scope")
		}
		if scope == "" {
			scope = "default"
		}
		if raw, ok := body["require_2fa"]; ok {
			var on bool
			if json.Unmarshal(raw, &on) != nil {
				return http.StatusBadRequest, opsError("bad_request", "require_2fa must be true or false")
			}
			if _, _, err := svc.SetRequire2FA(ctx, mfa.Operator, scope, on); err != nil {
				return http.StatusServiceUnavailable, opsError("store", err.Error())
			}
		}
		if raw, ok := body["idle_minutes"]; ok {
			var n int
			if json.Unmarshal(raw, &n) != nil {
				return http.StatusBadRequest, opsError("bad_request", "idle_minutes must be a whole number")
			}
			if _, err := svc.SetIdleMinutes(ctx, mfa.Operator, scope, n); errors.Is(err, mfa.ErrBadTimeout) {
				return http.StatusBadRequest, opsError("bad_request", err.Error())
			} else if err != nil {
				return http.StatusServiceUnavailable, opsError("store", err.Error())
			}
		}
		p, err := svc.Policy(scope)
		if err != nil {
			return http.StatusServiceUnavailable, opsError("store", err.Error())
		}
		out := map[string]any{"scope": scope, "require_2fa": p.Require2FA, "idle_minutes": p.IdleMinutes}
		if !p.Since.IsZero() {
			out["since"] = p.Since
		}
		return http.StatusOK, out
	case "GET sessions":
		return http.StatusOK, map[string]any{"sessions": orEmpty(svc.SessionList(q.Get("user")))}
	case "POST sessions/revoke":
		info, err := svc.RevokeSession(ctx, mfa.Operator, str("session"), "", "operator")
		if errors.Is(err, mfa.ErrUnknownSession) {
			return http.StatusNotFound, opsError("unknown_session", "no such session")
		}
		if err != nil {
			return http.StatusServiceUnavailable, opsError("store", err.Error())
		}
		return http.StatusOK, map[string]any{"ok": true, "user": info.User}
	}
	return http.StatusNotFound, opsError("not_found", "no such operation: "+method+" "+path)
}

// ExportAudit writes the audit log, newest first, filtered by q's user and
// type, in q's format (jsonl or csv).
func ExportAudit(ctx context.Context, svc *mfa.Service, w io.Writer, q url.Values) error {
	format := q.Get("format")
	if format != audit.FormatJSONL && format != audit.FormatCSV {
		return errors.New("format must be jsonl or csv")
	}
	_ = svc.Audit.Flush(ctx)
	return svc.Audit.Export(ctx, w, auditFilter(q), format)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func opsError(code, msg string) map[string]string {
	return map[string]string{"error": code, "message": msg}
}
