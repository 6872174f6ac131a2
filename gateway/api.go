package gateway

import (
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
)

type templateURLType = template.URL

type jsonRaw = json.RawMessage

const maxJSONBytes = 16 << 10

// serveAPI answers the JSON API under prefix + "api/v1/": it mirrors every
// page action for SPAs and scripts.
func (g *Gateway) serveAPI(c *call, rel string) error {
	type route struct {
		method string
		need   requirement
		fn     func(*call, map[string]json.RawMessage) error
	}
	routes := map[string]route{
		"status":                     {http.MethodGet, needAny, g.apiStatus},
		"totp/enroll":                {http.MethodPost, needActive, g.apiEnroll},
		"totp/confirm":               {http.MethodPost, needActive, g.apiConfirm},
		"recovery-codes/acknowledge": {http.MethodPost, needActive, g.apiAcknowledge},
		"recovery-codes/regenerate":  {http.MethodPost, needActive, g.apiRegenerate},
		"totp/disable":               {http.MethodPost, needActive, g.apiDisable},
		"challenge":                  {http.MethodPost, needPending, g.apiChallenge},
		"challenge/recovery":         {http.MethodPost, needPending, g.apiRecovery},
		"sessions":                   {http.MethodGet, needActive, g.apiSessions},
		"sessions/revoke":            {http.MethodPost, needActive, g.apiRevokeSession},
		"sessions/revoke-others":     {http.MethodPost, needActive, g.apiRevokeOthers},
		"admin/members":              {http.MethodGet, needAdmin, g.apiMembers},
		"admin/reset":                {http.MethodPost, needAdmin, g.apiReset},
		"admin/policy":               {http.MethodGet, needAdmin, g.apiPolicy},
		"admin/timeout":              {http.MethodPost, needAdmin, g.apiTimeout},
		"admin/sessions":             {http.MethodGet, needAdmin, g.apiAdminSessions},
		"admin/sessions/revoke":      {http.MethodPost, needAdmin, g.apiAdminRevoke},
		"admin/audit":                {http.MethodGet, needAdmin, g.apiAudit},
		"admin/audit/export":         {http.MethodGet, needAdmin, g.apiAuditExport},
		"admin/identity":             {http.MethodGet, needAdmin, g.apiIdentity},
		"admin/identity/secret":      {http.MethodPost, needAdmin, g.apiIdentity},
		"admin/identity/mode":        {http.MethodPost, needAdmin, g.apiIdentity},
	}
	if rel == "admin/policy" && c.r.Method == http.MethodPost {
		routes[rel] = route{http.MethodPost, needAdmin, g.apiPolicy}
	}
	rt, ok := routes[rel]
	if !ok {
		return g.writeJSONError(c.w, errNotFound)
	}
	if c.r.Method != rt.method {
		c.w.Header().Set("Allow", rt.method)
		return g.writeJSONError(c.w, errMethod)
	}
	var body map[string]json.RawMessage
	if rt.method == http.MethodPost {
		if !sameOrigin(c.r) {
			return g.writeJSONError(c.w, errCrossOrigin)
		}
		if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "application/json" {
			return g.writeJSONError(c.w, errBadRequest.with("Send a JSON body with Content-Type: application/json."))
		}
		raw, err := io.ReadAll(io.LimitReader(c.r.Body, maxJSONBytes+1))
		if err != nil || len(raw) > maxJSONBytes {
			return g.writeJSONError(c.w, errTooLarge)
		}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				return g.writeJSONError(c.w, errBadRequest.with("The body is not a JSON object."))
			}
		}
	}
	if e := g.require(c, rt.need); e != nil {
		return g.writeJSONError(c.w, e)
	}
	return rt.fn(c, body)
}

// stringField reads a required string field.
func stringField(body map[string]json.RawMessage, name string) (string, *apiError) {
	raw, ok := body[name]
	if !ok {
		return "", errBadRequest.with("The field " + name + " is required.")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", errBadRequest.with("The field " + name + " must be a string.")
	}
	return s, nil
}

func (g *Gateway) apiStatus(c *call, _ map[string]json.RawMessage) error {
	st, e := g.statusOf(c)
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, st)
	return nil
}

func (g *Gateway) apiEnroll(c *call, _ map[string]json.RawMessage) error {
	st, e := g.setupFor(c, c.sess().User, true)
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"secret": st.Secret, "otpauth_uri": st.URI, "qr_data_uri": st.QR})
	return nil
}

func (g *Gateway) apiConfirm(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e == nil {
		var codes []string
		if codes, e = g.confirmSetup(c, code); e == nil {
			writeJSON(c.w, http.StatusOK, map[string]any{"recovery_codes": codes})
			return nil
		}
	}
	return g.writeJSONError(c.w, e)
}

func (g *Gateway) apiAcknowledge(c *call, _ map[string]json.RawMessage) error {
	wasForced := c.sess().MustEnrol
	if e := g.acknowledgeCodes(c, true); e != nil {
		return g.writeJSONError(c.w, e)
	}
	next := ""
	if wasForced {
		next = safeNext(c.sess().Next)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "next": next})
	return nil
}

func (g *Gateway) apiRegenerate(c *call, _ map[string]json.RawMessage) error {
	codes, e := g.regenerateCodes(c)
	if e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

func (g *Gateway) apiDisable(c *call, _ map[string]json.RawMessage) error {
	if e := g.disable2FA(c); e != nil {
		return g.writeJSONError(c.w, e)
	}
	writeJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (g *Gateway) apiChallenge(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e == nil {
		var next string
		if next, e = g.passChallenge(c, code); e == nil {
			writeJSON(c.w, http.StatusOK, map[string]string{"next": safeNext(next)})
			return nil
		}
	}
	return g.writeJSONError(c.w, e)
}

func (g *Gateway) apiRecovery(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "recovery_code")
	if e == nil {
		var next string
		if next, e = g.useRecoveryCode(c, code); e == nil {
			writeJSON(c.w, http.StatusOK, map[string]string{"next": next})
			return nil
		}
	}
	return g.writeJSONError(c.w, e)
}
