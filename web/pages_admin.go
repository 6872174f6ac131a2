package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/useragent"
)

// The admin page (/_mfa/admin) and the session cards, server-rendered like
// every other page.

func sessionViews(c *call, infos []mfa.SessionInfo) []challengeui.SessionView {
	self := c.sess().Key.String()
	out := make([]challengeui.SessionView, 0, len(infos))
	for _, s := range infos {
		out = append(out, challengeui.SessionView{
			ID: s.ID, User: s.User, Device: useragent.Describe(s.UserAgent), Address: s.Address,
			Started: s.Started, LastActive: s.LastActive, AAL: s.AAL, Pending: s.State == session.Pending.String(), Current: s.ID == self,
		})
	}
	return out
}

var methodWords = map[string]string{"totp": "Authenticator app", "email": "Email codes", "sms": "Text message codes", "recovery_codes": "Recovery codes only", "none": "—"}

// adminPage builds the admin page; notice and errors come from the action
// that led here.
func (site *Site) adminPage(c *call, notice, pageErr, policyErr string) (challengeui.AdminPage, *Error) {
	ms, err := site.realm.Members(c.ctx())
	if err != nil {
		return challengeui.AdminPage{}, site.public(err, "members")
	}
	pol := site.realm.Policy()
	var err2 *Error
	p := challengeui.AdminPage{
		Base: site.base(c), Notice: notice, Error: pageErr,
		Policy: challengeui.PolicyView{
			Scope: site.realm.Scope(), Require2FA: pol.Require2FA, Since: pol.Since,
			GraceDays: int(site.realm.GracePeriod() / (24 * time.Hour)), IdleMinutes: int(site.realm.IdleTimeout() / time.Minute),
			Unenrolled: mfa.Unenrolled(ms), Error: policyErr,
			RememberDays: int(site.realm.RememberFor() / (24 * time.Hour)), RememberAllowed: !pol.NoRemember,
			LoginAlerts: pol.LoginAlerts,
		},
		Sessions:        sessionViews(c, site.svc.SessionList("")),
		EmailConfigured: site.realm.EmailConfigured(),
	}
	p.Identity = site.identityView("", "")
	if site.cfg.Doctor != nil {
		p.Doctor = &challengeui.DoctorView{}
	}
	if p.Audit, err2 = site.auditView(c); err2 != nil {
		return p, err2
	}
	if pol.Require2FA && !pol.Since.IsZero() {
		p.Policy.GraceEnds = pol.Since.Add(site.realm.GracePeriod())
	}
	byRole := site.realm.AdminsByRole()
	for _, m := range ms {
		p.Members = append(p.Members, challengeui.MemberView{
			User: m.User, Email: m.Email, Enrolled: m.Enrolled, Method: methodWords[m.Method], Methods: methodChoices(m.Methods),
			LastSignIn: m.LastSignIn, Sessions: m.Sessions, Admin: site.realm.NamedAdmin(m.User, byRole), Locked: m.Locked,
		})
	}
	return p, nil
}

func (site *Site) showAdmin(c *call, status int, notice, pageErr, policyErr string) error {
	p, e := site.adminPage(c, notice, pageErr, policyErr)
	if e != nil {
		return site.WriteError(c.w, c.r, e)
	}
	return site.render(c, status, p)
}

func (site *Site) pageAdmin(c *call) error {
	p, e := site.adminPage(c, "", "", "")
	if e != nil {
		return site.WriteError(c.w, c.r, e)
	}
	p.Notice = noticeText(readNotice(c.r.URL.Query(), site.noticeKey(c)), p)
	return site.render(c, http.StatusOK, p)
}

// adminDone redirects back to the admin page (post/redirect/get) with the
// notice of what was done.
func (site *Site) adminDone(c *call, n adminNotice) error {
	http.Redirect(c.w, c.r, site.noticeURL(c, n), http.StatusSeeOther)
	return nil
}

func (site *Site) postAdminPolicy(c *call) error {
	if _, err := site.realm.SetRequire2FA(c.ctx(), site.actor(c), c.r.PostForm.Get("require_2fa") == "on", site.securityURL(c)); err != nil {
		e := site.public(err, "set policy")
		return site.showAdmin(c, e.Status, "", "", e.Message)
	}
	return site.adminDone(c, adminNotice{Done: "policy"})
}

func (site *Site) postAdminTimeout(c *call) error {
	n, err := strconv.Atoi(strings.TrimSpace(c.r.PostForm.Get("minutes")))
	if err != nil {
		return site.showAdmin(c, http.StatusBadRequest, "", "", "Enter the session timeout as a whole number of minutes, from 5 to 1440.")
	}
	if _, err := site.realm.SetIdleMinutes(c.ctx(), site.actor(c), n); err != nil {
		e := site.public(err, "set timeout")
		return site.showAdmin(c, e.Status, "", "", e.Message)
	}
	return site.adminDone(c, adminNotice{Done: "timeout"})
}

func (site *Site) postAdminRemember(c *call) error {
	if _, err := site.realm.SetRememberAllowed(c.ctx(), site.actor(c), c.r.PostForm.Get("remember") == "on"); err != nil {
		e := site.public(err, "set remember")
		return site.showAdmin(c, e.Status, "", "", e.Message)
	}
	return site.adminDone(c, adminNotice{Done: "remember"})
}

func (site *Site) postAdminAlerts(c *call) error {
	if _, err := site.realm.SetLoginAlerts(c.ctx(), site.actor(c), c.r.PostForm.Get("alerts") == "on"); err != nil {
		e := site.public(err, "set alerts")
		return site.showAdmin(c, e.Status, "", "", e.Message)
	}
	return site.adminDone(c, adminNotice{Done: "alerts"})
}

func (site *Site) postAdminReset(c *call) error {
	user := site.realm.UserID(c.r.PostForm.Get("user"))
	mailed, err := site.realm.ResetUser(c.ctx(), site.actor(c), user)
	if err != nil {
		e := site.public(err, "admin reset")
		return site.showAdmin(c, e.Status, "", e.Message, "")
	}
	return site.adminDone(c, adminNotice{Done: "reset", User: user, Mailed: mailed})
}

// methodChoices are a member's methods, for the admin page's Remove buttons.
func methodChoices(ms []string) []challengeui.MethodChoice {
	var out []challengeui.MethodChoice
	for _, m := range ms {
		out = append(out, challengeui.MethodChoice{Method: m, Label: methodWords[m]})
	}
	return out
}

func (site *Site) postAdminRemoveMethod(c *call) error {
	user := site.realm.UserID(c.r.PostForm.Get("user"))
	mailed, _, err := site.realm.RemoveMemberMethod(c.ctx(), site.actor(c), user, c.r.PostForm.Get("method"))
	if err != nil {
		e := site.public(err, "admin remove method")
		return site.showAdmin(c, e.Status, "", e.Message, "")
	}
	return site.adminDone(c, adminNotice{Done: "method-removed", User: user, Mailed: mailed})
}

func (site *Site) postAdminUnlock(c *call) error {
	user := site.realm.UserID(c.r.PostForm.Get("user"))
	if err := site.svc.UnlockUser(c.ctx(), site.actor(c), user); err != nil {
		e := site.public(err, "admin unlock")
		return site.showAdmin(c, e.Status, "", e.Message, "")
	}
	return site.adminDone(c, adminNotice{Done: "unlock", User: user})
}

func (site *Site) postAdminRevoke(c *call) error {
	info, err := site.svc.RevokeSession(c.ctx(), site.actor(c), c.r.PostForm.Get("session"), "", "admin")
	if err != nil {
		e := site.public(err, "revoke")
		return site.showAdmin(c, e.Status, "", e.Message, "")
	}
	return site.adminDone(c, adminNotice{Done: "revoked", User: info.User, Device: useragent.Describe(info.UserAgent)})
}

func (site *Site) postRevokeOwn(c *call) error {
	if err := site.revokeOwn(c, c.r.PostForm.Get("session")); err != nil {
		e := site.public(err, "revoke")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=revoked", http.StatusSeeOther)
	return nil
}

func (site *Site) postRevokeOthers(c *call) error {
	if _, err := site.svc.RevokeOthers(c.ctx(), site.actor(c), c.sess()); err != nil {
		e := site.public(err, "revoke others")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=revoked", http.StatusSeeOther)
	return nil
}
