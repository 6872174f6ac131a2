package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
)

// OpsHandler serves the operator's API on one database: what `caddy mfa`
// calls, through Caddy's admin endpoint while Caddy runs, or in-process on
// the database file when it does not. Paths (after any prefix is stripped):
//
//	GET  users                      members and their 2FA status
//	POST users/reset   {"user"}     delete a user's factor and codes, end their sessions
//	GET  policy?scope=              the scope's policy
//	POST policy        {"scope", "require_2fa", "idle_minutes"}
//	GET  sessions?user=             live sessions
//	POST sessions/revoke {"session"}
//	GET  audit?format=jsonl|csv&user=&type=   the audit log, newest first
//
// There is no session or CSRF here: Caddy's admin endpoint (or local file
// access) is the operator's authority.
func OpsHandler(rt *Runtime) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.Trim(r.URL.Path, "/")
		var body map[string]json.RawMessage
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxJSONBytes)
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				opsError(w, http.StatusBadRequest, "bad_request", "the body must be a JSON object")
				return
			}
		}
		str := func(name string) string {
			var s string
			_ = json.Unmarshal(body[name], &s)
			return s
		}
		switch r.Method + " " + path {
		case "GET users":
			ms, err := rt.Members(r.Context())
			if err != nil {
				opsError(w, http.StatusServiceUnavailable, "store", err.Error())
				return
			}
			if ms == nil {
				ms = []Member{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"members": ms})
		case "POST users/reset":
			user := str("user")
			_, ended, err := rt.ResetUser(r.Context(), user)
			if errors.Is(err, ErrUnknownUser) || user == "" {
				opsError(w, http.StatusNotFound, "unknown_user", "no such user: "+user)
				return
			}
			if err != nil {
				opsError(w, http.StatusServiceUnavailable, "store", err.Error())
				return
			}
			rt.logger.Info("2fa reset by operator", zap.String("user", user))
			rt.Audit.Record(audit.Event{Type: audit.TypeAdminReset, Actor: audit.ActorCLI, Subject: user, Detail: map[string]string{"sessions_ended": strconv.Itoa(ended)}})
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "sessions_ended": ended})
		case "GET policy", "POST policy":
			scope := r.URL.Query().Get("scope")
			if r.Method == http.MethodPost {
				scope = str("scope")
			}
			if scope == "" {
				scope = "default"
			}
			if raw, ok := body["require_2fa"]; ok {
				var on bool
				if json.Unmarshal(raw, &on) != nil {
					opsError(w, http.StatusBadRequest, "bad_request", "require_2fa must be true or false")
					return
				}
				if _, _, err := rt.SetRequire2FA(r.Context(), scope, on); err != nil {
					opsError(w, http.StatusServiceUnavailable, "store", err.Error())
					return
				}
				rt.logger.Info("policy changed by operator", zap.String("scope", scope), zap.Bool("require_2fa", on))
				rt.Audit.Record(audit.Event{Type: audit.TypePolicyChanged, Actor: audit.ActorCLI, Detail: map[string]string{"scope": scope, "require_2fa": strconv.FormatBool(on)}})
			}
			if raw, ok := body["idle_minutes"]; ok {
				var n int
				if json.Unmarshal(raw, &n) != nil {
					opsError(w, http.StatusBadRequest, "bad_request", "idle_minutes must be a whole number")
					return
				}
				if _, err := rt.SetIdleMinutes(r.Context(), scope, n); err != nil {
					opsError(w, http.StatusBadRequest, "bad_request", err.Error())
					return
				}
				rt.logger.Info("timeout changed by operator", zap.String("scope", scope), zap.Int("minutes", n))
				rt.Audit.Record(audit.Event{Type: audit.TypeTimeoutChanged, Actor: audit.ActorCLI, Detail: map[string]string{"scope": scope, "minutes": strconv.Itoa(n)}})
			}
			p, err := rt.Policy(scope)
			if err != nil {
				opsError(w, http.StatusServiceUnavailable, "store", err.Error())
				return
			}
			out := map[string]any{"scope": scope, "require_2fa": p.Require2FA, "idle_minutes": p.IdleMinutes}
			if !p.Since.IsZero() {
				out["since"] = p.Since
			}
			writeJSON(w, http.StatusOK, out)
		case "GET sessions":
			writeJSON(w, http.StatusOK, map[string]any{"sessions": orEmpty(rt.SessionList(r.URL.Query().Get("user")))})
		case "POST sessions/revoke":
			info, err := rt.RevokeSession(r.Context(), str("session"), "")
			if err != nil {
				opsError(w, http.StatusNotFound, "unknown_session", "no such session")
				return
			}
			rt.logger.Info("session revoked by operator", zap.String("user", info.User))
			rt.Audit.Record(audit.Event{Type: audit.TypeSessionRevoked, Actor: audit.ActorCLI, Subject: info.User, Detail: map[string]string{"by": "operator"}})
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": info.User})
		case "GET audit":
			format := r.URL.Query().Get("format")
			if format != audit.FormatJSONL && format != audit.FormatCSV {
				opsError(w, http.StatusBadRequest, "bad_request", "format must be jsonl or csv")
				return
			}
			_ = rt.Audit.Flush(r.Context())
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := rt.Audit.Export(r.Context(), w, auditFilter(r.URL.Query()), format); err != nil {
				rt.logger.Error("audit export", zap.Error(err))
			}
		default:
			opsError(w, http.StatusNotFound, "not_found", "no such operation: "+r.Method+" "+path)
		}
	})
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func opsError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}
