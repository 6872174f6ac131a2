package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Gateway serves one configuration. Many may share a Runtime.
type Gateway struct {
	cfg            Config
	rt             *Runtime
	policy         *policyCache
	ui             *challengeui.Renderer
	log            *zap.Logger
	hostCookieName string
	trusted        []string // lower-case, '-' spelled names of headers only the gateway sets
}

// New checks cfg and returns a gateway on rt.
func New(cfg Config, rt *Runtime, logger *zap.Logger) (*Gateway, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	ui, err := challengeui.New(challengeui.Options{Prefix: cfg.Prefix, Issuer: cfg.Issuer, TemplateDir: cfg.TemplateDir})
	if err != nil {
		return nil, fmt.Errorf("gateway: pages: %w", err)
	}
	rt.useIdle(cfg.IdleTimeout)
	pc, err := rt.policyFor(cfg.Scope, Policy{Require2FA: cfg.Require2FA}, cfg.PolicyMaxAge, cfg.GracePeriod)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg: cfg, rt: rt, ui: ui, log: logger, policy: pc,
		hostCookieName: "__Host-" + cfg.CookieName,
		trusted:        trustedHeaders(cfg),
	}
	if cfg.Mailer != nil {
		notify := func(u storage.User) { g.notify(u, mail.ForcedLogoutNotice(g.cfg.Issuer, u.ID)) }
		rt.onForcedLogout.Store(&notify)
	}
	return g, nil
}

// current is the gateway session a request came with.
type current struct {
	sess   *session.Session // valid session, nil if none
	id     session.ID       // its raw id (from the cookie), to re-stamp the cookie
	reason session.Reason   // why a cookie's session no longer counts (Valid if there was none)
	stale  bool             // the cookie's idle deadline should be re-stamped
}

// lookup finds the request's session. Any cookie that cannot be read, names
// an unknown session or one past its deadlines means "no session": fail closed.
func (g *Gateway) lookup(r *http.Request, now time.Time) current {
	var cur current
	v := g.readGatewayCookie(r)
	if v == "" {
		return cur
	}
	cl, err := g.rt.codec.Decode(v, false)
	if err != nil {
		cur.reason = session.Revoked
		return cur
	}
	s := g.rt.Sessions.Get(cl.ID.Key())
	if s == nil {
		cur.reason = session.Revoked
		return cur
	}
	idle := g.policy.getAt(g.rt, now).idle(g.cfg.IdleTimeout)
	if s.State == session.Anonymous {
		idle = anonymousIdle
	}
	if reason := s.Check(now, idle); reason != session.Valid {
		cur.reason = reason
		return cur
	}
	if s.AAL != cl.AAL || (s.Scope != "" && s.Scope != g.cfg.Scope) {
		// Another scope's session (agents vs end users) is no session here.
		cur.reason = session.Revoked
		return cur
	}
	cur.sess, cur.id = s, cl.ID
	// Re-stamp the cookie's deadline about once a minute, not per request.
	cur.stale = s.State != session.Anonymous && cl.IdleDeadline < now.Add(idle-time.Minute).Unix()
	return cur
}

// ServeHTTP is the per-request entry point.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next Handler) error {
	g.stripTrusted(r.Header)
	clean := cleanPath(r.URL.Path)
	if strings.HasPrefix(clean+"/", g.cfg.Prefix) {
		rel := strings.TrimPrefix(strings.TrimPrefix(clean+"/", g.cfg.Prefix), "/")
		return g.serveOwn(w, r, strings.TrimSuffix(rel, "/"))
	}
	if wc := g.cfg.Widget; wc != nil {
		if ok, err := wc.Match.MatchWithError(r); err != nil {
			return g.writeError(w, r, errBadRequest.with("The request could not be matched."))
		} else if ok {
			if done, err := g.checkWidget(w, r); done {
				return err
			}
		}
	}
	now := g.rt.now()
	cur := g.lookup(r, now)
	signin, err := g.matchSignIn(r)
	if errors.Is(err, errBodyTooLarge) {
		return g.writeError(w, r, errTooLarge)
	}
	if err != nil {
		return g.writeError(w, r, errBadRequest.with("The sign-in request could not be read."))
	}
	if s := cur.sess; s != nil && signin == nil {
		switch {
		case s.State == session.Pending:
			return g.sendToChallenge(w, r, s)
		case s.MustEnrol:
			return g.sendToSetup(w, r)
		}
	}
	if signin == nil {
		if err := g.stripCredentials(r); err != nil {
			return g.writeError(w, r, errTooLarge)
		}
	}
	sc := g.rewriteCookies(r, cur.sess)
	active := cur.sess != nil && cur.sess.State == session.Active
	if active {
		cur.sess.Touch(now)
		v := []string{cur.sess.User, aalValue[cur.sess.AAL&3]} // one allocation for both
		r.Header[g.cfg.UserHeader] = v[0:1:1]
		r.Header[g.cfg.AALHeader] = v[1:2:2]
	}
	iw := &interceptWriter{g: g, w: w, r: r, cur: cur, scan: sc, signin: signin, now: now}
	if active && signin == nil && g.cfg.SignOut != nil {
		if iw.signout, err = g.cfg.SignOut.MatchWithError(r); err != nil {
			return g.writeError(w, r, errBadRequest.with(err.Error()))
		}
	}
	if cur.reason != session.Valid && cur.sess == nil {
		g.logDecision(r, "session ended", zap.Stringer("reason", cur.reason))
	}
	if err := next.ServeHTTP(iw, r); err != nil {
		return err
	}
	return iw.finish(r.Context(), next)
}

var aalValue = [...]string{"0", "1", "2", "3"}

// cleanPath is the path every check is made on: decoded by net/http, then
// cleaned, so "/x/../_mfa/", "//_mfa" and "/%2e%2e/" resolve before matching.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p)
}

// headerKey is a header name as an app might read it: case and '_' for '-'
// do not matter (CGI, PHP and many frameworks fold them together).
func headerKey(h string) string {
	return strings.ReplaceAll(strings.ToLower(h), "_", "-")
}

// trustedHeaders are the headers only the gateway sets for the upstream.
func trustedHeaders(cfg Config) []string {
	t := []string{headerKey(cfg.UserHeader), headerKey(cfg.AALHeader)}
	if cfg.Widget != nil {
		t = append(t, headerKey(cfg.Widget.VerdictHeader))
	}
	return t
}

// idleTimeout is the idle timeout in force: the team's setting, else the Caddyfile's.
func (g *Gateway) idleTimeout() time.Duration { return g.policy.get(g.rt).idle(g.cfg.IdleTimeout) }

// require2FA reports whether users without 2FA must enrol before the app.
func (g *Gateway) require2FA() bool { return g.policy.get(g.rt).Require2FA }

// headerKeyIs reports headerKey(k) == t without allocating: this runs for
// every header of every request. t is already in headerKey form.
func headerKeyIs(k, t string) bool {
	if len(k) != len(t) {
		for i := 0; i < len(k); i++ {
			if k[i] >= 0x80 {
				return headerKey(k) == t
			}
		}
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 0x80:
			return headerKey(k) == t // non-ASCII case folding can change lengths
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// stripTrusted removes client-sent copies of the headers the gateway sets, in
// every spelling.
func (g *Gateway) stripTrusted(h http.Header) {
	for k := range h {
		if len(k) < 2 {
			continue
		}
		for _, t := range g.trusted {
			if headerKeyIs(k, t) {
				delete(h, k)
				break
			}
		}
	}
}

// stripCredentials removes credential-bearing headers and query parameters
// the operator named, outside the sign-in, for apps that sign a user in from
// any URL.
func (g *Gateway) stripCredentials(r *http.Request) error {
	for _, h := range g.cfg.StripHeaders {
		r.Header.Del(h)
	}
	if len(g.cfg.StripParams) == 0 {
		return nil
	}
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if stripParams(q, g.cfg.StripParams) {
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBodyBytes+1))
	r.Body.Close()
	if err != nil || int64(len(body)) > g.cfg.MaxBodyBytes {
		return errBodyTooLarge
	}
	if form, err := url.ParseQuery(string(body)); err == nil && stripParams(form, g.cfg.StripParams) {
		body = []byte(form.Encode())
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// stripParams deletes the named parameters, reporting whether any was there.
func stripParams(v url.Values, names []string) bool {
	changed := false
	for _, p := range names {
		for k := range v {
			if strings.EqualFold(k, p) {
				delete(v, k)
				changed = true
			}
		}
	}
	return changed
}

// sendToChallenge answers an app request made while the second factor is
// outstanding: pages go to the challenge, scripts get a 401.
func (g *Gateway) sendToChallenge(w http.ResponseWriter, r *http.Request, s *session.Session) error {
	next := s.Next
	if r.Method == http.MethodGet && !wantsJSON(r) {
		next = safeNext(r.URL.RequestURI())
	}
	return g.redirectOrJSON(w, r, g.cfg.Prefix+"challenge?next="+urlQuery(next), errMFARequired)
}

// sendToSetup answers an app request from a user who must set up 2FA first.
func (g *Gateway) sendToSetup(w http.ResponseWriter, r *http.Request) error {
	return g.redirectOrJSON(w, r, g.cfg.Prefix+"security?setup=1", errEnrolmentRequired)
}

func (g *Gateway) redirectOrJSON(w http.ResponseWriter, r *http.Request, loc string, e *apiError) error {
	if wantsJSON(r) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		w.Header().Set("X-Mfa-Location", loc)
		return g.writeJSONError(w, e)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, loc, http.StatusSeeOther)
	return nil
}

// wantsJSON tells a script's request from a page load.
func wantsJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/json") {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "json") && !strings.Contains(accept, "text/html")
}

// audit records a security event with the request's address and agent.
// detail must never carry a secret, code or cookie.
func (g *Gateway) audit(r *http.Request, typ, actor, subject string, detail map[string]string) {
	g.rt.Audit.Record(audit.Event{Type: typ, Actor: actor, Subject: subject, Remote: clientIP(r), UserAgent: r.UserAgent(), Detail: detail})
}

func (g *Gateway) logDecision(r *http.Request, msg string, fields ...zap.Field) {
	if c := g.log.Check(zapcore.InfoLevel, msg); c != nil {
		c.Write(append(fields, zap.String("remote_ip", clientIP(r)), zap.String("path", r.URL.Path))...)
	}
}

// clientIP is the address wrong codes are counted against.
func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

func urlQuery(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// newSessionID makes a fresh id and its key.
func (g *Gateway) newSessionID() (session.ID, error) { return session.NewID(g.rt.rand) }

func itoa(n int) string { return strconv.Itoa(n) }
