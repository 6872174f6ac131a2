package gateway

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/recovery"
	"github.com/mfagate/mfagate/session"
)

const maxFormBytes = 16 << 10

// servePage answers the HTML pages, which work without JavaScript.
func (g *Gateway) servePage(c *call, rel string) error {
	type route struct {
		method string
		need   requirement
		fn     func(*call) error
	}
	routes := map[string]route{
		"challenge":                       {http.MethodGet, needPending, g.pageChallenge},
		"challenge/recovery":              {http.MethodGet, needPending, g.pageRecovery},
		"security":                        {http.MethodGet, needActive, g.pageSecurity},
		"security/enroll":                 {http.MethodPost, needActive, g.postEnroll},
		"security/confirm":                {http.MethodPost, needActive, g.postConfirm},
		"security/acknowledge":            {http.MethodPost, needActive, g.postAcknowledge},
		"security/regenerate":             {http.MethodPost, needActive, g.postRegenerate},
		"security/disable":                {http.MethodPost, needActive, g.postDisable},
		"security/sessions/revoke":        {http.MethodPost, needActive, g.postRevokeOwn},
		"security/sessions/revoke-others": {http.MethodPost, needActive, g.postRevokeOthers},
		"admin":                           {http.MethodGet, needAdmin, g.pageAdmin},
		"admin/policy":                    {http.MethodPost, needAdmin, g.postAdminPolicy},
		"admin/timeout":                   {http.MethodPost, needAdmin, g.postAdminTimeout},
		"admin/reset":                     {http.MethodPost, needAdmin, g.postAdminReset},
		"admin/sessions/revoke":           {http.MethodPost, needAdmin, g.postAdminRevoke},
		"admin/audit.jsonl":               {http.MethodGet, needAdmin, g.pageAuditJSONL},
		"admin/audit.csv":                 {http.MethodGet, needAdmin, g.pageAuditCSV},
		"admin/identity/secret":           {http.MethodPost, needAdmin, g.postIdentitySecret},
		"admin/identity/mode":             {http.MethodPost, needAdmin, g.postIdentityMode},
	}
	rt, ok := routes[rel]
	if !ok {
		return g.writeError(c.w, c.r, errNotFound)
	}
	post := c.r.Method == http.MethodPost
	if (rel == "challenge" || rel == "challenge/recovery") && post {
		rt.method = http.MethodPost
	}
	if c.r.Method != rt.method && !(rt.method == http.MethodGet && c.r.Method == http.MethodHead) {
		c.w.Header().Set("Allow", rt.method)
		return g.writeError(c.w, c.r, errMethod)
	}
	if e := g.require(c, rt.need); e != nil {
		return g.pageRedirectFor(c, e)
	}
	if post {
		if !sameOrigin(c.r) {
			return g.writeError(c.w, c.r, errCrossOrigin)
		}
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxFormBytes)
		if err := c.r.ParseForm(); err != nil {
			return g.writeError(c.w, c.r, errBadRequest.with("The form could not be read."))
		}
		if !g.checkCSRF(c, c.r.PostForm.Get("csrf")) {
			g.logDecision(c.r, "csrf refused")
			return g.writeError(c.w, c.r, errCSRF)
		}
	}
	return rt.fn(c)
}

// pageRedirectFor sends a person where their session lets them be.
func (g *Gateway) pageRedirectFor(c *call, e *apiError) error {
	s := c.sess()
	switch {
	case e == errNotPending && s.State == session.Active:
		http.Redirect(c.w, c.r, safeNext(c.r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	case e == errMFARequired:
		http.Redirect(c.w, c.r, g.cfg.Prefix+"challenge?next="+urlQuery(s.Next), http.StatusSeeOther)
		return nil
	}
	return g.writeError(c.w, c.r, e)
}

func (g *Gateway) base(c *call) challengeui.Base {
	b := challengeui.Base{CSRF: g.csrfToken(c.sess())}
	if c.sess().State == session.Active {
		b.User = c.sess().User // not "signed in" before the second factor
		b.IsAdmin = g.isAdmin(c.sess()) && c.sess().AAL >= 2
	}
	return b
}

func (g *Gateway) render(c *call, status int, p challengeui.Page) error {
	if err := g.ui.Render(c.w, status, p); err != nil {
		g.log.Error("render page", zap.Error(err))
	}
	return nil
}

// challengeNext is where a passed challenge goes.
func challengeNext(c *call) string {
	if n := c.r.FormValue("next"); n != "" {
		return safeNext(n)
	}
	return safeNext(c.sess().Next)
}

func (g *Gateway) pageChallenge(c *call) error {
	next := challengeNext(c)
	if u, err := g.loadUser(c.ctx(), c.sess().User); err == nil && !u.TOTPConfirmed {
		// No authenticator left: recovery codes are the only factor.
		http.Redirect(c.w, c.r, g.cfg.Prefix+"challenge/recovery?next="+urlQuery(next), http.StatusSeeOther)
		return nil
	}
	if c.r.Method == http.MethodGet {
		return g.render(c, http.StatusOK, challengeui.ChallengePage{Base: g.base(c), Next: next})
	}
	dest, e := g.passChallenge(c, c.r.PostForm.Get("code"))
	if e != nil {
		setRetryAfter(c.w, e)
		return g.render(c, e.Status, challengeui.ChallengePage{Base: g.base(c), Next: next, Error: e.Message})
	}
	if dest == "" || dest == "/" {
		dest = next
	}
	http.Redirect(c.w, c.r, safeNext(dest), http.StatusSeeOther)
	return nil
}

func (g *Gateway) pageRecovery(c *call) error {
	next := challengeNext(c)
	if c.r.Method == http.MethodGet {
		return g.render(c, http.StatusOK, challengeui.RecoveryPage{Base: g.base(c), Next: next})
	}
	dest, e := g.useRecoveryCode(c, c.r.PostForm.Get("recovery_code"))
	if e != nil {
		setRetryAfter(c.w, e)
		return g.render(c, e.Status, challengeui.RecoveryPage{Base: g.base(c), Next: next, Error: e.Message})
	}
	http.Redirect(c.w, c.r, dest, http.StatusSeeOther)
	return nil
}

func setRetryAfter(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
}

var notices = map[string]string{
	"enabled":     "Two-factor authentication is on.",
	"disabled":    "Two-factor authentication is off. Your authenticator and recovery codes were deleted.",
	"regenerated": "New recovery codes are active. The old ones no longer work.",
	"revoked":     "The session was signed out.",
}

// securityPage builds the security page for the current state; setupErr and
// codesErr carry a failed step's message.
func (g *Gateway) securityPage(c *call, openSetup bool, setupErr, codesErr, pageErr string) (challengeui.SecurityPage, *apiError) {
	s := c.sess()
	u, err := g.loadUser(c.ctx(), s.User)
	if err != nil {
		return challengeui.SecurityPage{}, g.asAPIError(err, "security page")
	}
	p := challengeui.SecurityPage{
		Base: g.base(c), Enrolled: u.TOTPConfirmed, Required: g.require2FA(), MustEnrol: s.MustEnrol,
		CanDisable: s.AAL >= 2, RecoveryRemaining: len(u.RecoveryHashes), Next: safeNext(s.Next),
		Notice: notices[c.r.URL.Query().Get("done")], Error: pageErr, CodesError: codesErr,
		Sessions: sessionViews(c, g.rt.SessionList(s.User)),
	}
	if codes := g.pendingCodes(u); len(codes) > 0 {
		p.Codes = codes
		p.DownloadHref = challengeui.DownloadURL(recovery.Text(codes, g.cfg.Issuer, s.User))
		return p, nil
	}
	if !u.TOTPConfirmed && (openSetup || s.MustEnrol || c.r.URL.Query().Get("setup") == "1") {
		st, e := g.setupFor(c, s.User, true)
		if e != nil {
			return p, e
		}
		p.Setup = &challengeui.SetupView{Secret: st.Secret, OTPAuthURI: templateURL(st.URI), QRDataURI: templateURL(st.QR), Error: setupErr}
	}
	return p, nil
}

func (g *Gateway) showSecurity(c *call, status int, openSetup bool, setupErr, codesErr, pageErr string) error {
	p, e := g.securityPage(c, openSetup, setupErr, codesErr, pageErr)
	if e != nil {
		return g.writeError(c.w, c.r, e)
	}
	return g.render(c, status, p)
}

func (g *Gateway) pageSecurity(c *call) error {
	return g.showSecurity(c, http.StatusOK, false, "", "", "")
}

func (g *Gateway) postEnroll(c *call) error {
	if _, e := g.setupFor(c, c.sess().User, true); e != nil {
		return g.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	return g.showSecurity(c, http.StatusOK, true, "", "", "")
}

func (g *Gateway) postConfirm(c *call) error {
	if _, e := g.confirmSetup(c, c.r.PostForm.Get("code")); e != nil {
		setRetryAfter(c.w, e)
		return g.showSecurity(c, e.Status, true, e.Message, "", "")
	}
	// Post/redirect/get: the page shows the codes until they are acknowledged.
	http.Redirect(c.w, c.r, g.cfg.Prefix+"security", http.StatusSeeOther)
	return nil
}

func (g *Gateway) postAcknowledge(c *call) error {
	wasForced := c.sess().MustEnrol
	if e := g.acknowledgeCodes(c, c.r.PostForm.Get("saved") == "yes"); e != nil {
		return g.showSecurity(c, e.Status, false, "", e.Message, "")
	}
	dest := g.cfg.Prefix + "security?done=enabled"
	if wasForced {
		dest = safeNext(c.sess().Next)
	}
	http.Redirect(c.w, c.r, dest, http.StatusSeeOther)
	return nil
}

func (g *Gateway) postRegenerate(c *call) error {
	if _, e := g.regenerateCodes(c); e != nil {
		return g.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, g.cfg.Prefix+"security", http.StatusSeeOther)
	return nil
}

func (g *Gateway) postDisable(c *call) error {
	if e := g.disable2FA(c); e != nil {
		return g.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, g.cfg.Prefix+"security?done=disabled", http.StatusSeeOther)
	return nil
}

// templateURL marks a URL the gateway built itself (otpauth:, data:) as safe
// for an href or src; only ever called with those.
func templateURL(s string) templateURLType {
	if strings.HasPrefix(s, "otpauth://") || strings.HasPrefix(s, "data:image/png;base64,") {
		return templateURLType(s)
	}
	return ""
}
