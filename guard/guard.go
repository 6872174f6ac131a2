package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/username"
	"github.com/mfagate/mfagate/web"
)

// Guard serves one site block. Many may share an mfa.Service.
type Guard struct {
	cfg     Config
	svc     *mfa.Service
	realm   *mfa.Realm
	site    *web.Site
	jar     *cookies.Jar
	log     *zap.Logger
	trusted []string            // lower-case, '-' spelled names of headers only the gateway sets
	fold    func(string) string // user names folded (normalize_users fold), or nil
	sampled *zap.Logger         // log for lines any client can cause at any rate: at most 10 a second of each
}

// New checks cfg and returns a guard on svc. Release undoes what New
// registered on svc.
func New(cfg Config, svc *mfa.Service, logger *zap.Logger) (*Guard, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	jar, err := cookies.NewJar(cfg.CookieName, cfg.AppCookies)
	if err != nil {
		return nil, err
	}
	var fold func(string) string
	if cfg.NormalizeUsers == NormalizeFold {
		fold = username.Fold
		admins := make([]string, len(cfg.Admins))
		for i, a := range cfg.Admins {
			admins[i] = fold(a)
		}
		cfg.Admins = admins
	}
	realm, err := svc.Realm(mfa.Config{
		Scope: cfg.Scope, Issuer: cfg.Issuer, Require2FA: cfg.Require2FA,
		IdleTimeout: cfg.IdleTimeout, MaxLifetime: cfg.MaxLifetime, PendingTTL: cfg.PendingTTL,
		MaxAttempts: cfg.MaxAttempts, AttemptWindow: cfg.AttemptWindow, MaxFailedCodes: cfg.MaxFailedCodes,
		RememberFor: cfg.RememberFor, TrustedNetworks: cfg.TrustedNetworks, EnrolEmailProof: cfg.EnrolEmailProof,
		PolicyMaxAge: cfg.PolicyMaxAge, GracePeriod: cfg.GracePeriod,
		Admins: cfg.Admins, AdminRoles: cfg.AdminRoles, Mailer: cfg.Mailer, Texter: cfg.Texter, Methods: cfg.Methods, EmailTemplate: cfg.EmailTemplate,
		Classify: jar.Classify, Fold: fold,
	}, logger)
	if err != nil {
		return nil, err
	}
	wc := web.Config{Prefix: cfg.Prefix, Issuer: cfg.Issuer, TemplateDir: cfg.TemplateDir, ClientIP: cfg.ClientIP, Doctor: cfg.Doctor}
	if cfg.Widget != nil {
		wc.Widget = &web.WidgetInfo{UserHeader: cfg.Widget.UserHeader, TokenHeader: cfg.Widget.TokenHeader}
	}
	site, err := web.New(wc, realm, jar, logger)
	if err != nil {
		realm.Release()
		return nil, fmt.Errorf("guard: pages: %w", err)
	}
	sampled := logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, logPerSecond, 0)
	}))
	return &Guard{cfg: cfg, svc: svc, realm: realm, site: site, jar: jar, log: logger, trusted: trustedHeaders(cfg), fold: fold, sampled: sampled}, nil
}

var _ decider = (*Guard)(nil)

// Release removes the guard's realm from the service (on config unload).
func (g *Guard) Release() { g.realm.Release() }

// ServeHTTP is the per-request entry point.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next Handler) error {
	g.stripTrusted(r.Header)
	clean := cleanPath(r.URL.Path)
	now := g.svc.Now()
	// clean+"/" has the prefix: tested without building the string.
	if p := g.cfg.Prefix; strings.HasPrefix(clean, p) || clean == p[:len(p)-1] {
		rel := strings.TrimPrefix(strings.TrimPrefix(clean+"/", p), "/")
		return g.site.Serve(w, r, strings.TrimSuffix(rel, "/"), now)
	}
	if wc := g.cfg.Widget; wc != nil {
		if ok, err := wc.Match.MatchWithError(r); err != nil {
			return g.site.WriteError(w, r, web.ErrBadRequest.With("The request could not be matched."))
		} else if ok {
			if done, err := g.checkWidget(w, r); done {
				return err
			}
		}
	}
	cur := g.realm.Lookup(g.jar.Value(r), now)
	var epoch uint32 // noted before anything that may wait on the body
	if cur.Session != nil {
		epoch = cur.Session.Epoch()
	}
	signin, err := g.matchSignIn(r)
	if errors.Is(err, errBodyTooLarge) {
		return g.site.WriteError(w, r, web.ErrTooLarge)
	}
	if err != nil {
		g.logDecision(r, "sign-in refused: unreadable or ambiguous", zap.Error(err))
		msg := "The sign-in request could not be read."
		if errors.Is(err, errAmbiguousField) {
			msg = "The sign-in request gives the same field twice with different values."
		}
		return g.site.WriteError(w, r, web.ErrBadRequest.With(msg))
	}
	if s := cur.Session; s != nil && signin == nil && (s.State == session.Pending || s.MustEnrol) {
		out := false
		if g.cfg.SignOut != nil {
			if out, err = g.cfg.SignOut.MatchWithError(r); err != nil {
				return g.site.WriteError(w, r, web.ErrBadRequest.With(err.Error()))
			}
		}
		switch {
		case !out && s.State == session.Pending:
			return g.sendToChallenge(w, r, s)
		case !out:
			return g.sendToSetup(w, r)
		}
		// The app's sign-out ends a sign-in held back here, and goes to the
		// app as nobody's: none of the held session's cookies go with it.
		if err := g.realm.Abandon(r.Context(), g.actor(r, s.User), s); err != nil {
			g.log.Error("held sign-in ended at sign-out, but not in the store", zap.String("user", s.User), zap.Error(err))
		}
		web.ClearSession(g.jar, w.Header(), r, s)
		cur = mfa.Current{Reason: session.Revoked}
	}
	if signin == nil {
		if err := g.stripCredentials(r); errors.Is(err, errBodyTooLarge) {
			return g.site.WriteError(w, r, web.ErrTooLarge)
		} else if err != nil {
			g.logDecision(r, "request refused: credentials could not be stripped", zap.Error(err))
			return g.site.WriteError(w, r, web.ErrBadRequest.With("The request could not be read."))
		}
	}
	fwd := cur.Session
	if signin != nil && fwd != nil && (fwd.State == session.Pending || fwd.MustEnrol) {
		// A sign-in from a session the gates hold back reaches the app
		// without that session's cookies: whatever the app makes of the
		// request, it answers for nobody, so no request shape opens a gate.
		fwd = nil
	}
	// A request that may sign the app's session in without a new cookie (an
	// app that authenticates its pre-sign-in session in place, or switches
	// the signed-in user on credentials) is held and confirmed with the app.
	var body bodyVerdict
	if signin == nil && fwd != nil && fwd.State == session.Active && !plainRead(r) {
		names, sure, err := g.bodyFields(r)
		if err != nil {
			g.logDecision(r, "request refused: its body could not be read", zap.Error(err))
			return g.site.WriteError(w, r, web.ErrBadRequest.With("The request could not be read."))
		}
		body = judgeBody(names, sure)
	}
	confirm := signin == nil && g.maySignInPlace(r, fwd, body)
	var shared *session.Session // the pre-sign-in session whose cookies this request forwards
	if fwd != nil && fwd.State == session.Anonymous && len(fwd.Bindings()) > 0 {
		// One decision at a time per browser, and none of its cookies on
		// other requests while it is made.
		if signin != nil || confirm {
			ctx, cancel := context.WithTimeout(r.Context(), decisionWait)
			err := fwd.BeginDecision(ctx)
			cancel()
			if err != nil {
				g.logDecision(r, "sign-in refused: another is being decided for this browser", zap.Error(err))
				return g.site.WriteError(w, r, web.ErrSignInInProgress)
			}
			defer fwd.EndDecision()
		} else if fwd.Share() {
			defer fwd.Unshare()
			if fwd.MovedSince(epoch) {
				// A sign-in went to the app while this request was read:
				// the cookies may name someone now.
				fwd = nil
			} else {
				shared = fwd
			}
		} else {
			fwd = nil // a decision holds its cookies
		}
	}
	if fwd != nil && fwd.State == session.Active && g.svc.StoreDown(now) {
		// Past the outage limit a revocation made elsewhere could not be
		// learned: signed-in traffic fails closed too.
		return g.site.WriteError(w, r, errStoreDown)
	}
	iw := &interceptWriter{d: g, limit: g.cfg.MaxBodyBytes, w: w, r: r, cur: cur, signin: signin, now: now, shared: shared, epoch: epoch, bodyPassword: body.password}
	if shared != nil && r.Body != nil && r.Body != http.NoBody {
		r.Body = &sharedBody{ReadCloser: r.Body, s: shared, epoch: epoch}
	}
	iw.scan.Forwarded = iw.forwarded[:0]
	g.jar.RewriteInto(&iw.scan, r, fwd)
	sc := &iw.scan
	iw.confirm = confirm && len(sc.Forwarded) > 0
	active := fwd != nil && fwd.State == session.Active
	iw.forwardsActive = active
	if active {
		cur.Session.Touch(now)
		// The values live in iw: no allocation of their own.
		iw.identity = [2]string{cur.Session.User, aalValue[cur.Session.AAL&3]}
		r.Header[g.cfg.UserHeader] = iw.identity[0:1:1]
		r.Header[g.cfg.AALHeader] = iw.identity[1:2:2]
		if g.cfg.Identified != nil {
			g.cfg.Identified(r, cur.Session.User, cur.Session.AAL)
		}
	}
	if active && signin == nil && g.cfg.SignOut != nil {
		if iw.signout, err = g.cfg.SignOut.MatchWithError(r); err != nil {
			return g.site.WriteError(w, r, web.ErrBadRequest.With(err.Error()))
		}
	}
	if cur.Reason != session.Valid && cur.Session == nil {
		// Any client can send bad cookies at any rate: these lines are
		// sampled, so a flood cannot fill the disk with them.
		if c := g.sampled.Check(zapcore.InfoLevel, "session ended"); c != nil {
			c.Write(zap.Stringer("reason", cur.Reason), zap.String("remote_ip", g.site.ClientIP(r)), zap.String("path", r.URL.Path))
		}
	}
	if active && len(sc.Stripped) > 0 {
		g.realm.BindingMismatch(g.actor(r, cur.Session.User), cur.Session, sc.Stripped)
	}
	if err := next.ServeHTTP(iw, r); err != nil {
		return err
	}
	return iw.finish(r, next)
}

var aalValue = [...]string{"0", "1", "2", "3"}

var errStoreDown = web.ErrUnavailable.With("The gateway cannot reach its database, so it cannot vouch for your session. Try again in a moment.")

// logPerSecond is how many lines of one message the sampled log writes per
// second; the rest of that second's are dropped.
const logPerSecond = 10

// decisionWait bounds how long a sign-in waits for the browser's other
// requests still at the app before it goes on.
const decisionWait = 2 * time.Second

// maySignInPlace reports whether r, outside the sign-in, may make the app
// sign in the session whose cookies it forwards (fwd) without setting a new
// cookie: any request that is not a plain read from an anonymous session, and
// a request carrying a password from a signed-in one (an app may switch its
// user in place).
//
// For a signed-in session, body is what its body holds (see bodyFields): a
// credential, or a body that could not be read whole, is confirmed when the
// app can be asked.
func (g *Guard) maySignInPlace(r *http.Request, fwd *session.Session, body bodyVerdict) bool {
	switch {
	case fwd == nil:
		return false // no app cookie goes with it: a sign-in sets one, which is watched
	case fwd.State == session.Anonymous:
		return !plainRead(r) || passwordIn(r)
	case fwd.State == session.Active:
		if passwordIn(r) || body.password {
			return true
		}
		return (body.credential || !body.sure) && !plainRead(r) && g.cfg.block.appAnswer() != nil
	}
	return false
}

// plainRead reports whether r is a GET or HEAD without a body: the only
// requests whose credentials, if any, are in the URL or the headers, where
// passwordIn looks. Any method can carry a body, and apps read the bodies
// of GETs too (Go's ParseMultipartForm and many frameworks do).
func plainRead(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.ContentLength == 0 && len(r.TransferEncoding) == 0
}

// passwordIn reports whether r carries a password an app may sign in with:
// Basic-style Authorization, or a query parameter named like one. (Bearer
// tokens are an app's own sessions, not a sign-in.)
func passwordIn(r *http.Request) bool {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, _, _ := strings.Cut(a, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return true
		}
	}
	return queryHas(r.URL.RawQuery, CredentialName)
}

// queryHas reports whether a parameter name of the raw query satisfies
// match. It runs for signed-in requests, so it reads names in place instead
// of parsing the query, and splits on ';' as well as '&' (some apps do).
func queryHas(raw string, match func(string) bool) bool {
	for raw != "" {
		var kv string
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			kv, raw = raw, ""
		}
		k, _, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			if u, err := url.QueryUnescape(k); err == nil {
				k = u
			}
		}
		if k != "" && match(k) {
			return true
		}
	}
	return false
}

// bodyVerdict is what the body of a signed-in session's request holds.
type bodyVerdict struct {
	password   bool // a field named like a password (passwordName)
	credential bool // a field named like any credential (CredentialName)
	sure       bool // the body was read whole
}

func judgeBody(names []string, sure bool) bodyVerdict {
	v := bodyVerdict{sure: sure}
	for _, n := range names {
		v.password = v.password || passwordName(n)
		v.credential = v.credential || CredentialName(n)
	}
	return v
}

// passwordName reports whether a field name reads like a password itself,
// the narrower test that refuses a request when the app cannot be asked
// ("author" or "csrf_token" are credentials by CredentialName, not this).
func passwordName(k string) bool {
	lk := strings.ToLower(k)
	return strings.Contains(lk, "pass") || strings.Contains(lk, "pwd")
}

// CredentialName reports whether a parameter name reads like a password:
// the gateway's one rule for it (caddy mfa doctor asks the same).
func CredentialName(k string) bool {
	lk := strings.ToLower(k)
	for _, w := range []string{"pass", "pwd", "secret", "token", "auth"} {
		if strings.Contains(lk, w) {
			return true
		}
	}
	return false
}

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

// stripTrusted removes client-sent copies of the headers the gateway sets, in
// every spelling.
func (g *Guard) stripTrusted(h http.Header) {
	for k := range h {
		if len(k) >= 2 && g.isTrusted(k) {
			delete(h, k)
		}
	}
}

// isTrusted reports whether header name k reads as a trusted header, that
// is headerKey(k) is one of g.trusted, without allocating for ASCII names.
// It runs for every header of every request: folding ASCII keeps each byte in
// place, so an ASCII first byte that starts no trusted name rules k out
// without a scan, and an ASCII name can only match a name of its length.
func (g *Guard) isTrusted(k string) bool {
	if c := k[0]; c < utf8.RuneSelf {
		c = foldHeaderByte(c)
		first := false
		for _, t := range g.trusted {
			first = first || t[0] == c
		}
		if !first {
			return false
		}
	}
	for _, t := range g.trusted {
		if sameHeader(k, t) {
			return true
		}
	}
	return false
}

// sameHeader reports whether header name k reads as want, a headerKey,
// without allocating for ASCII names.
func sameHeader(k, want string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			// Non-ASCII case folding can change lengths: compare in full.
			return headerKey(k) == want
		}
	}
	if len(k) != len(want) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if foldHeaderByte(k[i]) != want[i] {
			return false
		}
	}
	return true
}

// foldHeaderByte is headerKey for one ASCII byte.
func foldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}

// sendToChallenge answers an app request made while the second factor is
// outstanding: pages go to the challenge, scripts get a 401.
func (g *Guard) sendToChallenge(w http.ResponseWriter, r *http.Request, s *session.Session) error {
	next := s.Next
	if r.Method == http.MethodGet && !web.WantsJSON(r) {
		next = web.SafeNext(r.URL.RequestURI())
	}
	return g.redirectOrJSON(w, r, g.cfg.Prefix+"challenge?next="+web.URLQuery(next), web.ErrMFARequired)
}

// sendToSetup answers an app request from a user who must set up 2FA first.
func (g *Guard) sendToSetup(w http.ResponseWriter, r *http.Request) error {
	return g.redirectOrJSON(w, r, g.cfg.Prefix+"security?setup=1", web.ErrEnrolmentRequired)
}

func (g *Guard) redirectOrJSON(w http.ResponseWriter, r *http.Request, loc string, e *web.Error) error {
	if web.WantsJSON(r) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		w.Header().Set("X-Mfa-Location", loc)
		return web.WriteJSONError(w, e)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, loc, http.StatusSeeOther)
	return nil
}

func (g *Guard) logDecision(r *http.Request, msg string, fields ...zap.Field) {
	if c := g.log.Check(zapcore.InfoLevel, msg); c != nil {
		c.Write(append(fields, zap.String("remote_ip", g.site.ClientIP(r)), zap.String("path", r.URL.Path))...)
	}
}

// actor is the actor behind r, acting as user.
func (g *Guard) actor(r *http.Request, user string) mfa.Actor {
	a := g.site.ActorOf(r)
	a.User = user
	return a
}
