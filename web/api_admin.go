package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/mfagate/mfagate/mfa"
)

// JSON API for sessions (each user's own) and team administration.

type sessionJSON struct {
	mfa.SessionInfo
	Current bool `json:"current"`
}

func (site *Site) sessionsJSON(c *call, user string) []sessionJSON {
	out := []sessionJSON{}
	for _, s := range site.svc.SessionList(user) {
		out = append(out, sessionJSON{s, s.ID == c.sess().Key.String()})
	}
	return out
}

func (site *Site) apiSessions(c *call, _ map[string]json.RawMessage) error {
	WriteJSON(c.w, http.StatusOK, map[string]any{"sessions": site.sessionsJSON(c, c.sess().User)})
	return nil
}

// revokeOwn ends one of the caller's own sessions.
func (site *Site) revokeOwn(c *call, id string) error {
	if id == c.sess().Key.String() {
		return mfa.ErrCurrentSession
	}
	_, err := site.svc.RevokeSession(c.ctx(), site.actor(c), id, c.sess().User, "user")
	return err
}

func (site *Site) apiRevokeSession(c *call, body map[string]json.RawMessage) error {
	id, e := stringField(body, "session")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.revokeOwn(c, id); err != nil {
		return site.fail(c, err, "revoke")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiRevokeOthers(c *call, _ map[string]json.RawMessage) error {
	n, err := site.svc.RevokeOthers(c.ctx(), site.actor(c), c.sess())
	if err != nil {
		return site.fail(c, err, "revoke others")
	}
	WriteJSON(c.w, http.StatusOK, map[string]int{"revoked": n})
	return nil
}

func (site *Site) apiMembers(c *call, _ map[string]json.RawMessage) error {
	ms, err := site.realm.Members(c.ctx())
	if err != nil {
		return site.fail(c, err, "members")
	}
	if ms == nil {
		ms = []mfa.Member{}
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"members": ms, "unenrolled": mfa.Unenrolled(ms)})
	return nil
}

func (site *Site) apiReset(c *call, body map[string]json.RawMessage) error {
	user, e := stringField(body, "user")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	emailed, err := site.realm.ResetUser(c.ctx(), site.actor(c), site.realm.UserID(user))
	if err != nil {
		return site.fail(c, err, "admin reset")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true, "emailed": emailed})
	return nil
}

func (site *Site) apiAdminRemoveMethod(c *call, body map[string]json.RawMessage) error {
	user, e := stringField(body, "user")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	emailed, last, err := site.realm.RemoveMemberMethod(c.ctx(), site.actor(c), site.realm.UserID(user), method)
	if err != nil {
		return site.fail(c, err, "admin remove method")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true, "emailed": emailed, "last": last})
	return nil
}

func (site *Site) apiUnlock(c *call, body map[string]json.RawMessage) error {
	user, e := stringField(body, "user")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.svc.UnlockUser(c.ctx(), site.actor(c), site.realm.UserID(user)); err != nil {
		return site.fail(c, err, "admin unlock")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

type policyJSON struct {
	Scope           string    `json:"scope"`
	Require2FA      bool      `json:"require_2fa"`
	Since           time.Time `json:"since,omitzero"`
	IdleMinutes     int       `json:"idle_minutes"`
	RememberDays    int       `json:"remember_days"`    // 0: the block does not offer it
	RememberAllowed bool      `json:"remember_allowed"` // the team's switch
	LoginAlerts     bool      `json:"login_alerts"`
}

func (site *Site) policyJSON() policyJSON {
	p := site.realm.Policy()
	return policyJSON{Scope: site.realm.Scope(), Require2FA: p.Require2FA, Since: p.Since, IdleMinutes: int(site.realm.IdleTimeout() / time.Minute),
		RememberDays: int(site.realm.RememberFor() / (24 * time.Hour)), RememberAllowed: !p.NoRemember, LoginAlerts: p.LoginAlerts}
}

func (site *Site) apiPolicy(c *call, body map[string]json.RawMessage) error {
	if c.r.Method == http.MethodPost {
		raw, ok := body["require_2fa"]
		var on bool
		if !ok || json.Unmarshal(raw, &on) != nil {
			return WriteJSONError(c.w, ErrBadRequest.with("The field require_2fa must be true or false."))
		}
		if _, err := site.realm.SetRequire2FA(c.ctx(), site.actor(c), on, site.securityURL(c)); err != nil {
			return site.fail(c, err, "set policy")
		}
	}
	WriteJSON(c.w, http.StatusOK, site.policyJSON())
	return nil
}

func (site *Site) apiRemember(c *call, body map[string]json.RawMessage) error {
	raw, ok := body["allowed"]
	var allowed bool
	if !ok || json.Unmarshal(raw, &allowed) != nil {
		return WriteJSONError(c.w, ErrBadRequest.with("The field allowed must be true or false."))
	}
	if _, err := site.realm.SetRememberAllowed(c.ctx(), site.actor(c), allowed); err != nil {
		return site.fail(c, err, "set remember")
	}
	WriteJSON(c.w, http.StatusOK, site.policyJSON())
	return nil
}

func (site *Site) apiAlerts(c *call, body map[string]json.RawMessage) error {
	raw, ok := body["on"]
	var on bool
	if !ok || json.Unmarshal(raw, &on) != nil {
		return WriteJSONError(c.w, ErrBadRequest.with("The field on must be true or false."))
	}
	if _, err := site.realm.SetLoginAlerts(c.ctx(), site.actor(c), on); err != nil {
		return site.fail(c, err, "set alerts")
	}
	WriteJSON(c.w, http.StatusOK, site.policyJSON())
	return nil
}

func (site *Site) apiDevices(c *call, _ map[string]json.RawMessage) error {
	ds, err := site.realm.Devices(c.ctx(), c.sess().User)
	if err != nil {
		return site.fail(c, err, "devices")
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"devices": ds})
	return nil
}

func (site *Site) apiForgetDevice(c *call, body map[string]json.RawMessage) error {
	id, e := stringField(body, "device")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.ForgetDevice(c.ctx(), site.actor(c), c.sess(), id); err != nil {
		return site.fail(c, err, "forget device")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiAddresses(c *call, _ map[string]json.RawMessage) error {
	on, known, err := site.realm.Addresses(c.ctx(), c.sess().User)
	if err != nil {
		return site.fail(c, err, "addresses")
	}
	type addr struct {
		Address  string    `json:"address"`
		LastUsed time.Time `json:"last_used"`
	}
	out := []addr{}
	for _, k := range known {
		out = append(out, addr{k.Address, k.LastUsed})
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"new_ip_only": on, "addresses": out})
	return nil
}

func (site *Site) apiNewIPOnly(c *call, body map[string]json.RawMessage) error {
	raw, ok := body["on"]
	var on bool
	if !ok || json.Unmarshal(raw, &on) != nil {
		return WriteJSONError(c.w, ErrBadRequest.with("The field on must be true or false."))
	}
	if err := site.realm.SetNewIPOnly(c.ctx(), site.actor(c), c.sess(), on); err != nil {
		return site.fail(c, err, "new address only")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true, "new_ip_only": on})
	return nil
}

func (site *Site) apiForgetAddress(c *call, body map[string]json.RawMessage) error {
	addr, e := stringField(body, "address")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.ForgetAddress(c.ctx(), site.actor(c), c.sess(), addr); err != nil {
		return site.fail(c, err, "forget address")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiTimeout(c *call, body map[string]json.RawMessage) error {
	raw, ok := body["minutes"]
	var n int
	if !ok || json.Unmarshal(raw, &n) != nil {
		return WriteJSONError(c.w, ErrBadRequest.with("The field minutes must be a whole number from 5 to 1440."))
	}
	if _, err := site.realm.SetIdleMinutes(c.ctx(), site.actor(c), n); err != nil {
		return site.fail(c, err, "set timeout")
	}
	WriteJSON(c.w, http.StatusOK, site.policyJSON())
	return nil
}

func (site *Site) apiAdminSessions(c *call, _ map[string]json.RawMessage) error {
	WriteJSON(c.w, http.StatusOK, map[string]any{"sessions": site.sessionsJSON(c, "")})
	return nil
}

func (site *Site) apiAdminRevoke(c *call, body map[string]json.RawMessage) error {
	id, e := stringField(body, "session")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if _, err := site.svc.RevokeSession(c.ctx(), site.actor(c), id, "", "admin"); err != nil {
		return site.fail(c, err, "revoke")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// securityURL is the security page's address as this request reached it,
// for links in emails.
func (site *Site) securityURL(c *call) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host + site.cfg.Prefix + "security?setup=1"
}
