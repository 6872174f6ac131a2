package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/challengeui"
)

// The admin page (/_mfa/admin) and the session cards, server-rendered like
// every other page.

func sessionViews(c *call, infos []SessionInfo) []challengeui.SessionView {
	self := c.sess().Key.String()
	out := make([]challengeui.SessionView, 0, len(infos))
	for _, s := range infos {
		out = append(out, challengeui.SessionView{
			ID: s.ID, User: s.User, Device: challengeui.DeviceName(s.UserAgent), Address: s.Address,
			Started: s.Started, LastActive: s.LastActive, AAL: s.AAL, Current: s.ID == self,
		})
	}
	return out
}

var methodWords = map[string]string{"totp": "Authenticator app", "recovery_codes": "Recovery codes only", "none": "—"}

// adminPage builds the admin page; notice and errors come from the action
// that led here.
func (g *Gateway) adminPage(c *call, notice, pageErr, policyErr string) (challengeui.AdminPage, *apiError) {
	ms, err := g.rt.Members(c.ctx())
	if err != nil {
		return challengeui.AdminPage{}, g.asAPIError(err, "members")
	}
	pol := g.policy.get(g.rt)
	var err2 *apiError
	p := challengeui.AdminPage{
		Base: g.base(c), Notice: notice, Error: pageErr,
		Policy: challengeui.PolicyView{
			Scope: g.cfg.Scope, Require2FA: pol.Require2FA, Since: pol.Since,
			GraceDays: int(g.policy.gracePeriod() / (24 * time.Hour)), IdleMinutes: int(g.idleTimeout() / time.Minute),
			Unenrolled: unenrolled(ms), Error: policyErr,
		},
		Sessions:        sessionViews(c, g.rt.SessionList("")),
		EmailConfigured: g.cfg.Mailer != nil,
	}
	p.Identity = g.identityView("", "")
	if p.Audit, err2 = g.auditView(c); err2 != nil {
		return p, err2
	}
	if pol.Require2FA && !pol.Since.IsZero() {
		p.Policy.GraceEnds = pol.Since.Add(g.policy.gracePeriod())
	}
	byRole := map[string]bool{} // admins admitted by the role their live sessions carry
	for _, s := range g.rt.Sessions.Snapshot(signedIn) {
		if s.Role != "" && slices.Contains(g.cfg.AdminRoles, s.Role) {
			byRole[s.User] = true
		}
	}
	for _, m := range ms {
		p.Members = append(p.Members, challengeui.MemberView{
			User: m.User, Email: m.Email, Enrolled: m.Enrolled, Method: methodWords[m.Method],
			LastSignIn: m.LastSignIn, Sessions: m.Sessions, Admin: slices.Contains(g.cfg.Admins, m.User) || byRole[m.User],
		})
	}
	return p, nil
}

func (g *Gateway) showAdmin(c *call, status int, notice, pageErr, policyErr string) error {
	p, e := g.adminPage(c, notice, pageErr, policyErr)
	if e != nil {
		return g.writeError(c.w, c.r, e)
	}
	return g.render(c, status, p)
}

func (g *Gateway) pageAdmin(c *call) error {
	return g.showAdmin(c, http.StatusOK, adminNotices[c.r.URL.Query().Get("done")], "", "")
}

var adminNotices = map[string]string{
	"policy":   "Policy saved.",
	"timeout":  "Session timeout saved.",
	"reset":    "Two-factor authentication was reset.",
	"revoked":  "Session signed out.",
	"identity": "Identity verification mode saved.",
}

// adminDone redirects back to the admin page (post/redirect/get).
func (g *Gateway) adminDone(c *call, done, anchor string) error {
	http.Redirect(c.w, c.r, g.cfg.Prefix+"admin?done="+done+"#"+anchor, http.StatusSeeOther)
	return nil
}

func (g *Gateway) postAdminPolicy(c *call) error {
	if _, e := g.setPolicy(c, c.r.PostForm.Get("require_2fa") == "on"); e != nil {
		return g.showAdmin(c, e.Status, "", "", e.Message)
	}
	return g.adminDone(c, "policy", "policy")
}

func (g *Gateway) postAdminTimeout(c *call) error {
	n, err := strconv.Atoi(strings.TrimSpace(c.r.PostForm.Get("minutes")))
	if err != nil {
		return g.showAdmin(c, http.StatusBadRequest, "", "", "Enter the session timeout as a whole number of minutes, from 5 to 1440.")
	}
	if _, e := g.setTimeout(c, n); e != nil {
		return g.showAdmin(c, e.Status, "", "", e.Message)
	}
	return g.adminDone(c, "timeout", "policy")
}

func (g *Gateway) postAdminReset(c *call) error {
	if e := g.adminReset(c, c.r.PostForm.Get("user")); e != nil {
		return g.showAdmin(c, e.Status, "", e.Message, "")
	}
	return g.adminDone(c, "reset", "members")
}

func (g *Gateway) postAdminRevoke(c *call) error {
	info, err := g.rt.RevokeSession(c.ctx(), c.r.PostForm.Get("session"), "")
	if errors.Is(err, ErrUnknownSession) {
		return g.showAdmin(c, http.StatusNotFound, "", errUnknownSession.Message, "")
	}
	g.audit(c.r, audit.TypeSessionRevoked, c.sess().User, info.User, map[string]string{"by": "admin"})
	return g.adminDone(c, "revoked", "sessions")
}

func (g *Gateway) postRevokeOwn(c *call) error {
	if e := g.revokeOwn(c, c.r.PostForm.Get("session")); e != nil {
		return g.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, g.cfg.Prefix+"security?done=revoked", http.StatusSeeOther)
	return nil
}

func (g *Gateway) postRevokeOthers(c *call) error {
	n := g.rt.EndUserSessions(c.sess().User, c.sess())
	g.audit(c.r, audit.TypeSessionRevoked, c.sess().User, c.sess().User, map[string]string{"by": "user", "count": itoa(n)})
	http.Redirect(c.w, c.r, g.cfg.Prefix+"security?done=revoked", http.StatusSeeOther)
	return nil
}
