package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// decide handles a captured response: a sign-in (matched, or any response
// setting the app's session cookie) either passes through, binds an
// anonymous app session, or has its cookies held for the second factor.
func (g *Gateway) decide(ctx context.Context, iw *interceptWriter, next Handler) error {
	h := iw.w.Header()
	set, values, deleted, lines := g.appSetCookies(h, iw.now)
	cur := iw.cur.sess
	active := cur != nil && cur.State == session.Active
	if iw.signin != nil && !g.signInSucceeded(iw.status, h, len(set) > 0, len(iw.scan.forwarded) > 0) {
		g.logDecision(iw.r, "sign-in not successful", zap.Int("status", iw.status))
		g.bindOrFollow(ctx, iw, set, deleted)
		return iw.release()
	}
	if len(set) == 0 && iw.signin == nil {
		return iw.release() // only deletions: nothing to own
	}
	user, src := g.identify(ctx, iw, values, next)
	switch {
	case user == "" && iw.signin != nil:
		return g.refuseSignIn(ctx, iw, lines, "sign-in succeeded but no user source named the user")
	case user == "" && g.carriesCredentials(iw.r):
		return g.refuseSignIn(ctx, iw, lines, "credentials outside the sign-in and no user source named the user")
	case user == "", active && user == cur.User && iw.signin == nil:
		// An anonymous app session (a login form's), or the signed-in
		// user's session refreshed by the app.
		g.bindOrFollow(ctx, iw, set, deleted)
		return iw.release()
	}
	rec, err := g.loadUser(ctx, user)
	if err != nil {
		g.log.Error("load user at sign-in", zap.String("user", user), zap.Error(err))
		removeSetCookies(h, lines)
		return g.writeError(iw.w, iw.r, errInternal)
	}
	// Carried cookies: app cookies the browser sent with the sign-in, which an
	// app that does not rotate its session has just authenticated in place.
	carried := carriedBindings(iw.scan.forwarded, set, deleted)
	next0 := g.nextAfterSignIn(iw)
	role := g.roleOf(ctx, iw, values, next)
	newSession := func(st session.State, expires time.Time) *session.Session {
		return &session.Session{
			User: user, Role: role, Scope: g.cfg.Scope, State: st, AAL: 1, CreatedAt: iw.now, AuthAt: iw.now, ExpiresAt: expires,
			RemoteAddr: clientIP(iw.r), UserAgent: truncate(iw.r.UserAgent(), 256), Next: next0,
		}
	}
	enrolled := hasFactor(rec)
	email := g.emailOf(ctx, iw, values, next)
	fields := []zap.Field{zap.String("user", user), zap.String("identity_source", src), zap.Bool("enrolled", enrolled), zap.Bool("matched_sign_in", iw.signin != nil)}
	if enrolled {
		if rec.CreatedAt.IsZero() || (email != "" && email != rec.Email) {
			g.touchSignIn(ctx, user, email, iw.now, false)
		}
		ps := newSession(session.Pending, iw.now.Add(g.cfg.PendingTTL))
		ps.Held = lines
		ps.SetBindings(carried)
		if err := g.startSession(ctx, iw, ps); err != nil {
			return err
		}
		removeSetCookies(h, lines)
		g.logDecision(iw.r, "second factor required", fields...)
		g.audit(iw.r, audit.TypeSignIn, user, user, map[string]string{"second_factor": "required"})
		if iw.signin != nil && wantsJSON(iw.r) {
			// An XHR sign-in gets the app's answer without its cookies; the
			// next page load lands on the challenge.
			h.Set("X-Mfa-Location", g.cfg.Prefix+"challenge?next="+urlQuery(next0))
			return iw.release()
		}
		return g.replaceResponse(iw, g.cfg.Prefix+"challenge?next="+urlQuery(next0), errMFARequired, nil)
	}
	as := newSession(session.Active, iw.now.Add(g.cfg.MaxLifetime))
	as.MustEnrol = g.require2FA()
	as.SetBindings(append(carried, set...))
	if err := g.startSession(ctx, iw, as); err != nil {
		return err
	}
	g.touchSignIn(ctx, user, email, iw.now, true)
	if as.MustEnrol {
		g.logDecision(iw.r, "enrolment required", fields...)
		g.audit(iw.r, audit.TypeSignIn, user, user, map[string]string{"second_factor": "enrolment required"})
		if !(iw.signin != nil && wantsJSON(iw.r)) {
			// The app's cookies are bound already (the gateway blocks the app
			// until setup is done), so they go to the browser now.
			return g.replaceResponse(iw, g.cfg.Prefix+"security?setup=1", errEnrolmentRequired, lines)
		}
	} else {
		g.logDecision(iw.r, "signed in without second factor", fields...)
		g.audit(iw.r, audit.TypeSignIn, user, user, map[string]string{"second_factor": "none"})
	}
	return iw.release()
}

// bindOrFollow binds app cookies that carry no sign-in: to the active
// session (the app refreshed its cookie) or to an anonymous one.
func (g *Gateway) bindOrFollow(ctx context.Context, iw *interceptWriter, set []session.Binding, deleted []string) {
	if s := iw.cur.sess; s != nil && s.State == session.Active {
		if s.UpdateBindings(set, deleted) {
			if err := g.rt.saveSession(ctx, s, nil); err != nil {
				g.log.Error("save session bindings", zap.Error(err))
			}
		}
		return
	}
	g.bindAnonymous(ctx, iw, set)
}

// refuseSignIn fails closed on a sign-in the gateway cannot attribute: the
// app's new cookies are dropped, and cookies it may have authenticated in
// place are unbound, so nothing of that session reaches the app again.
func (g *Gateway) refuseSignIn(ctx context.Context, iw *interceptWriter, lines []string, why string) error {
	g.audit(iw.r, audit.TypeSignInRefused, "", "", map[string]string{"reason": why, "path": truncate(iw.r.URL.Path, 128)})
	g.log.Warn("sign-in refused", zap.String("reason", why), zap.String("path", iw.r.URL.Path),
		zap.String("remote_ip", clientIP(iw.r)), zap.Int("app_status", iw.status))
	if s := iw.cur.sess; s != nil && len(iw.scan.forwarded) > 0 {
		var names []string
		for _, c := range iw.scan.forwarded {
			names = append(names, c.name)
		}
		if s.UpdateBindings(nil, names) && s.State != session.Anonymous {
			if err := g.rt.saveSession(ctx, s, nil); err != nil {
				g.log.Error("save session bindings", zap.Error(err))
			}
		}
	}
	h := iw.w.Header()
	for k := range h {
		delete(h, k)
	}
	return g.writeError(iw.w, iw.r, errSignInUnverified)
}

// carriesCredentials: the request brings a password or token of its own
// (apps that sign a user in from any URL). Such a request setting the app's
// session cookie is a sign-in, whatever its path.
func (g *Gateway) carriesCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	if r.URL.RawQuery == "" {
		return false
	}
	for k := range r.URL.Query() {
		lk := strings.ToLower(k)
		for _, w := range []string{"pass", "pwd", "secret", "token", "auth"} {
			if strings.Contains(lk, w) {
				return true
			}
		}
		for _, p := range g.cfg.StripParams {
			if strings.EqualFold(p, k) {
				return true
			}
		}
	}
	return false
}

// signInSucceeded applies the operator's success criterion.
func (g *Gateway) signInSucceeded(status int, h http.Header, setsCookie, carriedCookie bool) bool {
	redirect := status >= 300 && status < 400 && h.Get("Location") != ""
	switch g.cfg.Success.Kind {
	case SuccessCookie:
		return setsCookie
	case SuccessRedirect:
		return redirect
	case SuccessStatus:
		for _, s := range g.cfg.Success.Statuses {
			if s == status {
				return true
			}
		}
		return false
	}
	return (setsCookie && status < 400) || (redirect && carriedCookie)
}

// startSession stamps a new gateway session for the browser, replacing the
// one it came with (the id is rotated at every change of privilege).
func (g *Gateway) startSession(ctx context.Context, iw *interceptWriter, s *session.Session) error {
	id, err := g.newSessionID()
	if err != nil {
		return g.writeError(iw.w, iw.r, errInternal)
	}
	s.Key = id.Key()
	s.SetLastSeen(iw.now)
	if err := g.rt.saveSession(ctx, s, iw.cur.sess); err != nil {
		g.log.Error("save session", zap.Error(err))
		return g.writeError(iw.w, iw.r, errInternal)
	}
	g.rt.Sessions.Replace(iw.cur.sess, s)
	g.setGatewayCookie(iw.w.Header(), iw.r, id, s, iw.now)
	return nil
}

// bindAnonymous binds app cookies set before anyone signed in (a login
// form's session) to an anonymous gateway session, so that exactly this
// browser may send them back.
func (g *Gateway) bindAnonymous(ctx context.Context, iw *interceptWriter, set []session.Binding) {
	if len(set) == 0 {
		return
	}
	if s := iw.cur.sess; s != nil && s.State == session.Anonymous {
		s.UpdateBindings(set, nil)
		return
	}
	a := &session.Session{State: session.Anonymous, Scope: g.cfg.Scope, CreatedAt: iw.now, RemoteAddr: clientIP(iw.r)}
	a.SetBindings(set)
	if err := g.startSession(ctx, iw, a); err != nil {
		g.log.Error("start anonymous session", zap.Error(err))
	}
}

// replaceResponse discards the app's captured response and sends the
// browser elsewhere, keeping only the gateway's own cookie.
func (g *Gateway) replaceResponse(iw *interceptWriter, loc string, e *apiError, appLines []string) error {
	h := iw.w.Header()
	keep := h["Set-Cookie"]
	for k := range h {
		delete(h, k)
	}
	own := appLines
	gw := g.gatewayCookieName(iw.r) + "="
	for _, line := range keep {
		if strings.HasPrefix(line, gw) {
			own = append(own, line)
		}
	}
	if len(own) > 0 {
		h["Set-Cookie"] = own
	}
	if wantsJSON(iw.r) {
		h.Set("X-Mfa-Location", loc)
		return g.writeJSONError(iw.w, e)
	}
	h.Set("Cache-Control", "no-store")
	http.Redirect(iw.w, iw.r, loc, http.StatusSeeOther)
	return nil
}

// nextAfterSignIn is where the user goes once the factor is passed: the app's
// own redirect if it sent one, else the page that was asked for.
func (g *Gateway) nextAfterSignIn(iw *interceptWriter) string {
	if loc := iw.w.Header().Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			if u.Host == "" || strings.EqualFold(u.Host, iw.r.Host) {
				return safeNext(u.RequestURI())
			}
		}
	}
	if iw.r.Method == http.MethodGet && iw.signin == nil {
		if g.carriesCredentials(iw.r) {
			return safeNext(iw.r.URL.EscapedPath()) // never echo credentials into a URL
		}
		return safeNext(iw.r.URL.RequestURI())
	}
	return "/"
}

func carriedBindings(forwarded []appCookie, set []session.Binding, deleted []string) []session.Binding {
	var out []session.Binding
	for _, c := range forwarded {
		replaced := false
		for _, s := range set {
			replaced = replaced || s.Name == c.name
		}
		for _, d := range deleted {
			replaced = replaced || d == c.name
		}
		if !replaced {
			out = append(out, session.Binding{Name: c.name, Hash: session.HashValue(c.value)})
		}
	}
	return out
}

// identify learns who signed in from the operator's sources, in order.
func (g *Gateway) identify(ctx context.Context, iw *interceptWriter, values []appCookie, next Handler) (string, string) {
	for _, src := range g.cfg.Identity {
		if v := strings.TrimSpace(g.attr(ctx, iw, values, src, next)); v != "" && len(v) <= 256 {
			return v, src.Kind
		}
	}
	return "", ""
}

// emailOf learns the user's email address from the operator's sources, if any.
func (g *Gateway) emailOf(ctx context.Context, iw *interceptWriter, values []appCookie, next Handler) string {
	for _, src := range g.cfg.EmailFrom {
		if v := strings.TrimSpace(g.attr(ctx, iw, values, src, next)); v != "" && len(v) <= 254 && strings.Contains(v, "@") {
			return v
		}
	}
	return ""
}

// roleOf learns the user's role (group) from the operator's sources, if any.
func (g *Gateway) roleOf(ctx context.Context, iw *interceptWriter, values []appCookie, next Handler) string {
	for _, src := range g.cfg.RoleFrom {
		if v := strings.TrimSpace(g.attr(ctx, iw, values, src, next)); v != "" && len(v) <= 128 {
			return v
		}
	}
	return ""
}

// attr reads one value from a source: the sign-in request, the app's
// response, or the app's whoami answer for the new session.
func (g *Gateway) attr(ctx context.Context, iw *interceptWriter, values []appCookie, src IdentitySource, next Handler) string {
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
	case FromWhoami:
		v, _ = jsonScalar(g.whoami(ctx, iw, values, src.Path, next)[src.Field])
	}
	return v
}

// whoami asks the app who the new session belongs to, through the same next
// handler (so the same upstream), with only the session's cookies. The
// answer is kept for the request, so user and email cost one call.
func (g *Gateway) whoami(ctx context.Context, iw *interceptWriter, values []appCookie, path string, next Handler) map[string]json.RawMessage {
	if doc, ok := iw.whoami[path]; ok {
		return doc
	}
	if iw.whoami == nil {
		iw.whoami = map[string]map[string]json.RawMessage{}
	}
	doc := g.askWhoami(ctx, iw, values, path, next)
	iw.whoami[path] = doc
	return doc
}

func (g *Gateway) askWhoami(ctx context.Context, iw *interceptWriter, values []appCookie, path string, next Handler) map[string]json.RawMessage {
	// The app's new values replace what the browser sent under the same
	// name: an app that reads the first cookie would otherwise answer for
	// the previous user.
	var cookies []appCookie
	for _, f := range iw.scan.forwarded {
		replaced := false
		for _, v := range values {
			replaced = replaced || v.name == f.name
		}
		if !replaced {
			cookies = append(cookies, f)
		}
	}
	cookies = append(cookies, values...)
	if len(cookies) == 0 {
		return nil
	}
	sub := iw.r.Clone(ctx)
	sub.Method = http.MethodGet
	sub.URL = &url.URL{Path: path}
	sub.RequestURI = path
	sub.Body, sub.ContentLength = http.NoBody, 0
	sub.Header = http.Header{"Accept": {"application/json"}, "User-Agent": {iw.r.UserAgent()}}
	var b strings.Builder
	for i, c := range cookies {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.name + "=" + c.value)
	}
	sub.Header.Set("Cookie", b.String())
	rec := &recorder{header: http.Header{}, limit: 64 << 10}
	if err := next.ServeHTTP(rec, sub); err != nil || rec.status != http.StatusOK {
		return nil
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal([]byte(rec.body.String()), &doc) != nil {
		return nil
	}
	return doc
}

// recorder is a bounded in-memory response for the whoami call.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
	limit  int
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
		return 0, io.ErrShortWrite
	}
	return r.body.Write(b)
}

func (g *Gateway) loadUser(ctx context.Context, id string) (storage.User, error) {
	var u storage.User
	err := g.rt.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		u, err = tx.User(id)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{ID: id}, nil
	}
	return u, err
}

// touchSignIn records the user as seen by the gateway, so admins see them
// in the member list: with their email address when a source gave one, and
// the sign-in time when the sign-in is complete.
func (g *Gateway) touchSignIn(ctx context.Context, id, email string, now time.Time, complete bool) {
	err := g.rt.Store.Batch(ctx, func(tx storage.Tx) error {
		u, err := tx.User(id)
		if errors.Is(err, storage.ErrNotFound) {
			u = storage.User{ID: id, CreatedAt: now}
		} else if err != nil {
			return err
		}
		if complete {
			u.LastSignInAt = now
		}
		if email != "" {
			u.Email = email
		}
		return tx.PutUser(u)
	})
	if err != nil {
		g.log.Error("record sign-in", zap.String("user", id), zap.Error(err))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// endSession revokes s now (memory) and deletes it from the store.
func (g *Gateway) endSession(ctx context.Context, s *session.Session, why string) {
	if s == nil {
		return
	}
	g.rt.Sessions.Remove(s.Key)
	g.rt.deleteSessions([]*session.Session{s})
	g.log.Info("session ended", zap.String("user", s.User), zap.String("why", why))
}
