package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
)

// JSON API for sessions (each user's own) and team administration.

type sessionJSON struct {
	SessionInfo
	Current bool `json:"current"`
}

func (g *Gateway) sessionsJSON(c *call, user string) []sessionJSON {
	var out []sessionJSON
	for _, s := range g.rt.SessionList(user) {
		out = append(out, sessionJSON{s, s.ID == c.sess().Key.String()})
	}
	if out == nil {
		out = []sessionJSON{}
	}
	return out
}

func (g *Gateway) apiSessions(c *call, _ map[string]json.RawMessage) error {
	writeJSON(c.w, http.StatusOK, map[string]any{"sessions": g.sessionsJSON(c, c.sess().User)})
	return nil
}

// revokeOwn ends one of the caller's own sessions.
func (g *Gateway) revokeOwn(c *call, id string) *apiError {
	if id == c.sess().Key.String() {
		return errBadRequest.with("That is this session: sign out of the app instead.")
	}
	info, err := g.rt.RevokeSession(c.ctx(), id, c.sess().User)
	if errors.Is(err, ErrUnknownSession) {
		return errUnknownSession
	}
	g.logDecision(c.r, "session revoked", zap.String("user", c.sess().User), zap.String("subject", info.User))
	g.audit(c.r, audit.TypeSessionRevoked, c.sess().User, info.User, map[string]string{"by": "user"})
	return nil
}

func (g *Gateway) apiRevokeSession(c *call, body map[string]json.RawMessage) error {
	id, e := stringField(body, "session")
	if e == nil {
		e = g.revokeOwn(c, id)
	}
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (g *Gateway) apiRevokeOthers(c *call, _ map[string]json.RawMessage) error {
	n := g.rt.EndUserSessions(c.sess().User, c.sess())
	g.logDecision(c.r, "other sessions revoked", zap.String("user", c.sess().User), zap.Int("count", n))
	g.audit(c.r, audit.TypeSessionRevoked, c.sess().User, c.sess().User, map[string]string{"by": "user", "count": itoa(n)})
	writeJSON(c.w, http.StatusOK, map[string]int{"revoked": n})
	return nil
}

func (g *Gateway) apiMembers(c *call, _ map[string]json.RawMessage) error {
	ms, err := g.rt.Members(c.ctx())
	if err != nil {
		return g.writeJSONError(c.w, g.asAPIError(err, "members"))
	}
	if ms == nil {
		ms = []Member{}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"members": ms, "unenrolled": unenrolled(ms)})
	return nil
}

func (g *Gateway) apiReset(c *call, body map[string]json.RawMessage) error {
	user, e := stringField(body, "user")
	if e == nil {
		e = g.adminReset(c, user)
	}
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

type policyJSON struct {
	Scope       string    `json:"scope"`
	Require2FA  bool      `json:"require_2fa"`
	Since       time.Time `json:"since,omitzero"`
	IdleMinutes int       `json:"idle_minutes"`
}

func (g *Gateway) policyJSON() policyJSON {
	p := g.policy.get(g.rt)
	return policyJSON{Scope: g.cfg.Scope, Require2FA: p.Require2FA, Since: p.Since, IdleMinutes: int(g.idleTimeout() / time.Minute)}
}

func (g *Gateway) apiPolicy(c *call, body map[string]json.RawMessage) error {
	if c.r.Method == http.MethodPost {
		raw, ok := body["require_2fa"]
		var on bool
		if !ok || json.Unmarshal(raw, &on) != nil {
			return g.writeJSONError(c.w, errBadRequest.with("The field require_2fa must be true or false."))
		}
		if _, e := g.setPolicy(c, on); e != nil {
			return g.writeJSONError(c.w, e)
		}
	}
	writeJSON(c.w, http.StatusOK, g.policyJSON())
	return nil
}

func (g *Gateway) apiTimeout(c *call, body map[string]json.RawMessage) error {
	raw, ok := body["minutes"]
	var n int
	if !ok || json.Unmarshal(raw, &n) != nil {
		return g.writeJSONError(c.w, errBadRequest.with("The field minutes must be a whole number from 5 to 1440."))
	}
	if _, e := g.setTimeout(c, n); e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, g.policyJSON())
	return nil
}

func (g *Gateway) apiAdminSessions(c *call, _ map[string]json.RawMessage) error {
	writeJSON(c.w, http.StatusOK, map[string]any{"sessions": g.sessionsJSON(c, "")})
	return nil
}

func (g *Gateway) apiAdminRevoke(c *call, body map[string]json.RawMessage) error {
	id, e := stringField(body, "session")
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	info, err := g.rt.RevokeSession(c.ctx(), id, "")
	if errors.Is(err, ErrUnknownSession) {
		return g.writeJSONError(c.w, errUnknownSession)
	}
	g.logDecision(c.r, "session revoked", zap.String("user", c.sess().User), zap.String("subject", info.User))
	g.audit(c.r, audit.TypeSessionRevoked, c.sess().User, info.User, map[string]string{"by": "admin"})
	writeJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
