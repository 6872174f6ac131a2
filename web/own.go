// Package web is the gateway's own surface under its prefix: the HTML
// pages (challenge, security, admin), the JSON API that mirrors them, and
// the operator API behind `caddy mfa`. It changes state only through the
// domain's operations (package mfa) and maps their errors to the public
// error codes in one table (errors.go).
package web

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
)

// Config is the surface's settings, defaults already applied.
type Config struct {
	Prefix      string      // where the surface lives, e.g. "/_mfa/"
	Issuer      string      // name on the pages
	TemplateDir string      // templates overriding the embedded pages
	Widget      *WidgetInfo // nil: no widget traffic configured
	// ClientIP is the client's address as the server determined it
	// (honouring its trusted proxies); nil or "": the connection's peer.
	ClientIP func(*http.Request) string
	// Doctor checks this configuration against the app, for the admin
	// page's "Check this configuration"; nil hides it.
	Doctor Doctor
}

// WidgetInfo is what the admin page tells developers about widget tokens.
type WidgetInfo struct {
	UserHeader  string // where the widget sends the claimed user id
	TokenHeader string // where it sends the token
}

// Site serves one site block's pages and API. Its routes are built once.
type Site struct {
	cfg   Config
	realm *mfa.Realm
	svc   *mfa.Service
	jar   *cookies.Jar
	ui    *challengeui.Renderer
	log   *zap.Logger
	pages map[string]pageRoute
	api   map[string]apiRoute
	// doctorGate bounds the configuration checks run from this site.
	doctorGate doctorGate
}

// New builds the surface for realm.
func New(cfg Config, realm *mfa.Realm, jar *cookies.Jar, logger *zap.Logger) (*Site, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	ui, err := challengeui.New(challengeui.Options{Prefix: cfg.Prefix, Issuer: cfg.Issuer, TemplateDir: cfg.TemplateDir})
	if err != nil {
		return nil, err
	}
	site := &Site{cfg: cfg, realm: realm, svc: realm.Service(), jar: jar, ui: ui, log: logger}
	site.pages = site.pageRoutes()
	site.api = site.apiRoutes()
	return site, nil
}

// call is one request to the gateway's own pages or API.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	cur   mfa.Current
	now   time.Time
	actor mfa.Actor
}

func (c *call) ctx() context.Context { return c.r.Context() }

// sess is the request's session; pending sessions have a user too.
func (c *call) sess() *session.Session { return c.cur.Session }

// Serve answers a path under the prefix: rel is the cleaned path below it
// ("challenge", "api/v1/status", "assets/mfa.css").
func (site *Site) Serve(w http.ResponseWriter, r *http.Request, rel string, now time.Time) error {
	if strings.HasPrefix(rel, "assets/") {
		sub := r.Clone(r.Context())
		sub.URL.Path = rel
		site.ui.Assets().ServeHTTP(w, sub)
		return nil
	}
	c := &call{w: w, r: r, cur: site.realm.Lookup(site.jar.Value(r), now), now: now, actor: site.ActorOf(r)}
	if s := c.sess(); s != nil && s.State == session.Active {
		s.Touch(now)
	}
	if api, ok := strings.CutPrefix(rel, "api/v1/"); ok {
		return site.serveAPI(c, api)
	}
	return site.servePage(c, rel)
}

// ActorOf is the actor behind a request: its client address and its user
// agent. The user is filled in once a session names one.
func (site *Site) ActorOf(r *http.Request) mfa.Actor {
	return mfa.Actor{Address: site.ClientIP(r), Agent: r.UserAgent()}
}

// ClientIP is the client's address: the one the server determined
// (Config.ClientIP: behind trusted proxies, from their headers), else the
// connection's peer. Rate limits, lock-outs, sessions, the audit log and
// the new-address checks all use it.
func (site *Site) ClientIP(r *http.Request) string {
	if site.cfg.ClientIP != nil {
		if ip := site.cfg.ClientIP(r); ip != "" {
			return ip
		}
	}
	return peerIP(r)
}

// peerIP is the address of the connection's peer.
func peerIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// changed stamps the cookie of a session an operation replaced, releases
// the app's held cookies with it, and makes it the call's session.
func (site *Site) changed(c *call, ch mfa.Changed) {
	h := c.w.Header()
	for _, line := range ch.Held {
		h.Add("Set-Cookie", line)
	}
	site.jar.Set(h, c.r, site.realm.CookieValue(ch.ID, ch.Session, c.now))
	c.cur.Session, c.cur.ID = ch.Session, ch.ID
}

// abandon ends the call's held sign-in and tells the browser to forget the
// gateway cookie and the app cookies bound to it (an app that signed its
// existing session in place would otherwise keep that cookie signed in).
func (site *Site) abandon(c *call) error {
	s := c.sess()
	err := site.realm.Abandon(c.ctx(), site.actor(c), s)
	if errors.Is(err, mfa.ErrNotHeld) {
		return err
	}
	ClearSession(site.jar, c.w.Header(), c.r, s)
	return err
}

// SignedInFrom records the browser of a completed sign-in of user (seen is
// its recognition cookie, "" for none), raising a new-login alert where it
// is new, and gives a browser without one its cookie.
func (site *Site) SignedInFrom(h http.Header, r *http.Request, user, seen string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	sessions := scheme + "://" + r.Host + site.cfg.Prefix + "security#sessions"
	if token := site.realm.SignedInFrom(r.Context(), site.ActorOf(r), user, seen, sessions); token != "" {
		site.jar.SetSeen(h, r, token)
	}
}

// signedIn is SignedInFrom for a challenge passed on the gateway's pages.
func (site *Site) signedIn(c *call) {
	site.SignedInFrom(c.w.Header(), c.r, c.sess().User, site.jar.SeenValue(c.r))
}

// remember remembers the call's browser after a passed challenge, when this
// block offers it; a failure only costs the user a challenge next time.
func (site *Site) remember(c *call) {
	if !site.realm.RememberAllowed() {
		return
	}
	token, err := site.realm.Remember(c.ctx(), site.actor(c), c.sess())
	if err != nil {
		site.log.Error("remember browser", zap.Error(err))
		return
	}
	site.jar.SetDevice(c.w.Header(), c.r, token, site.realm.RememberFor())
}

// rememberDays is what the challenge's checkbox offers, 0 for none.
func (site *Site) rememberDays() int {
	if !site.realm.RememberAllowed() {
		return 0
	}
	return int(site.realm.RememberFor().Hours() / 24)
}

// ClearSession deletes, in the browser, the gateway cookie and the app
// cookies bound to s.
func ClearSession(jar *cookies.Jar, h http.Header, r *http.Request, s *session.Session) {
	var names []string
	for _, b := range s.Bindings() {
		names = append(names, b.Name)
	}
	jar.Clear(h, r, names)
}

func (site *Site) checkCSRF(c *call, token string) bool {
	want := site.svc.CSRFToken(c.sess())
	return want != "" && hmac.Equal([]byte(want), []byte(token))
}

// sameOrigin refuses state changes that a browser marks as cross-site.
// JSON calls must also carry Content-Type: application/json, which a
// cross-site form cannot send without a CORS preflight.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

// requirement is what a gateway endpoint needs of the session.
type requirement uint8

const (
	needPending requirement = iota // a sign-in waiting for its second factor
	needActive                     // signed in (AAL1 or AAL2)
	needAny                        // pending or active
	needAdmin                      // an admin at AAL2
	needHeld                       // a sign-in the gateway holds back: pending, or blocked until setup
)

// require checks the session for an endpoint.
func (site *Site) require(c *call, need requirement) *Error {
	s := c.sess()
	switch {
	case (s == nil || s.State == session.Anonymous) && need == needPending && c.cur.Reason != session.Valid:
		// A gateway cookie came, but its sign-in is over: most often a
		// challenge left open past its time.
		return errSignInExpired
	case s == nil || s.State == session.Anonymous:
		return errNoSession
	case need == needHeld && s.State != session.Pending && !s.MustEnrol:
		return errNotHeld
	case need == needPending && s.State != session.Pending:
		return errNotPending
	case (need == needActive || need == needAdmin) && s.State != session.Active:
		return ErrMFARequired
	case need == needAdmin && !site.realm.IsAdmin(s):
		site.logDecision(c.r, "admin refused", zap.String("user", s.User))
		return errNotAdmin
	case need == needAdmin && s.AAL < 2:
		return errAAL2Required.with("Team security needs two-factor authentication in this sign-in: set up an authenticator on your security page, or sign in again with your authenticator app.")
	}
	return nil
}

// WriteError answers with JSON for scripts and a page for people, an
// internal failure (5xx) too, whose cause is already logged.
func (site *Site) WriteError(w http.ResponseWriter, r *http.Request, e *Error) error {
	if WantsJSON(r) {
		return WriteJSONError(w, e)
	}
	setRetryAfter(w, e)
	p := challengeui.ErrorPage{Status: e.Status, Message: e.Message}
	switch e.Code {
	case errNoSession.Code:
		p.Href, p.LinkText = "/", "Go to sign-in"
	case errSignInExpired.Code:
		p.Href, p.LinkText = "/", "Sign in again"
	case errAAL2Required.Code: // e.g. an admin without 2FA at the admin page: the way on is the security page
		p.Href, p.LinkText = site.cfg.Prefix+"security", "Set up two-factor authentication"
	}
	if err := site.ui.Render(w, e.Status, p); err != nil {
		site.log.Error("render error page", zap.Error(err))
	}
	return nil
}

// WantsJSON tells a script's request from a page load.
func WantsJSON(r *http.Request) bool {
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

func (site *Site) logDecision(r *http.Request, msg string, fields ...zap.Field) {
	if c := site.log.Check(zapcore.InfoLevel, msg); c != nil {
		c.Write(append(fields, zap.String("remote_ip", site.ClientIP(r)), zap.String("path", r.URL.Path))...)
	}
}

// URLQuery escapes s for a query value, spaces as %20.
func URLQuery(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// actor is the call's actor, with the user of its session (pending too).
func (site *Site) actor(c *call) mfa.Actor {
	a := c.actor
	if s := c.sess(); s != nil {
		a.User = s.User
	}
	return a
}
