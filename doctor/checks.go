package doctor

import (
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mfagate/mfagate/guard"
)

// checkSignIn signs in as configured with the right password, a wrong one
// and the user name in another letter case, and judges the cookies, the
// identity sources, the success rule and the rotation. It returns the
// right sign-in, or nil when the sign-in could not be checked.
func (d *run) checkSignIn(ctx context.Context, si *SignIn) (*attempt, error) {
	if _, _, ok := sendable(si.Match, http.MethodPost); !ok {
		d.rep.add(Info, "sign-in", si.Match.Ref, "", "a sign-in by GET (an OAuth callback?) is not checked")
		return nil, nil
	}
	if len(si.Match.Other) > 0 {
		d.rep.add(Info, "sign-in", si.Match.Ref, "", "the doctor does not reproduce the %s matchers of this sign_in", strings.Join(si.Match.Other, ", "))
	}
	if src := d.asker(si); src != nil {
		anon, known, err := d.ask(ctx, d.newBrowser(), src)
		if err != nil {
			return nil, err
		}
		switch {
		case !known:
			d.rep.add(Warn, "identity", src.Ref, "point it at a URL that answers JSON (whoami) or a page (page)",
				"%s %s answers nobody in a way the gateway cannot read: every sign-in would be refused", src.Kind, src.Path)
		case anon != "":
			d.rep.add(Fail, "identity", src.Ref, "add nobody_if <field> for the field that marks anonymous visitors",
				"%s %s names %q for a visitor who has not signed in", src.Kind, src.Path, anon)
		default:
			d.rep.add(OK, "identity", src.Ref, "", "before sign-in, %s %s names nobody", src.Kind, src.Path)
		}
	}
	a, err := d.signIn(ctx, si, d.opts.User, d.opts.Password, "sign-in, right password")
	if err != nil || a == nil {
		return nil, err
	}
	switch a.signedIn() {
	case no, unknown:
		if a.ans.Status == http.StatusNotFound || a.ans.Status == http.StatusMethodNotAllowed {
			d.rep.add(Fail, "sign-in", si.Match.Ref, "match the request the app's sign-in form sends",
				"the app answers %d to the sign-in as configured (%s): the gateway would not see the app's real sign-in", a.ans.Status, a.req)
			return nil, nil
		}
		if a.whoKnown && a.whoami == "" && a.landing == unknown {
			return nil, fmt.Errorf("%w: the app did not sign %q in with the given password (%s answered %d); check the user name and the password, or the sign_in and user_from lines",
				ErrBadInput, d.opts.User, a.req, a.ans.Status)
		}
		if a.signedIn() == no {
			return nil, fmt.Errorf("%w: the app did not sign %q in with the given password (%s answered %d); check the user name and the password, or the sign_in line",
				ErrBadInput, d.opts.User, a.req, a.ans.Status)
		}
		d.rep.add(Warn, "sign-in", si.Match.Ref, "add user_from whoami <path> <field>",
			"the doctor could not tell whether the sign-in worked: the app has no whoami configured, and %s looks the same signed in or not", d.landing)
	}
	if a.landing == yes && a.whoKnown && a.whoami == "" {
		src := d.asker(si)
		d.rep.add(Fail, "identity", src.Ref, "point it at the app's answer about the current session",
			"after a good sign-in (%s now answers as it does for a signed-in user), %s %s still names nobody: the gateway would take every sign-in for a failed one and let it through without the second factor",
			d.landing, src.Kind, src.Path)
	}
	d.checkCookies(a)
	d.checkIdentity(a)
	d.checkRotation(a)
	if err := d.checkWrongPassword(ctx, si, a); err != nil {
		return nil, err
	}
	if err := d.checkFolding(ctx, si, a); err != nil {
		return nil, err
	}
	return a, nil
}

// checkCookies: every cookie that looks like a session cookie must be
// covered by session_cookie, and at least one must be.
func (d *run) checkCookies(a *attempt) {
	ref := d.cookieRef()
	covered := false
	seen := map[string]bool{}
	for _, n := range d.notes(a.ans) {
		if n.Deleted || seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		switch {
		case len(n.CoveredBy) > 0:
			covered = true
			d.rep.add(OK, "cookies", ref, "", "the sign-in sets %s, covered by session_cookie %s", n.Name, strings.Join(n.CoveredBy, ", "))
		case sessionLike(n.Name):
			d.rep.add(Fail, "cookies", ref, "add "+n.Name+" to session_cookie",
				"the sign-in sets %s, which looks like a session cookie, and no session_cookie pattern covers it: it would reach the app without the gateway session", n.Name)
		case n.HTTPOnly:
			d.rep.add(Warn, "cookies", ref, "add "+n.Name+" to session_cookie if it carries the session",
				"the sign-in sets %s (HttpOnly), which no session_cookie pattern covers", n.Name)
		default:
			d.rep.add(Info, "cookies", Ref{}, "", "the sign-in sets %s, not a session cookie by its name", n.Name)
		}
	}
	if !covered && !d.rep.Has(Fail, "cookies", "") {
		held := false
		for _, c := range a.b.cookies() {
			held = held || len(d.coveredBy(c.Name)) > 0
		}
		if !held {
			d.rep.add(Fail, "cookies", ref, "name the cookie the app signs in with",
				"no cookie the app uses is covered by session_cookie: the gateway cannot hold the app's session")
		}
	}
}

func (d *run) cookieRef() Ref {
	if len(d.cfg.Cookies) > 0 {
		return d.cfg.Cookies[0].Ref
	}
	return d.cfg.BlockRef
}

// checkIdentity reports what each user_from source reads for the right
// sign-in, and whether they name the user.
func (d *run) checkIdentity(a *attempt) {
	si := a.si
	asks := si.asksApp()
	var named []string
	for _, src := range si.identity() {
		var v, from string
		switch src.Kind {
		case guard.FromForm:
			if vs := a.sent.form[src.Name]; len(vs) == 1 {
				v = vs[0]
			}
			from = "the sign-in's form field " + src.Name
		case guard.FromJSON:
			v = a.sent.json[src.Name]
			from = "the sign-in's JSON field " + src.Name
		case guard.FromQuery:
			v = a.sent.query.Get(src.Name)
			from = "the sign-in's query parameter " + src.Name
		case guard.FromHeader:
			v = a.ans.Header.Get(src.Name)
			from = "the app's response header " + src.Name
		case guard.FromBasic:
			from = "the sign-in's Basic user (the sign-in sends none)"
		case guard.FromWhoami, guard.FromPage:
			v = a.whoami
			from = src.Kind + " " + src.Path
		}
		v = strings.TrimSpace(v)
		ignored := asks != nil && asks.Ref != src.Ref
		switch {
		case ignored:
			d.rep.add(Info, "identity", src.Ref, "", "user_from %s reads %q, but %s %s names the user", src.Kind, v, asks.Kind, asks.Path)
		case v == "":
			d.rep.add(Warn, "identity", src.Ref, fmt.Sprintf("the sign-in sends the user as %q", a.sent.userField),
				"%s reads nothing for a good sign-in: the gateway would refuse every sign-in (403 sign_in_unverified)", from)
		default:
			named = append(named, v)
			d.rep.add(OK, "identity", src.Ref, "", "%s names %q", from, v)
		}
	}
	if asks == nil && len(slices.Compact(slices.Sorted(slices.Values(named)))) > 1 {
		d.rep.add(Warn, "identity", si.identityRef(), "keep one source, or sources that read the same name",
			"the user_from sources name different users (%s): the gateway would refuse the sign-in", strings.Join(named, ", "))
	}
}

// checkRotation: an app that signs its pre-sign-in session in place sends
// no new cookie; only the app's own answer can show such a sign-in.
func (d *run) checkRotation(a *attempt) {
	var before []string
	for _, c := range a.before {
		if len(d.coveredBy(c.Name)) > 0 {
			before = append(before, c.Name)
		}
	}
	if len(before) == 0 {
		d.rep.add(Info, "rotation", Ref{}, "", "the app starts its session at sign-in (no session cookie before it)")
		return
	}
	rotated := false
	for _, c := range a.ans.Cookies {
		rotated = rotated || slices.Contains(before, c.Name) && c.Value != "" && c.MaxAge >= 0
	}
	switch {
	case rotated:
		d.rep.add(OK, "rotation", Ref{}, "", "the app gives its session a new value at sign-in (%s)", strings.Join(before, ", "))
	case d.asker(a.si) != nil:
		d.rep.add(Info, "rotation", Ref{}, "", "the app signs its pre-sign-in session (%s) in place, without a new cookie; the whoami shows the gateway such sign-ins", strings.Join(before, ", "))
	default:
		d.rep.add(Warn, "rotation", a.si.identityRef(), "user_from whoami <path> <field>",
			"the app signs its pre-sign-in session (%s) in place, without a new cookie: without a whoami or page source the gateway can only unbind such cookies, not see who signed in", strings.Join(before, ", "))
	}
}

// holds applies the success rule to an answer, as the gateway does.
func (d *run) holds(a *attempt) bool {
	si := a.si
	if si.successKind() == guard.SuccessWhoami {
		return a.whoKnown && a.whoami != ""
	}
	carried := false
	for _, c := range a.before {
		carried = carried || len(d.coveredBy(c.Name)) > 0
	}
	ans := a.ans
	redirect := ans.location() != ""
	sets := d.setsCovered(ans)
	switch si.successKind() {
	case guard.SuccessCookie:
		if len(si.Success.Cookies) == 0 {
			return sets
		}
		for _, c := range d.notes(ans) {
			for _, p := range si.Success.Cookies {
				if !c.Deleted && pathMatch(p, c.Name) {
					return true
				}
			}
		}
		return false
	case guard.SuccessRedirect:
		return redirect
	case guard.SuccessStatus:
		return slices.Contains(si.Success.Statuses, ans.Status)
	}
	return (sets && ans.Status < 400) || (redirect && carried)
}

// checkWrongPassword: the success rule must hold for the right password
// and fail for a wrong one.
func (d *run) checkWrongPassword(ctx context.Context, si *SignIn, right *attempt) error {
	kind := si.successKind()
	if d.holds(right) {
		d.rep.add(OK, "success", si.successRef(), "", "success %s holds for the right password (%d)", kind, right.ans.Status)
	} else {
		d.rep.add(Fail, "success", si.successRef(), "success whoami, with a user_from whoami or page source",
			"success %s does not hold for the right password (%d): the gateway would take the sign-in for a failed one and let it through without the second factor", kind, right.ans.Status)
	}
	w, err := d.signIn(ctx, si, d.opts.User, d.opts.WrongPassword, "sign-in, wrong password")
	if err != nil || w == nil {
		return err
	}
	if w.signedIn() == yes {
		d.rep.add(Warn, "success", si.Match.Ref, "", "the app signed %q in with the wrong password: check the wrong password given", d.opts.User)
		return nil
	}
	if n := d.notes(w.ans); slices.ContainsFunc(n, func(c CookieNote) bool { return !c.Deleted && len(c.CoveredBy) > 0 }) {
		d.rep.add(Info, "success", Ref{}, "", "the app answers a wrong password with %d and a new session cookie", w.ans.Status)
	}
	if d.holds(w) {
		d.rep.add(Fail, "success", si.successRef(), "user_from whoami <path> <field> (success whoami is then the default)",
			"success %s also holds for a wrong password (%d): anyone who knows a user name could start that user's second factor and lock them out", kind, w.ans.Status)
	} else {
		d.rep.add(OK, "success", si.successRef(), "", "success %s fails for a wrong password (%d)", kind, w.ans.Status)
	}
	return nil
}

// checkFolding signs in with the user name in another letter case: an
// app that accepts it folds names, and a request field then names another
// user than the one who signed in.
func (d *run) checkFolding(ctx context.Context, si *SignIn, right *attempt) error {
	other := otherCase(d.opts.User)
	if other == "" {
		return nil
	}
	f, err := d.signIn(ctx, si, other, d.opts.Password, "sign-in, user name in another case")
	if err != nil || f == nil {
		return err
	}
	switch f.signedIn() {
	case no:
		d.rep.add(OK, "identity", Ref{}, "", "the app does not sign %q in: it keeps letter case apart", other)
		return nil
	case unknown:
		d.rep.add(Info, "identity", Ref{}, "", "the doctor could not tell whether the app signs %q in", other)
		return nil
	}
	switch {
	case si.asksApp() != nil:
		d.rep.add(OK, "identity", si.asksApp().Ref, "", "the app signs %q in as %q; the whoami names %q for both", other, right.whoami, f.whoami)
	case d.cfg.NormalizeFold:
		d.rep.add(OK, "identity", d.cfg.NormalizeRef, "", "the app signs %q in as %q's account; normalize_users fold makes them one user", other, d.opts.User)
	default:
		d.rep.add(Fail, "identity", si.identityRef(), "user_from whoami <path> <field>, or normalize_users fold",
			"the app folds user names (it signs %q in with %q's password), but %s reads the name as typed: the gateway would count %q as another user, without %q's second factor",
			other, d.opts.User, describeSources(si.identity()), other, d.opts.User)
	}
	return nil
}

func describeSources(srcs []Source) string {
	var s []string
	for _, x := range srcs {
		s = append(s, "user_from "+x.Kind+" "+x.Name)
	}
	return strings.Join(s, ", ")
}

// probe is one way of sending the credentials outside the sign-in.
type probe struct {
	label            string
	method, target   string
	body             func() (string, string) // content type, body
	basic            bool
	query            bool
	userKey, passKey string
}

// checkCredentials sends the credentials to another URL in the query, as
// a multipart body and as Basic, and judges whether the gateway as
// configured would catch each that the app accepts.
func (d *run) checkCredentials(ctx context.Context, right *attempt) error {
	pairs := [][2]string{{right.sent.userField, right.sent.passField}, {"auth_user", "auth_pass"}}
	if pairs[0] == pairs[1] {
		pairs = pairs[:1]
	}
	other := "/"
	if d.matches(right.si.Match, http.MethodGet, other, "/") {
		other = "/index.html"
	}
	var probes []probe
	for _, p := range pairs {
		q := url.Values{p[0]: {d.opts.User}, p[1]: {d.opts.Password}}
		probes = append(probes, probe{label: "query", method: http.MethodGet, target: other + "?" + q.Encode(), userKey: p[0], passKey: p[1], query: true})
	}
	for _, p := range pairs {
		probes = append(probes, probe{label: "multipart body", method: http.MethodPost, target: other, userKey: p[0], passKey: p[1],
			body: func() (string, string) {
				var b strings.Builder
				mw := multipart.NewWriter(&b)
				_ = mw.WriteField(p[0], d.opts.User)
				_ = mw.WriteField(p[1], d.opts.Password)
				_ = mw.Close()
				return mw.FormDataContentType(), b.String()
			}})
	}
	probes = append(probes, probe{label: "Authorization: Basic", method: http.MethodGet, target: other, basic: true})
	for _, p := range probes {
		b := d.newBrowser()
		h := http.Header{}
		var body *strings.Reader
		if p.body != nil {
			ct, s := p.body()
			h.Set("Content-Type", ct)
			body = strings.NewReader(s)
		}
		if p.basic {
			h.Set("Authorization", basicAuth(d.opts.User, d.opts.Password))
		}
		var ans *answer
		var err error
		if body != nil {
			ans, err = b.do(ctx, p.method, p.target, body, h)
		} else {
			ans, err = b.do(ctx, p.method, p.target, nil, h)
		}
		if err != nil {
			return err
		}
		desc := d.describeProbe(p)
		d.rep.Exchanges = append(d.rep.Exchanges, Exchange{Label: "credentials outside the sign-in", Request: desc,
			Status: ans.Status, Location: ans.location(), Cookies: d.notes(ans)})
		at := &attempt{si: right.si, b: b, ans: ans}
		if err := d.observe(ctx, at); err != nil {
			return err
		}
		if at.signedIn() != yes {
			d.rep.add(OK, "credentials", Ref{}, "", "the app does not sign in on %s", desc)
			continue
		}
		caught, how, ref, fix := d.caught(p, ans)
		if caught {
			d.rep.add(OK, "credentials", ref, "", "the app signs in on %s; the gateway catches it: %s", desc, how)
		} else {
			d.rep.add(Fail, "credentials", ref, fix,
				"the app signs in on %s, and the gateway as configured would not catch it: %s", desc, how)
		}
	}
	return nil
}

func (d *run) describeProbe(p probe) string {
	switch {
	case p.basic:
		return fmt.Sprintf("%s %s with Authorization: Basic (%s:%s)", p.method, p.target, d.opts.User, redacted)
	case p.body != nil:
		return fmt.Sprintf("%s %s with a multipart body (%s=%s, %s=%s)", p.method, p.target, p.userKey, d.opts.User, p.passKey, redacted)
	}
	u, _ := url.Parse(p.target)
	return fmt.Sprintf("%s %s?%s=%s&%s=%s", p.method, u.Path, p.userKey, url.QueryEscape(d.opts.User), p.passKey, redacted)
}

// caught models the gateway on a request outside the sign-in that the app
// signs in on (guard: strip.go, then the capture of a new session cookie
// in decide.go): the credentials are stripped; or the response sets a
// covered cookie and the gateway then learns the user (whoami, page, a
// Basic or header source) or refuses a request that carries credentials
// it can see (Authorization, a query parameter named like a password).
func (d *run) caught(p probe, ans *answer) (bool, string, Ref, string) {
	if p.basic {
		for _, h := range d.cfg.StripHeaders {
			if strings.EqualFold(h.Name, "Authorization") {
				return true, "strip_header Authorization removes it", h.Ref, ""
			}
		}
	} else {
		for _, s := range d.cfg.StripParams {
			if strings.EqualFold(s.Name, p.passKey) || strings.EqualFold(s.Name, p.userKey) {
				return true, "strip_param " + s.Name + " removes it", s.Ref, ""
			}
		}
	}
	fix := "strip_param " + p.userKey + " " + p.passKey
	ref := d.cfg.BlockRef
	if p.basic {
		fix = "strip_header Authorization"
	}
	if p.basic && len(d.cfg.StripHeaders) > 0 {
		ref = d.cfg.StripHeaders[0].Ref
	} else if !p.basic && len(d.cfg.StripParams) > 0 {
		ref = d.cfg.StripParams[0].Ref
	}
	if !d.setsCovered(ans) {
		return false, "the app's answer sets no cookie that session_cookie covers, so the gateway does not look at it", ref, fix
	}
	// Outside the sign-in, the block's own sources judge (not a route's).
	block := SignIn{Identity: d.cfg.Identity, Match: Match{Ref: d.cfg.BlockRef}}
	if s := block.asksApp(); s != nil {
		return true, "the new session cookie is held and " + s.Kind + " " + s.Path + " names the user", s.Ref, ""
	}
	for _, s := range block.identity() {
		if s.Kind == guard.FromBasic && p.basic || s.Kind == guard.FromHeader && ans.Header.Get(s.Name) != "" {
			return true, "the new session cookie is held and user_from " + s.Kind + " names the user", s.Ref, ""
		}
	}
	// The gateway sees credentials in Authorization and in the query, and
	// refuses a new app session from any request with a body when no
	// source can name its user.
	if p.basic || p.query && (guard.CredentialName(p.passKey) || guard.CredentialName(p.userKey)) {
		return true, "the new session cookie carries credentials the gateway sees and no source names the user: refused (403 sign_in_unverified)", ref, ""
	}
	if p.method != http.MethodGet && p.method != http.MethodHead {
		return true, "a new session cookie from a request with a body, and no source to name its user: refused (403 sign_in_unverified)", ref, ""
	}
	return false, "the gateway sees no credentials in it and no user_from source names the user, so the new session cookie is bound as a pre-sign-in session", ref, fix + ", or user_from whoami <path> <field>"
}

// checkSignOut signs the right sign-in's browser out with the configured
// sign_out, and judges whether the gateway would see it.
func (d *run) checkSignOut(ctx context.Context, a *attempt) error {
	if len(d.cfg.SignOuts) == 0 {
		d.rep.add(Warn, "sign-out", d.cfg.BlockRef, "sign_out <path of the app's sign-out>",
			"no sign_out: the gateway session ends only when the app deletes its cookies, and the doctor could not check the sign-out")
		return nil
	}
	m := d.cfg.SignOuts[0]
	method, target, _ := sendable(m, http.MethodGet)
	if len(m.Methods) == 0 {
		method = http.MethodGet
	}
	var body *strings.Reader
	h := http.Header{}
	if method == http.MethodPost {
		// An app that protects its sign-out with a token shows a form
		// with it: post that form back, as a browser would.
		page, err := a.b.do(ctx, http.MethodGet, target, nil, nil)
		if err != nil {
			return err
		}
		v := url.Values{}
		for _, f := range forms(page.Body) {
			if f.Method == http.MethodPost && slices.ContainsFunc(d.cfg.SignOuts, func(m Match) bool { return d.matches(m, method, f.Action, target) }) {
				if u, err := d.base.Parse(f.Action); err == nil && f.Action != "" {
					target = u.RequestURI()
				}
				v = f.Fields
				break
			}
		}
		body = strings.NewReader(v.Encode())
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	var ans *answer
	var err error
	if body != nil {
		ans, err = a.b.do(ctx, method, target, body, h)
	} else {
		ans, err = a.b.do(ctx, method, target, nil, h)
	}
	if err != nil {
		return err
	}
	d.rep.Exchanges = append(d.rep.Exchanges, Exchange{Label: "sign-out", Request: method + " " + d.redact(target),
		Status: ans.Status, Location: ans.location(), Cookies: d.notes(ans)})
	var deleted, replaced []string
	for _, n := range d.notes(ans) {
		if len(n.CoveredBy) == 0 {
			continue
		}
		if n.Deleted {
			deleted = append(deleted, n.Name)
		} else {
			replaced = append(replaced, n.Name)
		}
	}
	after := &attempt{si: a.si, b: a.b, ans: ans}
	if err := d.observe(ctx, after); err != nil {
		return err
	}
	asks := d.asker(a.si) != nil
	switch {
	case after.signedIn() == yes:
		d.rep.add(Warn, "sign-out", m.Ref, "match the request the app's sign-out really is",
			"the app did not sign out on %s %s (%d): it may want a token the doctor does not have, or this is not its sign-out", method, target, ans.Status)
	case len(deleted) > 0 || len(replaced) > 0:
		d.rep.add(OK, "sign-out", m.Ref, "", "the app's sign-out deletes %s and replaces %s: the gateway session ends with it",
			listOrNone(deleted), listOrNone(replaced))
		if kept := d.kept(a.b, deleted, replaced); len(kept) > 0 {
			d.rep.add(Info, "sign-out", Ref{}, "", "it keeps %s", strings.Join(kept, ", "))
		}
	case asks || d.cfg.SignOutOnReq:
		d.rep.add(OK, "sign-out", m.Ref, "", "the app's sign-out deletes no cookie that session_cookie covers; the gateway sees it (whoami, or sign_out_on_request)")
	default:
		d.rep.add(Warn, "sign-out", m.Ref, "sign_out_on_request, or user_from whoami <path> <field>",
			"the app's sign-out deletes no cookie that session_cookie covers, and without a whoami the gateway cannot see it: its session would outlive the app's")
	}
	return nil
}

// kept are the covered cookies still in the jar after the sign-out.
func (d *run) kept(b *browser, deleted, replaced []string) []string {
	var out []string
	for _, c := range b.cookies() {
		if len(d.coveredBy(c.Name)) > 0 && !slices.Contains(deleted, c.Name) && !slices.Contains(replaced, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}
