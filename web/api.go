package web

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/mfagate/mfagate/mfa"
)

const maxJSONBytes = 16 << 10

// apiRoute is one JSON API endpoint.
type apiRoute struct {
	method string
	need   requirement
	fn     func(*call, map[string]json.RawMessage) error
}

func (site *Site) apiRoutes() map[string]apiRoute {
	return map[string]apiRoute{
		"status":                     {http.MethodGet, needAny, site.apiStatus},
		"totp/enroll":                {http.MethodPost, needActive, site.apiEnroll},
		"totp/confirm":               {http.MethodPost, needActive, site.apiConfirm},
		"recovery-codes/acknowledge": {http.MethodPost, needActive, site.apiAcknowledge},
		"recovery-codes/regenerate":  {http.MethodPost, needActive, site.apiRegenerate},
		"totp/disable":               {http.MethodPost, needActive, site.apiDisable},
		"challenge":                  {http.MethodPost, needPending, site.apiChallenge},
		"challenge/recovery":         {http.MethodPost, needPending, site.apiRecovery},
		"sign-out":                   {http.MethodPost, needHeld, site.apiSignOut},
		"challenge/send":             {http.MethodPost, needPending, site.apiChallengeSend},
		"methods/start":              {http.MethodPost, needActive, site.apiMethodStart},
		"methods/confirm":            {http.MethodPost, needActive, site.apiMethodConfirm},
		"methods/primary":            {http.MethodPost, needActive, site.apiMethodPrimary},
		"methods/remove":             {http.MethodPost, needActive, site.apiMethodRemove},
		"methods/send-confirm":       {http.MethodPost, needActive, site.apiMethodSendConfirm},
		"totp/change":                {http.MethodPost, needActive, site.apiChange},
		"totp/change/confirm":        {http.MethodPost, needActive, site.apiChangeConfirm},
		"sessions":                   {http.MethodGet, needActive, site.apiSessions},
		"sessions/revoke":            {http.MethodPost, needActive, site.apiRevokeSession},
		"sessions/revoke-others":     {http.MethodPost, needActive, site.apiRevokeOthers},
		"admin/members":              {http.MethodGet, needAdmin, site.apiMembers},
		"admin/reset":                {http.MethodPost, needAdmin, site.apiReset},
		"admin/unlock":               {http.MethodPost, needAdmin, site.apiUnlock},
		"admin/methods/remove":       {http.MethodPost, needAdmin, site.apiAdminRemoveMethod},
		"admin/policy":               {http.MethodGet, needAdmin, site.apiPolicy},
		"admin/timeout":              {http.MethodPost, needAdmin, site.apiTimeout},
		"admin/remember":             {http.MethodPost, needAdmin, site.apiRemember},
		"admin/alerts":               {http.MethodPost, needAdmin, site.apiAlerts},
		"devices":                    {http.MethodGet, needActive, site.apiDevices},
		"addresses":                  {http.MethodGet, needActive, site.apiAddresses},
		"enrol-proof/send":           {http.MethodPost, needActive, site.apiEnrolProofSend},
		"enrol-proof":                {http.MethodPost, needActive, site.apiEnrolProof},
		"addresses/new-ip-only":      {http.MethodPost, needActive, site.apiNewIPOnly},
		"addresses/forget":           {http.MethodPost, needActive, site.apiForgetAddress},
		"devices/forget":             {http.MethodPost, needActive, site.apiForgetDevice},
		"admin/sessions":             {http.MethodGet, needAdmin, site.apiAdminSessions},
		"admin/sessions/revoke":      {http.MethodPost, needAdmin, site.apiAdminRevoke},
		"admin/audit":                {http.MethodGet, needAdmin, site.apiAudit},
		"admin/audit/export":         {http.MethodGet, needAdmin, site.apiAuditExport},
		"admin/identity":             {http.MethodGet, needAdmin, site.apiIdentity},
		"admin/identity/secret":      {http.MethodPost, needAdmin, site.apiIdentity},
		"admin/identity/mode":        {http.MethodPost, needAdmin, site.apiIdentity},
		"admin/doctor":               {http.MethodPost, needAdmin, site.apiAdminDoctor},
	}
}

// serveAPI answers the JSON API under prefix + "api/v1/": it mirrors every
// page action for SPAs and scripts.
func (site *Site) serveAPI(c *call, rel string) error {
	rt, ok := site.api[rel]
	if !ok {
		return WriteJSONError(c.w, errNotFound)
	}
	if rel == "admin/policy" && c.r.Method == http.MethodPost {
		rt.method = http.MethodPost // GET reads the policy, POST changes it
	}
	if c.r.Method != rt.method {
		c.w.Header().Set("Allow", rt.method)
		return WriteJSONError(c.w, errMethod)
	}
	var body map[string]json.RawMessage
	if rt.method == http.MethodPost {
		if !sameOrigin(c.r) {
			return WriteJSONError(c.w, errCrossOrigin)
		}
		if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "application/json" {
			return WriteJSONError(c.w, ErrBadRequest.with("Send a JSON body with Content-Type: application/json."))
		}
		raw, err := io.ReadAll(io.LimitReader(c.r.Body, maxJSONBytes+1))
		if err != nil || len(raw) > maxJSONBytes {
			return WriteJSONError(c.w, ErrTooLarge)
		}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				return WriteJSONError(c.w, ErrBadRequest.with("The body is not a JSON object."))
			}
		}
	}
	if e := site.require(c, rt.need); e != nil {
		return WriteJSONError(c.w, e)
	}
	return rt.fn(c, body)
}

// fail answers a script with the public form of a domain error.
func (site *Site) fail(c *call, err error, op string) error {
	return WriteJSONError(c.w, site.public(err, op))
}

// stringField reads a required string field.
func stringField(body map[string]json.RawMessage, name string) (string, *Error) {
	raw, ok := body[name]
	if !ok {
		return "", ErrBadRequest.with("The field " + name + " is required.")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", ErrBadRequest.with("The field " + name + " must be a string.")
	}
	return s, nil
}

// optionalString reads a string field that may be missing: "" then, for
// the domain to say what is missing in its own order of checks.
func optionalString(body map[string]json.RawMessage, name string) (string, *Error) {
	if _, ok := body[name]; !ok {
		return "", nil
	}
	return stringField(body, name)
}

func (site *Site) apiStatus(c *call, _ map[string]json.RawMessage) error {
	st, err := site.realm.Status(c.ctx(), c.sess())
	if err != nil {
		return site.fail(c, err, "status")
	}
	WriteJSON(c.w, http.StatusOK, st)
	return nil
}

func (site *Site) apiEnroll(c *call, _ map[string]json.RawMessage) error {
	st, err := site.realm.Setup(c.ctx(), site.actor(c), c.sess().User, true)
	if err != nil {
		return site.fail(c, err, "setup")
	}
	WriteJSON(c.w, http.StatusOK, map[string]string{"secret": st.Secret, "otpauth_uri": st.URI, "qr_data_uri": st.QR})
	return nil
}

func (site *Site) apiConfirm(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	ch, codes, err := site.realm.ConfirmSetup(c.ctx(), site.actor(c), c.sess(), code)
	if err != nil {
		return site.fail(c, err, "confirm setup")
	}
	site.changed(c, ch)
	WriteJSON(c.w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

func (site *Site) apiAcknowledge(c *call, _ map[string]json.RawMessage) error {
	wasForced := c.sess().MustEnrol
	s, err := site.realm.AcknowledgeCodes(c.ctx(), site.actor(c), c.sess(), true)
	if err != nil {
		return site.fail(c, err, "acknowledge codes")
	}
	next := ""
	if wasForced {
		next = SafeNext(s.Next)
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"ok": true, "next": next})
	return nil
}

func (site *Site) apiRegenerate(c *call, body map[string]json.RawMessage) error {
	proof, e := optionalString(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	codes, err := site.realm.RegenerateCodes(c.ctx(), site.actor(c), c.sess(), proof)
	if err != nil {
		return site.fail(c, err, "regenerate codes")
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

func (site *Site) apiDisable(c *call, body map[string]json.RawMessage) error {
	proof, e := optionalString(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.Disable(c.ctx(), site.actor(c), c.sess(), proof); err != nil {
		return site.fail(c, err, "disable")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// apiSignOut ends a sign-in the gateway holds back ("Not you?").
func (site *Site) apiSignOut(c *call, _ map[string]json.RawMessage) error {
	if err := site.abandon(c); err != nil {
		return site.fail(c, err, "sign out")
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"ok": true, "next": "/"})
	return nil
}

func (site *Site) apiChange(c *call, _ map[string]json.RawMessage) error {
	st, err := site.realm.StartChange(c.ctx(), site.actor(c), c.sess())
	if err != nil {
		return site.fail(c, err, "change authenticator")
	}
	WriteJSON(c.w, http.StatusOK, map[string]string{"secret": st.Secret, "otpauth_uri": st.URI, "qr_data_uri": st.QR})
	return nil
}

func (site *Site) apiChangeConfirm(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.ConfirmChange(c.ctx(), site.actor(c), c.sess(), code); err != nil {
		return site.fail(c, err, "confirm authenticator change")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiChallenge(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	method, e := optionalString(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	remember := false
	if raw, ok := body["remember"]; ok && json.Unmarshal(raw, &remember) != nil {
		return WriteJSONError(c.w, ErrBadRequest.with("remember must be true or false."))
	}
	ch, err := site.passCode(c, method, code)
	if err != nil {
		return site.fail(c, err, "challenge")
	}
	site.changed(c, ch)
	site.signedIn(c)
	if remember {
		site.remember(c)
	}
	WriteJSON(c.w, http.StatusOK, map[string]string{"next": SafeNext(ch.Session.Next)})
	return nil
}

func (site *Site) apiRecovery(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "recovery_code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	ch, err := site.realm.UseRecoveryCode(c.ctx(), site.actor(c), c.sess(), code)
	if err != nil {
		return site.fail(c, err, "recovery")
	}
	site.changed(c, ch)
	site.signedIn(c)
	WriteJSON(c.w, http.StatusOK, map[string]string{"next": site.cfg.Prefix + "security?setup=1"})
	return nil
}

// passCode answers the challenge with an authenticator code (method "" or
// totp) or a code sent by email or text message.
func (site *Site) passCode(c *call, method, code string) (mfa.Changed, error) {
	if method == "" || method == mfa.MethodTOTP {
		return site.realm.PassChallenge(c.ctx(), site.actor(c), c.sess(), code)
	}
	return site.realm.PassSentCode(c.ctx(), site.actor(c), c.sess(), method, code)
}

// sentTo answers a send with where the code went.
func sentTo(c *call, masked string) error {
	WriteJSON(c.w, http.StatusOK, map[string]string{"sent_to": masked})
	return nil
}

func (site *Site) apiChallengeSend(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	masked, err := site.realm.SendSignInCode(c.ctx(), site.actor(c), c.sess(), method)
	if err != nil {
		return site.fail(c, err, "send code")
	}
	return sentTo(c, masked)
}

func (site *Site) apiMethodStart(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	dest, e := stringField(body, "destination")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	masked, err := site.realm.StartMethod(c.ctx(), site.actor(c), c.sess(), method, dest)
	if err != nil {
		return site.fail(c, err, "start method")
	}
	return sentTo(c, masked)
}

func (site *Site) apiMethodConfirm(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	code, e := stringField(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	ch, codes, err := site.realm.ConfirmMethod(c.ctx(), site.actor(c), c.sess(), method, code)
	if err != nil {
		return site.fail(c, err, "confirm method")
	}
	site.changed(c, ch)
	WriteJSON(c.w, http.StatusOK, map[string]any{"recovery_codes": orEmpty(codes)})
	return nil
}

func (site *Site) apiMethodPrimary(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.SetPrimary(c.ctx(), site.actor(c), c.sess(), method); err != nil {
		return site.fail(c, err, "primary method")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiMethodRemove(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	proof, e := optionalString(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.RemoveMethod(c.ctx(), site.actor(c), c.sess(), method, proof); err != nil {
		return site.fail(c, err, "remove method")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (site *Site) apiMethodSendConfirm(c *call, body map[string]json.RawMessage) error {
	method, e := stringField(body, "method")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	masked, err := site.realm.SendConfirmCode(c.ctx(), site.actor(c), c.sess(), method)
	if err != nil {
		return site.fail(c, err, "send confirmation code")
	}
	return sentTo(c, masked)
}

func (site *Site) apiEnrolProofSend(c *call, _ map[string]json.RawMessage) error {
	masked, err := site.realm.SendEnrolProof(c.ctx(), site.actor(c), c.sess())
	if err != nil {
		return site.fail(c, err, "send email proof")
	}
	return sentTo(c, masked)
}

func (site *Site) apiEnrolProof(c *call, body map[string]json.RawMessage) error {
	code, e := stringField(body, "code")
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	if err := site.realm.ConfirmEnrolProof(c.ctx(), site.actor(c), c.sess(), code); err != nil {
		return site.fail(c, err, "email proof")
	}
	WriteJSON(c.w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
