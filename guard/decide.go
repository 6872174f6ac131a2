package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/web"
)

var errAnsweredDuringSignIn = web.ErrSignInInProgress.With("A sign-in started in this browser while this request was at the app. Reload the page.")

// decide handles a captured response: a sign-in (matched, or any response
// setting the app's session cookie) either passes through, binds an
// anonymous app session, or has its cookies held for the second factor.
func (g *Guard) decide(ctx context.Context, iw *interceptWriter, next Handler) error {
	if iw.stale {
		// The app answered a pre-sign-in request after a sign-in for the
		// same browser went to it: the answer may be the new user's.
		g.logDecision(iw.r, "response withheld: a sign-in started for this browser while the request was at the app")
		h := iw.w.Header()
		for k := range h {
			delete(h, k)
		}
		return g.site.WriteError(iw.w, iw.r, errAnsweredDuringSignIn)
	}
	if iw.signout {
		return g.decideSignOut(ctx, iw, next)
	}
	h := iw.w.Header()
	as := g.jar.AppSetCookies(h, iw.now)
	cur := iw.cur.Session
	active := cur != nil && cur.State == session.Active
	asks := g.rulesOf(iw).appAnswer() != nil // the app is asked who its session is
	if iw.signin != nil && !g.rulesOf(iw).succeeded(iw.status, h, len(as.Set) > 0, len(iw.scan.Forwarded) > 0) {
		g.svc.Stats().SignInRejected()
		g.logDecision(iw.r, "sign-in not successful", zap.Int("status", iw.status))
		g.bindOrFollow(ctx, iw, as)
		return iw.release()
	}
	if len(as.Set) == 0 && iw.signin == nil && !iw.confirm {
		return iw.release() // only deletions: nothing to own
	}
	inPlace := iw.signin == nil && len(as.Set) == 0 // only the forwarded cookies can carry a sign-in
	user, src, known := g.identify(ctx, iw, as.Values, next)
	switch {
	case !known:
		return g.refuseSignIn(ctx, iw, "the app's answer about the new session could not be read")
	case inPlace && user == "" && !asks && (passwordIn(iw.r) || iw.bodyPassword):
		// Nothing but the app could say whether the password signed its
		// session in, and it is not asked: fail closed.
		return g.refuseSignIn(ctx, iw, "a password outside the sign-in, no new cookie, and no whoami to ask")
	case inPlace && user == "":
		if s := iw.cur.Session; !asks && s != nil && s.State == session.Anonymous {
			// Unasked, the app cannot say whether this request signed its
			// pre-sign-in session in: that session's cookies are unbound, so
			// whatever the app did, they open nothing later.
			var names []string
			for _, c := range iw.scan.Forwarded {
				names = append(names, c.Name)
			}
			g.realm.Rebind(ctx, s, nil, names)
			g.logDecision(iw.r, "pre-sign-in app cookies unbound: a request that may sign in, and no whoami to ask")
		}
		return iw.release()
	case user == "" && asks:
		// The app itself says nobody is signed in with these cookies: a
		// failed sign-in, or an anonymous session (a login form's).
		if iw.signin != nil {
			g.svc.Stats().SignInRejected()
			g.logDecision(iw.r, "sign-in not successful: the app names nobody", zap.Int("status", iw.status))
		}
		g.bindOrFollow(ctx, iw, as)
		return iw.release()
	case user == "" && iw.signin != nil:
		return g.refuseSignIn(ctx, iw, "sign-in succeeded but no user source named the user")
	case user == "" && (g.carriesCredentials(iw.r) || iw.bodyPassword):
		return g.refuseSignIn(ctx, iw, "credentials outside the sign-in and no user source named the user")
	case user == "" && !active && !asks && !plainRead(iw.r):
		// A new app session from a request whose body may carry credentials
		// (an app that signs in wherever a password arrives), and nothing
		// to ask who it is: binding it as a pre-sign-in session could hand
		// over a signed-in session on the password alone. Fail closed; an
		// app that sets its session on such requests needs a whoami.
		return g.refuseSignIn(ctx, iw, "a new app session outside the sign-in from a request with a body, and no whoami to ask whose it is")
	case user == "", active && user == cur.User && iw.signin == nil:
		// An anonymous app session (a login form's), or the signed-in
		// user's session refreshed by the app.
		g.bindOrFollow(ctx, iw, as)
		return iw.release()
	}
	next0 := g.nextAfterSignIn(iw)
	// Every cookie the app set with the sign-in is held with it, not only
	// its session cookies: a rotated CSRF cookie must reach the browser with
	// the session it belongs to, and not before the second factor.
	held := g.appLines(iw)
	ch, outcome, err := g.realm.SignIn(ctx, g.actor(iw.r, user), mfa.SignIn{
		User: user, Source: src, Email: g.emailOf(ctx, iw, as.Values, next), Role: g.roleOf(ctx, iw, as.Values, next),
		Next: next0, Held: held, Set: as.Set, Old: cur, Matched: iw.signin != nil,
		// Carried cookies: app cookies the browser sent with the sign-in,
		// which an app that does not rotate its session has just
		// authenticated in place.
		Carried: carriedBindings(iw.scan.Forwarded, as),
		Device:  iw.scan.Device, // read before the gateway's cookies were taken off the request
	})
	if err != nil {
		g.log.Error("start session at sign-in", zap.String("user", user), zap.Error(err))
		for k := range h { // nothing of the app's answer, least of all its cookies
			delete(h, k)
		}
		return g.site.WriteError(iw.w, iw.r, web.ErrUnavailable)
	}
	g.jar.Set(h, iw.r, g.realm.CookieValue(ch.ID, ch.Session, iw.now))
	switch {
	case ch.Device != "":
		g.jar.SetDevice(h, iw.r, ch.Device, ch.DeviceMaxAge) // the remembered browser's token, rotated
	case ch.ForgetDevice:
		g.jar.ClearDevice(h, iw.r)
	}
	xhr := iw.signin != nil && web.WantsJSON(iw.r)
	switch outcome {
	case mfa.SecondFactor:
		// Nothing of the app's answer goes out, not even to a script: a
		// sign-in response may carry the session's tokens or data. A script
		// gets 401 mfa_required with X-Mfa-Location.
		cookies.RemoveLines(h, held)
		return g.replaceResponse(iw, g.cfg.Prefix+"challenge?next="+web.URLQuery(next0), web.ErrMFARequired, nil)
	case mfa.MustEnrol:
		if !xhr {
			// The app's cookies are bound already (the gateway blocks the app
			// until setup is done), so they go to the browser now.
			return g.replaceResponse(iw, g.cfg.Prefix+"security?setup=1", web.ErrEnrolmentRequired, held)
		}
	}
	if outcome == mfa.SignedIn {
		g.site.SignedInFrom(h, iw.r, user, iw.scan.Seen) // a completed sign-in: new-login alerts
	}
	return iw.release()
}

// appLines are the Set-Cookie lines of the app's captured response (the
// gateway's own cookie is never among them: the app cannot set it).
func (g *Guard) appLines(iw *interceptWriter) []string {
	var out []string
	for _, line := range iw.w.Header()["Set-Cookie"] {
		if !g.jar.Own(iw.r, line) {
			out = append(out, line)
		}
	}
	return out
}

// bindOrFollow binds app cookies that carry no sign-in: to the active
// session (the app refreshed its cookie) or to an anonymous one.
func (g *Guard) bindOrFollow(ctx context.Context, iw *interceptWriter, as cookies.AppSet) {
	if len(as.Set) == 0 && len(as.Deleted) == 0 {
		return
	}
	if s := iw.cur.Session; s != nil && s.State == session.Active {
		g.follow(ctx, iw, as)
		return
	}
	ch, err := g.realm.BindAnonymous(ctx, g.actor(iw.r, ""), iw.cur.Session, as.Set)
	if err != nil {
		g.log.Error("bind anonymous app session", zap.Error(err))
		return
	}
	if ch.Session != nil {
		g.jar.Set(iw.w.Header(), iw.r, g.realm.CookieValue(ch.ID, ch.Session, iw.now))
	}
}

// follow applies the app's cookie changes to the active session. When they
// delete every app cookie the session holds, the app has signed its user out,
// wherever the request went: the gateway session ends with it. It reports
// whether the session ended.
func (g *Guard) follow(ctx context.Context, iw *interceptWriter, as cookies.AppSet) bool {
	s := iw.cur.Session
	if len(as.Set) == 0 && len(as.Deleted) == 0 {
		return false
	}
	had := len(s.Bindings()) > 0
	g.realm.Rebind(ctx, s, as.Set, as.Deleted)
	if !had || len(as.Deleted) == 0 || len(s.Bindings()) > 0 {
		return false
	}
	g.endSession(ctx, iw, "the app deleted its session cookies")
	return true
}

// endSession ends the active session because the app signed its user out,
// and clears the gateway cookie.
func (g *Guard) endSession(ctx context.Context, iw *interceptWriter, why string) {
	s := iw.cur.Session
	g.realm.SignOut(ctx, g.actor(iw.r, s.User), s)
	g.logDecision(iw.r, "signed out: "+why, zap.String("user", s.User))
	g.jar.Clear(iw.w.Header(), iw.r, nil)
}

// decideSignOut ends the gateway session after a request that matched
// sign_out only when the app's answer shows the sign-out happened: it deleted
// or replaced its session cookies, or its whoami no longer names the user.
// A sign-out the app ignored (a cross-site link without the app's CSRF token)
// ends nothing. sign_out_on_request trusts the request alone, for apps that
// sign out without touching their cookies and have no whoami.
func (g *Guard) decideSignOut(ctx context.Context, iw *interceptWriter, next Handler) error {
	s := iw.cur.Session
	as := g.jar.AppSetCookies(iw.w.Header(), iw.now)
	replaced := false // a new value under a name the session holds
	for _, n := range as.Set {
		for _, b := range s.Bindings() {
			replaced = replaced || (b.Name == n.Name && b.Hash != n.Hash)
		}
	}
	if g.follow(ctx, iw, as) {
		return iw.release()
	}
	switch {
	case replaced:
		g.endSession(ctx, iw, "the app replaced its session cookies at sign-out")
	case g.rulesOf(iw).appAnswer() != nil:
		if user, _, known := g.identify(ctx, iw, as.Values, next); known && user != s.User {
			g.endSession(ctx, iw, "the app names nobody after sign-out")
		} else {
			g.logDecision(iw.r, "sign-out request the app did not carry out", zap.String("user", s.User))
		}
	case g.cfg.SignOutOnRequest:
		g.endSession(ctx, iw, "sign_out matched")
	default:
		g.logDecision(iw.r, "sign-out request the app did not carry out", zap.String("user", s.User))
	}
	return iw.release()
}

// refuseSignIn fails closed on a sign-in the gateway cannot attribute: the
// app's new cookies are dropped, and cookies it may have authenticated in
// place are unbound, so nothing of that session reaches the app again.
func (g *Guard) refuseSignIn(ctx context.Context, iw *interceptWriter, why string) error {
	var names []string
	for _, c := range iw.scan.Forwarded {
		names = append(names, c.Name)
	}
	g.realm.RefuseSignIn(ctx, g.actor(iw.r, ""), iw.cur.Session, names, iw.r.URL.Path, why)
	h := iw.w.Header()
	for k := range h {
		delete(h, k)
	}
	return g.site.WriteError(iw.w, iw.r, web.ErrSignInUnverified)
}

// carriesCredentials: the request brings a password or token of its own
// (apps that sign a user in from any URL). Such a request setting the app's
// session cookie is a sign-in, whatever its path.
func (g *Guard) carriesCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || queryHas(r.URL.RawQuery, func(k string) bool {
		return CredentialName(k) || nameIn(k, g.cfg.StripParams)
	})
}

// rulesOf is the rules a captured response is judged by: the matched
// sign-in route's, or the block's.
func (g *Guard) rulesOf(iw *interceptWriter) *Rules {
	if iw.signin != nil && iw.signin.rules != nil {
		return iw.signin.rules
	}
	return &g.cfg.block
}

// succeeded applies the success criterion to the response. The whoami
// criterion is judged on the app's answer instead (identify).
func (ru *Rules) succeeded(status int, h http.Header, setsCookie, carriedCookie bool) bool {
	redirect := status >= 300 && status < 400 && h.Get("Location") != ""
	switch ru.Success.Kind {
	case SuccessWhoami:
		return true
	case SuccessCookie:
		if len(ru.Success.Cookies) == 0 {
			return setsCookie
		}
		return setsOneOf(h, ru.Success.Cookies)
	case SuccessRedirect:
		return redirect
	case SuccessStatus:
		for _, s := range ru.Success.Statuses {
			if s == status {
				return true
			}
		}
		return false
	}
	return (setsCookie && status < 400) || (redirect && carriedCookie)
}

// setsOneOf reports whether the response sets (not deletes) a cookie named,
// in any letter case, by one of names (path.Match globs allowed).
func setsOneOf(h http.Header, names []string) bool {
	for _, line := range h["Set-Cookie"] {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Value == "" || c.MaxAge < 0 {
			continue
		}
		for _, n := range names {
			if ok, _ := path.Match(strings.ToLower(n), strings.ToLower(c.Name)); ok {
				return true
			}
		}
	}
	return false
}

// replaceResponse discards the app's captured response and sends the
// browser elsewhere, keeping only the gateway's own cookie.
func (g *Guard) replaceResponse(iw *interceptWriter, loc string, e *web.Error, appLines []string) error {
	h := iw.w.Header()
	keep := h["Set-Cookie"]
	for k := range h {
		delete(h, k)
	}
	own := appLines
	for _, line := range keep {
		if g.jar.Own(iw.r, line) {
			own = append(own, line)
		}
	}
	if len(own) > 0 {
		h["Set-Cookie"] = own
	}
	if web.WantsJSON(iw.r) {
		h.Set("X-Mfa-Location", loc)
		return web.WriteJSONError(iw.w, e)
	}
	h.Set("Cache-Control", "no-store")
	http.Redirect(iw.w, iw.r, loc, http.StatusSeeOther)
	return nil
}

// nextAfterSignIn is where the user goes once the factor is passed: the app's
// own redirect if it sent one, else the page that was asked for.
func (g *Guard) nextAfterSignIn(iw *interceptWriter) string {
	if loc := iw.w.Header().Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			if u.Host == "" || strings.EqualFold(u.Host, iw.r.Host) {
				return web.SafeNext(u.RequestURI())
			}
		}
	}
	if iw.r.Method == http.MethodGet && iw.signin == nil {
		if g.carriesCredentials(iw.r) {
			return web.SafeNext(iw.r.URL.EscapedPath()) // never echo credentials into a URL
		}
		return web.SafeNext(iw.r.URL.RequestURI())
	}
	return "/"
}

// carriedBindings are the forwarded app cookies the response neither
// replaces nor deletes.
func carriedBindings(forwarded []cookies.Pair, as cookies.AppSet) []session.Binding {
	var out []session.Binding
	for _, c := range forwarded {
		replaced := false
		for _, s := range as.Set {
			replaced = replaced || s.Name == c.Name
		}
		for _, d := range as.Deleted {
			replaced = replaced || d == c.Name
		}
		if !replaced {
			out = append(out, session.Binding{Name: c.Name, Hash: session.HashValue(c.Value)})
		}
	}
	return out
}

// identify learns who signed in. When a source asks the app (whoami or
// page), the app's answer alone names the user: it is the canonical id,
// whatever the client typed, and "" means the app says nobody is signed in.
// known is false when that answer could not be read. Otherwise every request
// source is read and they must agree. Names are folded (normalize_users
// fold) as they are read.
func (g *Guard) identify(ctx context.Context, iw *interceptWriter, values []cookies.Pair, next Handler) (user, src string, known bool) {
	ru := g.rulesOf(iw)
	if s := ru.appAnswer(); s != nil {
		user, known = s.userFrom(g.ask(ctx, iw, values, s.Path, next))
		if len(user) > 256 {
			return "", s.Kind, false
		}
		return g.folded(user), s.Kind, known
	}
	// Every request source is read, not only the first that names someone:
	// a sign-in endpoint that reads one field can be sent a decoy in another
	// that an earlier source reads. Sources that name different users are
	// ambiguous, and the sign-in is refused.
	for _, s := range ru.Identity {
		v := strings.TrimSpace(g.attr(ctx, iw, values, s, next))
		if v == "" {
			continue
		}
		if len(v) > 256 {
			return "", s.Kind, false
		}
		v = g.folded(v)
		switch {
		case user == "":
			user, src = v, s.Kind
		case v != user:
			g.logDecision(iw.r, "user sources disagree", zap.String("first", src), zap.String("other", s.Kind))
			return "", src, false
		}
	}
	return user, src, true
}

// folded is name as this block stores user names.
func (g *Guard) folded(name string) string {
	if g.fold == nil {
		return name
	}
	return g.fold(name)
}

// emailOf learns the user's email address from the operator's sources, if any.
func (g *Guard) emailOf(ctx context.Context, iw *interceptWriter, values []cookies.Pair, next Handler) string {
	for _, src := range g.cfg.EmailFrom {
		if v := strings.TrimSpace(g.attr(ctx, iw, values, src, next)); v != "" && len(v) <= 254 && strings.Contains(v, "@") {
			return v
		}
	}
	return ""
}

// roleOf learns the user's role (group) from the operator's sources, if any.
func (g *Guard) roleOf(ctx context.Context, iw *interceptWriter, values []cookies.Pair, next Handler) string {
	for _, src := range g.cfg.RoleFrom {
		if v := strings.TrimSpace(g.attr(ctx, iw, values, src, next)); v != "" && len(v) <= 128 {
			return v
		}
	}
	return ""
}

// attr reads one value from a source: the sign-in request, the app's
// response, or the app's answer about the new session.
func (g *Guard) attr(ctx context.Context, iw *interceptWriter, values []cookies.Pair, src IdentitySource, next Handler) string {
	var v string
	switch src.Kind {
	case FromForm, FromJSON:
		if iw.signin != nil {
			v, _ = iw.signin.field(src.Kind, src.Name)
		}
	case FromQuery:
		v = iw.r.URL.Query().Get(src.Name)
	case FromBasic:
		v, _, _ = iw.r.BasicAuth()
	case FromHeader:
		v = iw.w.Header().Get(src.Name)
	case FromWhoami, FromPage:
		if a := g.ask(ctx, iw, values, src.Path, next); a.status == http.StatusOK {
			v = src.valueIn(a.body)
		}
	}
	return v
}

// answer is what the app said when asked about the new session.
type answer struct {
	status int
	body   []byte
	err    error
}

// userFrom reads the user from the app's answer: "" when it says nobody is
// signed in (401, 403, a redirect to its sign-in page, an empty or absent
// field, the nobody_if field, no match on the page), and known false when
// the answer says neither (an error, another status, a body that is not
// what the source expects).
func (s *IdentitySource) userFrom(a *answer) (user string, known bool) {
	switch {
	case a.err != nil:
		return "", false
	case a.status == http.StatusUnauthorized, a.status == http.StatusForbidden, a.status >= 300 && a.status < 400:
		return "", true
	case a.status != http.StatusOK:
		return "", false
	}
	if s.Kind == FromWhoami {
		if !json.Valid(a.body) {
			return "", false
		}
		if s.Nobody != "" {
			if v := jsonAt(a.body, s.Nobody); v != nil && string(v) != "null" && string(v) != "false" {
				return "", true
			}
		}
	}
	return strings.TrimSpace(s.valueIn(a.body)), true
}

// valueIn reads the source's value from a body the app answered with 200.
func (s *IdentitySource) valueIn(body []byte) string {
	switch s.Kind {
	case FromWhoami:
		v, _ := jsonScalar(jsonAt(body, s.Field))
		return v
	case FromPage:
		if m := s.re.FindSubmatch(body); m != nil {
			return html.UnescapeString(string(m[1]))
		}
	}
	return ""
}

// ask asks the app about the new session at path, through the same next
// handler (so the same upstream), with only the session's cookies. The
// answer is kept for the request: user, email and role cost one call.
func (g *Guard) ask(ctx context.Context, iw *interceptWriter, values []cookies.Pair, path string, next Handler) *answer {
	if a, ok := iw.answers[path]; ok {
		return a
	}
	if iw.answers == nil {
		iw.answers = map[string]*answer{}
	}
	a := g.askApp(ctx, iw, values, path, next)
	iw.answers[path] = a
	return a
}

func (g *Guard) askApp(ctx context.Context, iw *interceptWriter, values []cookies.Pair, path string, next Handler) *answer {
	// The app's new values replace what the browser sent under the same
	// name: an app that reads the first cookie would otherwise answer for
	// the previous user.
	var send []cookies.Pair
	for _, f := range iw.scan.Forwarded {
		replaced := false
		for _, v := range values {
			replaced = replaced || v.Name == f.Name
		}
		if !replaced {
			send = append(send, f)
		}
	}
	send = append(send, values...)
	if len(send) == 0 {
		// No app session at all: nobody is signed in, by definition.
		return &answer{status: http.StatusUnauthorized}
	}
	u, err := url.ParseRequestURI(path) // checked at provision
	if err != nil {
		return &answer{err: err}
	}
	sub := iw.r.Clone(ctx)
	sub.Method = http.MethodGet
	sub.URL = u
	sub.RequestURI = u.RequestURI()
	sub.Body, sub.ContentLength = http.NoBody, 0
	sub.Header = http.Header{"Accept": {"application/json, text/html;q=0.9"}, "User-Agent": {iw.r.UserAgent()}}
	var b strings.Builder
	for i, c := range send {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.Name + "=" + c.Value)
	}
	sub.Header.Set("Cookie", b.String())
	rec := &recorder{header: http.Header{}, limit: 256 << 10}
	if g.cfg.Subrequest != nil {
		// A request of its own to the server's routes: route groups
		// (handle blocks) and placeholders start afresh, as for a request
		// from the browser.
		sub = g.cfg.Subrequest(sub, rec)
	}
	err = next.ServeHTTP(rec, sub)
	if err == nil && rec.overflow {
		err = errAnswerTooLarge
	}
	if err != nil {
		g.log.Warn("the app's answer about a new session failed", zap.String("path", u.Path), zap.Int("status", rec.status), zap.Error(err))
		return &answer{err: err}
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &answer{status: rec.status, body: []byte(rec.body.String())}
}

var errAnswerTooLarge = errors.New("the app's answer is over 256 KiB")

// jsonAt is the value at a dotted path in a JSON document: object keys, and
// array indexes as numbers (data.users.0.name). nil if there is none.
func jsonAt(doc json.RawMessage, path string) json.RawMessage {
	for part := range strings.SplitSeq(path, ".") {
		t := bytes.TrimLeft(doc, " \t\r\n")
		if len(t) == 0 {
			return nil
		}
		switch t[0] {
		case '{':
			var m map[string]json.RawMessage
			if json.Unmarshal(doc, &m) != nil {
				return nil
			}
			doc = m[part]
		case '[':
			var a []json.RawMessage
			i, err := strconv.Atoi(part)
			if json.Unmarshal(doc, &a) != nil || err != nil || i < 0 || i >= len(a) {
				return nil
			}
			doc = a[i]
		default:
			return nil
		}
	}
	return doc
}

// recorder is a bounded in-memory response for the app's answer.
type recorder struct {
	header   http.Header
	status   int
	body     strings.Builder
	limit    int
	overflow bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > r.limit {
		r.overflow = true
		return 0, io.ErrShortWrite
	}
	return r.body.Write(b)
}
