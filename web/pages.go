package web

import (
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/recovery"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/useragent"
)

const maxFormBytes = 16 << 10

// pageRoute is one HTML page or form action.
type pageRoute struct {
	method string
	need   requirement
	fn     func(*call) error
}

func (site *Site) pageRoutes() map[string]pageRoute {
	return map[string]pageRoute{
		"challenge":                       {http.MethodGet, needPending, site.pageChallenge},
		"challenge/recovery":              {http.MethodGet, needPending, site.pageRecovery},
		"challenge/send":                  {http.MethodPost, needPending, site.postChallengeSend},
		"security":                        {http.MethodGet, needActive, site.pageSecurity},
		"security/enroll":                 {http.MethodPost, needActive, site.postEnroll},
		"security/confirm":                {http.MethodPost, needActive, site.postConfirm},
		"security/acknowledge":            {http.MethodPost, needActive, site.postAcknowledge},
		"security/regenerate":             {http.MethodPost, needActive, site.postRegenerate},
		"security/disable":                {http.MethodPost, needActive, site.postDisable},
		"security/change":                 {http.MethodPost, needActive, site.postChange},
		"security/method/start":           {http.MethodPost, needActive, site.postMethodStart},
		"security/method/confirm":         {http.MethodPost, needActive, site.postMethodConfirm},
		"security/method/primary":         {http.MethodPost, needActive, site.postMethodPrimary},
		"security/method/remove":          {http.MethodPost, needActive, site.postMethodRemove},
		"security/confirm-code":           {http.MethodPost, needActive, site.postConfirmCode},
		"security/change/confirm":         {http.MethodPost, needActive, site.postChangeConfirm},
		"sign-out":                        {http.MethodPost, needHeld, site.postSignOut},
		"security/sessions/revoke":        {http.MethodPost, needActive, site.postRevokeOwn},
		"security/sessions/revoke-others": {http.MethodPost, needActive, site.postRevokeOthers},
		"admin":                           {http.MethodGet, needAdmin, site.pageAdmin},
		"admin/policy":                    {http.MethodPost, needAdmin, site.postAdminPolicy},
		"admin/timeout":                   {http.MethodPost, needAdmin, site.postAdminTimeout},
		"admin/remember":                  {http.MethodPost, needAdmin, site.postAdminRemember},
		"admin/alerts":                    {http.MethodPost, needAdmin, site.postAdminAlerts},
		"security/devices/forget":         {http.MethodPost, needActive, site.postForgetDevice},
		"security/new-ip-only":            {http.MethodPost, needActive, site.postNewIPOnly},
		"security/enrol-proof":            {http.MethodPost, needActive, site.postEnrolProof},
		"security/enrol-proof/send":       {http.MethodPost, needActive, site.postEnrolProofSend},
		"security/addresses/forget":       {http.MethodPost, needActive, site.postForgetAddress},
		"admin/reset":                     {http.MethodPost, needAdmin, site.postAdminReset},
		"admin/unlock":                    {http.MethodPost, needAdmin, site.postAdminUnlock},
		"admin/methods/remove":            {http.MethodPost, needAdmin, site.postAdminRemoveMethod},
		"admin/sessions/revoke":           {http.MethodPost, needAdmin, site.postAdminRevoke},
		"admin/audit.jsonl":               {http.MethodGet, needAdmin, site.pageAuditJSONL},
		"admin/audit.csv":                 {http.MethodGet, needAdmin, site.pageAuditCSV},
		"admin/identity/secret":           {http.MethodPost, needAdmin, site.postIdentitySecret},
		"admin/identity/mode":             {http.MethodPost, needAdmin, site.postIdentityMode},
		"admin/doctor":                    {http.MethodPost, needAdmin, site.postAdminDoctor},
	}
}

// servePage answers the HTML pages, which work without JavaScript.
func (site *Site) servePage(c *call, rel string) error {
	rt, ok := site.pages[rel]
	if !ok {
		return site.WriteError(c.w, c.r, errNotFound)
	}
	post := c.r.Method == http.MethodPost
	if (rel == "challenge" || rel == "challenge/recovery") && post {
		rt.method = http.MethodPost // the challenge pages post to themselves
	}
	if c.r.Method != rt.method && !(rt.method == http.MethodGet && c.r.Method == http.MethodHead) {
		c.w.Header().Set("Allow", rt.method)
		return site.WriteError(c.w, c.r, errMethod)
	}
	if e := site.require(c, rt.need); e != nil {
		return site.pageRedirectFor(c, e)
	}
	if post {
		if !sameOrigin(c.r) {
			return site.WriteError(c.w, c.r, errCrossOrigin)
		}
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxFormBytes)
		if err := c.r.ParseForm(); err != nil {
			return site.WriteError(c.w, c.r, ErrBadRequest.with("The form could not be read."))
		}
		if !site.checkCSRF(c, c.r.PostForm.Get("csrf")) {
			site.logDecision(c.r, "csrf refused")
			return site.WriteError(c.w, c.r, errCSRF)
		}
	}
	return rt.fn(c)
}

// pageRedirectFor sends a person where their session lets them be.
func (site *Site) pageRedirectFor(c *call, e *Error) error {
	s := c.sess()
	switch {
	case e == errNotPending && s.State == session.Active:
		http.Redirect(c.w, c.r, SafeNext(c.r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	case e == ErrMFARequired:
		http.Redirect(c.w, c.r, site.cfg.Prefix+"challenge?next="+URLQuery(s.Next), http.StatusSeeOther)
		return nil
	}
	return site.WriteError(c.w, c.r, e)
}

func (site *Site) base(c *call) challengeui.Base {
	b := challengeui.Base{CSRF: site.svc.CSRFToken(c.sess())}
	if c.sess().State == session.Active {
		b.User = c.sess().User // not "signed in" before the second factor
		b.IsAdmin = site.realm.IsAdmin(c.sess()) && c.sess().AAL >= 2
	}
	return b
}

func (site *Site) render(c *call, status int, p challengeui.Page) error {
	if err := site.ui.Render(c.w, status, p); err != nil {
		site.log.Error("render page", zap.Error(err))
	}
	return nil
}

// challengeNext is where a passed challenge goes.
func challengeNext(c *call) string {
	if n := c.r.FormValue("next"); n != "" {
		return SafeNext(n)
	}
	return SafeNext(c.sess().Next)
}

func (site *Site) pageChallenge(c *call) error {
	next := challengeNext(c)
	u, err := site.svc.User(c.ctx(), c.sess().User)
	if err != nil {
		return site.WriteError(c.w, c.r, site.public(err, "challenge"))
	}
	methods := mfa.Methods(u)
	if len(methods) == 0 {
		// No method left: recovery codes are the only factor.
		http.Redirect(c.w, c.r, site.cfg.Prefix+"challenge/recovery?next="+URLQuery(next), http.StatusSeeOther)
		return nil
	}
	method := c.r.URL.Query().Get("method")
	if c.r.Method == http.MethodPost {
		method = c.r.PostForm.Get("method")
	}
	if !slices.Contains(methods, method) {
		method = methods[0] // the primary
	}
	page := challengeui.ChallengePage{Base: site.base(c), Account: c.sess().User, Next: next,
		Method: method, SentTo: mfa.SentTo(u, method), Others: site.otherMethods(u, method, next),
		RememberDays: site.rememberDays()}
	if c.r.Method == http.MethodGet {
		if page.SentTo != "" {
			// A code goes out when the page opens, unless one is waiting.
			if _, sent, err := site.realm.SignInCode(c.ctx(), site.actor(c), c.sess(), method); err != nil {
				page.Error = site.public(err, "send code").Message
			} else if sent || c.r.URL.Query().Get("sent") == "1" {
				page.Notice = "We sent a new code."
			}
		}
		return site.render(c, http.StatusOK, page)
	}
	ch, err := site.passCode(c, method, c.r.PostForm.Get("code"))
	if err != nil {
		e := site.public(err, "challenge")
		setRetryAfter(c.w, e)
		page.Error = e.Message
		return site.render(c, e.Status, page)
	}
	site.changed(c, ch)
	site.signedIn(c)
	if c.r.PostForm.Get("remember") == "yes" {
		site.remember(c)
	}
	dest := ch.Session.Next
	if dest == "" || dest == "/" {
		dest = next
	}
	http.Redirect(c.w, c.r, SafeNext(dest), http.StatusSeeOther)
	return nil
}

func (site *Site) pageRecovery(c *call) error {
	next := challengeNext(c)
	page := challengeui.RecoveryPage{Base: site.base(c), Account: c.sess().User, Next: next}
	if c.r.Method == http.MethodGet {
		return site.render(c, http.StatusOK, page)
	}
	ch, err := site.realm.UseRecoveryCode(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("recovery_code"))
	if err != nil {
		e := site.public(err, "recovery")
		setRetryAfter(c.w, e)
		page.Error = e.Message
		return site.render(c, e.Status, page)
	}
	site.changed(c, ch)
	site.signedIn(c)
	// Signed in: the security page opens on setting up a new authenticator,
	// which the user may put off (unless the team requires it).
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?setup=1", http.StatusSeeOther)
	return nil
}

// otherMethods are the ways to answer the challenge besides method.
func (site *Site) otherMethods(u storage.User, method, next string) []challengeui.MethodChoice {
	var out []challengeui.MethodChoice
	for _, m := range mfa.Methods(u) {
		if m == method {
			continue
		}
		label := "Use your authenticator app"
		switch m {
		case mfa.MethodEmail:
			label = "Email a code to " + mfa.SentTo(u, m)
		case mfa.MethodSMS:
			label = "Text a code to " + mfa.SentTo(u, m)
		}
		out = append(out, challengeui.MethodChoice{Method: m, Label: label,
			Href: site.cfg.Prefix + "challenge?method=" + m + "&next=" + URLQuery(next)})
	}
	return out
}

// postChallengeSend sends a new code by email or text message.
func (site *Site) postChallengeSend(c *call) error {
	method := c.r.PostForm.Get("method")
	next := challengeNext(c)
	if _, err := site.realm.SendSignInCode(c.ctx(), site.actor(c), c.sess(), method); err != nil {
		e := site.public(err, "send code")
		setRetryAfter(c.w, e)
		u, uerr := site.svc.User(c.ctx(), c.sess().User)
		if uerr != nil {
			return site.WriteError(c.w, c.r, e)
		}
		return site.render(c, e.Status, challengeui.ChallengePage{Base: site.base(c), Account: c.sess().User, Next: next,
			Method: method, SentTo: mfa.SentTo(u, method), Others: site.otherMethods(u, method, next), Error: e.Message})
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"challenge?method="+URLQuery(method)+"&sent=1&next="+URLQuery(next), http.StatusSeeOther)
	return nil
}

// postSignOut ends a sign-in the gateway holds back: "Not you? Sign out" on
// the challenge, "Sign out" while setup is required.
func (site *Site) postSignOut(c *call) error {
	if err := site.abandon(c); err != nil {
		e := site.public(err, "sign out")
		return site.WriteError(c.w, c.r, e)
	}
	http.Redirect(c.w, c.r, "/", http.StatusSeeOther)
	return nil
}

var notices = map[string]string{
	"enabled":           "Two-factor authentication is on.",
	"disabled":          "Two-factor authentication is off. Your authenticator and recovery codes were deleted.",
	"regenerated":       "New recovery codes are active. The old ones no longer work.",
	"revoked":           "The session was signed out.",
	"changed":           "Your new authenticator app is set up. The old one no longer works.",
	"method-added":      "The new way to get codes is set up.",
	"method-removed":    "That way to get codes was removed.",
	"primary":           "Your primary method was changed: sign-in asks for it first.",
	"forgotten":         "That browser is forgotten: signing in there asks for your code again.",
	"addresses":         "Your choice is saved.",
	"address-forgotten": "That address is forgotten: signing in from it asks for your code again.",
}

// secView is what the security page shows besides the user's state.
type secView struct {
	openSetup                   bool // open the setup dialog
	setupErr, codesErr, pageErr string
	confirm                     *challengeui.ConfirmView
	change                      bool   // open the change-authenticator dialog
	changeErr                   string // an error about its code
	verify                      *challengeui.VerifyView
	proofErr, proofNotice       string
}

func (site *Site) securityPage(c *call, v secView) (challengeui.SecurityPage, *Error) {
	s := c.sess()
	u, err := site.svc.User(c.ctx(), s.User)
	if err != nil {
		return challengeui.SecurityPage{}, site.public(err, "security page")
	}
	q := c.r.URL.Query()
	p := challengeui.SecurityPage{
		Base: site.base(c), Enrolled: u.TOTPConfirmed, Required: site.realm.Require2FA(), MustEnrol: s.MustEnrol,
		CanDisable: s.AAL >= 2, RecoveryRemaining: len(u.RecoveryHashes), Next: SafeNext(s.Next),
		Notice: notices[q.Get("done")], Error: v.pageErr, CodesError: v.codesErr,
		Sessions: sessionViews(c, site.svc.SessionList(s.User)), SentMethods: site.sentMethods(u),
		Devices: site.deviceViews(c, s.User),
	}
	if len(mfa.Methods(u)) > 0 {
		known := &challengeui.AddressesView{On: u.NewIPOnly, Current: c.actor.Address}
		if _, ks, err := site.realm.Addresses(c.ctx(), s.User); err == nil {
			for _, k := range ks {
				known.Known = append(known.Known, challengeui.KnownAddress{Address: k.Address, LastUsed: k.LastUsed})
			}
		}
		p.Addresses = known
	}
	if codes := site.svc.PendingCodes(u); len(codes) > 0 {
		p.Codes = codes
		p.DownloadHref = challengeui.DownloadURL(recovery.Text(codes, site.cfg.Issuer, s.User))
		return p, nil
	}
	setup := !u.TOTPConfirmed && (v.openSetup || s.MustEnrol || q.Get("setup") == "1")
	if setup {
		// A user held at the setup may first have to prove their address.
		if need, sentTo, err := site.realm.EnrolProof(c.ctx(), s); err != nil {
			return p, site.public(err, "email proof")
		} else if need {
			p.Proof = &challengeui.ProofView{SentTo: sentTo, Notice: v.proofNotice, Error: v.proofErr}
			if sent, err := site.realm.EnsureEnrolProof(c.ctx(), site.actor(c), s); err != nil && p.Proof.Error == "" {
				p.Proof.Error = site.public(err, "send email proof").Message
			} else if sent {
				p.Proof.Notice = "We sent a code to " + sentTo + "."
			}
			return p, nil
		}
	}
	switch {
	case setup:
		st, err := site.realm.Setup(c.ctx(), site.actor(c), s.User, true)
		if err != nil {
			return p, site.public(err, "setup")
		}
		p.Setup = setupView(st, v.setupErr)
	case u.TOTPConfirmed && (v.change || q.Get("change") == "1") && s.AAL >= 2:
		st, err := site.realm.StartChange(c.ctx(), site.actor(c), s)
		if err != nil {
			return p, site.public(err, "change authenticator")
		}
		p.Change = setupView(st, v.changeErr)
	case v.verify != nil:
		p.Verify = v.verify
	case v.confirm != nil:
		p.Confirm = v.confirm
	case hasFactor(p) && s.AAL >= 2 && confirmActions[q.Get("confirm")]:
		p.Confirm = &challengeui.ConfirmView{Action: q.Get("confirm")}
	}
	if p.Confirm != nil {
		p.Confirm.Send = confirmSenders(u)
	}
	return p, nil
}

// confirmActions are the changes the confirming dialog asks a code for.
var confirmActions = map[string]bool{
	"disable": true, "regenerate": true,
	"remove-" + mfa.MethodTOTP: true, "remove-" + mfa.MethodEmail: true, "remove-" + mfa.MethodSMS: true,
}

// confirmSenders are the held methods that can send a code to confirm a
// change with.
func confirmSenders(u storage.User) []challengeui.MethodChoice {
	var out []challengeui.MethodChoice
	for _, m := range []string{mfa.MethodEmail, mfa.MethodSMS} {
		if to := mfa.SentTo(u, m); to != "" {
			verb := "Email"
			if m == mfa.MethodSMS {
				verb = "Text"
			}
			out = append(out, challengeui.MethodChoice{Method: m, Label: verb + " a code to " + to})
		}
	}
	return out
}

// deviceViews are the user's remembered browsers, for the security page.
func (site *Site) deviceViews(c *call, user string) []challengeui.DeviceView {
	ds, err := site.realm.Devices(c.ctx(), user)
	if err != nil {
		return nil // the page shows the rest; the store's fault is logged there
	}
	var out []challengeui.DeviceView
	for _, d := range ds {
		out = append(out, challengeui.DeviceView{ID: d.ID, Device: useragent.Describe(d.Agent), Address: d.Address, LastUsed: d.LastUsed, Expires: d.Expires})
	}
	return out
}

// sentMethods are the email and SMS rows of the security page.
func (site *Site) sentMethods(u storage.User) []challengeui.MethodView {
	var out []challengeui.MethodView
	primary := mfa.PrimaryOf(u)
	for _, m := range []string{mfa.MethodEmail, mfa.MethodSMS} {
		mv := challengeui.MethodView{Method: m, SentTo: mfa.SentTo(u, m), Allowed: site.realm.MethodAllowed(m)}
		mv.Held, mv.Primary = mv.SentTo != "", primary == m && len(mfa.Methods(u)) > 1
		if mv.Held || mv.Allowed {
			out = append(out, mv)
		}
	}
	return out
}

// hasFactor reports whether the page's user has a second factor left to
// confirm a change with.
func hasFactor(p challengeui.SecurityPage) bool { return p.Enrolled || p.RecoveryRemaining > 0 }

func setupView(st *mfa.Setup, errMsg string) *challengeui.SetupView {
	return &challengeui.SetupView{Secret: st.Secret, OTPAuthURI: templateURL(st.URI), QRDataURI: templateURL(st.QR), Error: errMsg}
}

func (site *Site) security(c *call, status int, v secView) error {
	p, e := site.securityPage(c, v)
	if e != nil {
		return site.WriteError(c.w, c.r, e)
	}
	return site.render(c, status, p)
}

// showSecurity renders the security page with the setup dialog open or not
// and the given messages.
func (site *Site) showSecurity(c *call, status int, openSetup bool, setupErr, codesErr, pageErr string) error {
	return site.security(c, status, secView{openSetup: openSetup, setupErr: setupErr, codesErr: codesErr, pageErr: pageErr})
}

func (site *Site) pageSecurity(c *call) error {
	return site.showSecurity(c, http.StatusOK, false, "", "", "")
}

func (site *Site) postEnroll(c *call) error {
	if _, err := site.realm.Setup(c.ctx(), site.actor(c), c.sess().User, true); err != nil {
		e := site.public(err, "setup")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	return site.showSecurity(c, http.StatusOK, true, "", "", "")
}

func (site *Site) postConfirm(c *call) error {
	ch, _, err := site.realm.ConfirmSetup(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("code"))
	if err != nil {
		e := site.public(err, "confirm setup")
		setRetryAfter(c.w, e)
		return site.showSecurity(c, e.Status, true, e.Message, "", "")
	}
	site.changed(c, ch)
	// Post/redirect/get: the page shows the codes until they are acknowledged.
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security", http.StatusSeeOther)
	return nil
}

func (site *Site) postAcknowledge(c *call) error {
	wasForced := c.sess().MustEnrol
	s, err := site.realm.AcknowledgeCodes(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("saved") == "yes")
	if err != nil {
		e := site.public(err, "acknowledge codes")
		return site.showSecurity(c, e.Status, false, "", e.Message, "")
	}
	c.cur.Session = s
	dest := site.cfg.Prefix + "security?done=enabled"
	if wasForced {
		dest = SafeNext(c.sess().Next)
	}
	http.Redirect(c.w, c.r, dest, http.StatusSeeOther)
	return nil
}

// refuseConfirm shows the confirming dialog again with why the code was
// refused.
func (site *Site) refuseConfirm(c *call, action string, err error) error {
	e := site.public(err, action)
	setRetryAfter(c.w, e)
	return site.security(c, e.Status, secView{confirm: &challengeui.ConfirmView{Action: action, Error: e.Message}})
}

func (site *Site) postRegenerate(c *call) error {
	if _, err := site.realm.RegenerateCodes(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("code")); err != nil {
		return site.refuseConfirm(c, "regenerate", err)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security", http.StatusSeeOther)
	return nil
}

func (site *Site) postDisable(c *call) error {
	if err := site.realm.Disable(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("code")); err != nil {
		if errors.Is(err, mfa.ErrPolicyRequires) || errors.Is(err, mfa.ErrAAL2Required) {
			e := site.public(err, "disable")
			return site.showSecurity(c, e.Status, false, "", "", e.Message)
		}
		return site.refuseConfirm(c, "disable", err)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=disabled", http.StatusSeeOther)
	return nil
}

func (site *Site) postMethodStart(c *call) error {
	method, dest := c.r.PostForm.Get("method"), c.r.PostForm.Get("destination")
	sentTo, err := site.realm.StartMethod(c.ctx(), site.actor(c), c.sess(), method, dest)
	if err != nil {
		e := site.public(err, "start method")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{pageErr: e.Message})
	}
	return site.security(c, http.StatusOK, secView{verify: &challengeui.VerifyView{Method: method, SentTo: sentTo, Destination: dest}})
}

func (site *Site) postMethodConfirm(c *call) error {
	method := c.r.PostForm.Get("method")
	ch, codes, err := site.realm.ConfirmMethod(c.ctx(), site.actor(c), c.sess(), method, c.r.PostForm.Get("code"))
	if err != nil {
		e := site.public(err, "confirm method")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{verify: &challengeui.VerifyView{Method: method,
			Destination: c.r.PostForm.Get("destination"), SentTo: c.r.PostForm.Get("sent_to"), Error: e.Message}})
	}
	site.changed(c, ch)
	dest := site.cfg.Prefix + "security?done=method-added"
	if len(codes) > 0 {
		dest = site.cfg.Prefix + "security" // the recovery codes to save come first
	}
	http.Redirect(c.w, c.r, dest, http.StatusSeeOther)
	return nil
}

func (site *Site) postMethodPrimary(c *call) error {
	if err := site.realm.SetPrimary(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("method")); err != nil {
		e := site.public(err, "primary method")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=primary", http.StatusSeeOther)
	return nil
}

func (site *Site) postMethodRemove(c *call) error {
	method := c.r.PostForm.Get("method")
	if err := site.realm.RemoveMethod(c.ctx(), site.actor(c), c.sess(), method, c.r.PostForm.Get("code")); err != nil {
		if errors.Is(err, mfa.ErrPolicyRequires) || errors.Is(err, mfa.ErrAAL2Required) {
			e := site.public(err, "remove method")
			return site.showSecurity(c, e.Status, false, "", "", e.Message)
		}
		return site.refuseConfirm(c, "remove-"+method, err)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=method-removed", http.StatusSeeOther)
	return nil
}

// postConfirmCode sends a code to confirm a change with, and shows the
// confirming dialog again.
func (site *Site) postConfirmCode(c *call) error {
	action := c.r.PostForm.Get("action")
	if !confirmActions[action] {
		return site.WriteError(c.w, c.r, ErrBadRequest.with("Unknown change."))
	}
	sentTo, err := site.realm.SendConfirmCode(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("method"))
	if err != nil {
		e := site.public(err, "send confirmation code")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{confirm: &challengeui.ConfirmView{Action: action, Error: e.Message}})
	}
	return site.security(c, http.StatusOK, secView{confirm: &challengeui.ConfirmView{Action: action, Notice: "We sent a code to " + sentTo + "."}})
}

func (site *Site) postForgetDevice(c *call) error {
	if err := site.realm.ForgetDevice(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("device")); err != nil {
		e := site.public(err, "forget device")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=forgotten#devices", http.StatusSeeOther)
	return nil
}

func (site *Site) postNewIPOnly(c *call) error {
	on := c.r.PostForm.Get("new_ip_only") == "on"
	if err := site.realm.SetNewIPOnly(c.ctx(), site.actor(c), c.sess(), on); err != nil {
		e := site.public(err, "new address only")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=addresses#addresses", http.StatusSeeOther)
	return nil
}

func (site *Site) postForgetAddress(c *call) error {
	if err := site.realm.ForgetAddress(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("address")); err != nil {
		e := site.public(err, "forget address")
		return site.showSecurity(c, e.Status, false, "", "", e.Message)
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=address-forgotten#addresses", http.StatusSeeOther)
	return nil
}

func (site *Site) postEnrolProof(c *call) error {
	if err := site.realm.ConfirmEnrolProof(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("code")); err != nil {
		e := site.public(err, "email proof")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{openSetup: true, proofErr: e.Message})
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?setup=1", http.StatusSeeOther)
	return nil
}

func (site *Site) postEnrolProofSend(c *call) error {
	sentTo, err := site.realm.SendEnrolProof(c.ctx(), site.actor(c), c.sess())
	if err != nil {
		e := site.public(err, "send email proof")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{openSetup: true, proofErr: e.Message})
	}
	return site.security(c, http.StatusOK, secView{openSetup: true, proofNotice: "We sent a new code to " + sentTo + "."})
}

func (site *Site) postChange(c *call) error {
	return site.security(c, http.StatusOK, secView{change: true})
}

func (site *Site) postChangeConfirm(c *call) error {
	if err := site.realm.ConfirmChange(c.ctx(), site.actor(c), c.sess(), c.r.PostForm.Get("code")); err != nil {
		e := site.public(err, "confirm authenticator change")
		setRetryAfter(c.w, e)
		return site.security(c, e.Status, secView{change: true, changeErr: e.Message})
	}
	http.Redirect(c.w, c.r, site.cfg.Prefix+"security?done=changed", http.StatusSeeOther)
	return nil
}

// templateURL marks a URL the gateway built itself (otpauth:, data:) as safe
// for an href or src; only ever called with those.
func templateURL(s string) template.URL {
	if strings.HasPrefix(s, "otpauth://") || strings.HasPrefix(s, "data:image/png;base64,") {
		return template.URL(s)
	}
	return ""
}
