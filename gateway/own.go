package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/session"
)

// serveOwn answers the gateway's own paths: rel is the cleaned path under
// the prefix ("challenge", "api/v1/status", "assets/mfa.css").
func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request, rel string) error {
	if strings.HasPrefix(rel, "assets/") {
		sub := r.Clone(r.Context())
		sub.URL.Path = rel
		g.ui.Assets().ServeHTTP(w, sub)
		return nil
	}
	now := g.rt.now()
	c := &call{w: w, r: r, cur: g.lookup(r, now), now: now}
	if s := c.sess(); s != nil && s.State == session.Active {
		s.Touch(now)
	}
	if api, ok := strings.CutPrefix(rel, "api/v1/"); ok {
		return g.serveAPI(c, api)
	}
	return g.servePage(c, rel)
}

// csrfToken is tied to the session: HMAC(csrf key, session key).
func (g *Gateway) csrfToken(s *session.Session) string {
	if s == nil {
		return ""
	}
	m := hmac.New(sha256.New, g.rt.csrfKey)
	m.Write(s.Key[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (g *Gateway) checkCSRF(c *call, token string) bool {
	want := g.csrfToken(c.sess())
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
)

// require checks the session for an endpoint.
func (g *Gateway) require(c *call, need requirement) *apiError {
	s := c.sess()
	switch {
	case s == nil || s.State == session.Anonymous:
		return errNoSession
	case need == needPending && s.State != session.Pending:
		return errNotPending
	case (need == needActive || need == needAdmin) && s.State != session.Active:
		return errMFARequired
	case need == needAdmin && !g.isAdmin(s):
		g.logDecision(c.r, "admin refused", zap.String("user", s.User))
		return errNotAdmin
	case need == needAdmin && s.AAL < 2:
		return errAAL2Required.with("Team security needs two-factor authentication in this sign-in: set up an authenticator on your security page, or sign in again with your authenticator app.")
	}
	return nil
}

// writeError answers with JSON for scripts and a page for people.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, e *apiError) error {
	if wantsJSON(r) {
		return g.writeJSONError(w, e)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	p := challengeui.ErrorPage{Status: e.Status, Message: e.Message}
	if e == errNoSession || e.Code == errNoSession.Code {
		p.Href, p.LinkText = "/", "Go to sign-in"
	}
	if err := g.ui.Render(w, e.Status, p); err != nil {
		g.log.Error("render error page", zap.Error(err))
	}
	return nil
}
