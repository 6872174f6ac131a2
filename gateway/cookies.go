package gateway

import (
	"net/http"
	"strings"
	"time"

	"github.com/mfagate/mfagate/session"
)

// appCookie is one of the app's session cookies as the browser sent it.
type appCookie struct{ name, value string }

// cookieScan is what the gateway learned from a request's Cookie headers.
type cookieScan struct {
	gateway   string      // value of the gateway cookie, "" if absent
	forwarded []appCookie // app cookies bound to the session and passed on
	stripped  []string    // names of app cookies removed
}

// gatewayCookieName is the cookie's name for r: "__Host-" on HTTPS, so a
// sibling subdomain cannot plant one (RFC 6265bis §4.1.3.2).
func (g *Gateway) gatewayCookieName(r *http.Request) string {
	if r.TLS != nil {
		return g.hostCookieName
	}
	return g.cfg.CookieName
}

// readGatewayCookie returns the gateway cookie's value without touching the
// rest of the request.
func (g *Gateway) readGatewayCookie(r *http.Request) string {
	name := g.gatewayCookieName(r)
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			n, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.TrimSpace(n) == name {
				return v
			}
		}
	}
	return ""
}

// rewriteCookies removes the gateway cookie and every app session cookie that
// is not bound to sess from the request, so the app sees its own cookie only
// when it comes with the gateway session it was issued under. Pending
// sessions forward nothing: their cookies are held until the challenge.
func (g *Gateway) rewriteCookies(r *http.Request, sess *session.Session) cookieScan {
	var sc cookieScan
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return sc
	}
	gwName := g.gatewayCookieName(r)
	forward := sess != nil && sess.State != session.Pending
	var b strings.Builder
	n := 0
	for _, line := range lines {
		n += len(line)
	}
	b.Grow(n)
	changed := false
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			n, v, _ := strings.Cut(part, "=")
			// Apps differ in how they read a name: trimmed, or with '.' and
			// ' ' as '_'. Any spelling that reads as a protected cookie is
			// one; only the exact spelling can be forwarded.
			key := cookieKey(strings.TrimSpace(n))
			keep := true
			switch {
			case key == gwName || key == g.cfg.CookieName || key == g.hostCookieName:
				if n == gwName {
					sc.gateway = v
				}
				keep = false
			case g.cfg.appCookie(key):
				if n == key && forward && sess.Bound(n, v) {
					sc.forwarded = append(sc.forwarded, appCookie{n, v})
				} else {
					sc.stripped = append(sc.stripped, strings.TrimSpace(n))
					keep = false
				}
			}
			if !keep {
				changed = true
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if len(lines) > 1 {
		changed = true
	}
	if !changed {
		return sc
	}
	if b.Len() == 0 {
		r.Header.Del("Cookie")
	} else {
		lines[0] = b.String() // the request's own slice: no new one
		r.Header["Cookie"] = lines[:1]
	}
	return sc
}

// appSetCookies reads the app's session cookies from response headers:
// values it sets (to bind), names it deletes, and the raw lines (to hold).
func (g *Gateway) appSetCookies(h http.Header, now time.Time) (set []session.Binding, values []appCookie, deleted []string, lines []string) {
	for _, line := range h["Set-Cookie"] {
		c, err := http.ParseSetCookie(line)
		if err != nil || !g.cfg.appCookie(c.Name) {
			continue
		}
		lines = append(lines, line)
		if c.MaxAge < 0 || c.Value == "" || (!c.Expires.IsZero() && c.Expires.Before(now)) {
			deleted = append(deleted, c.Name)
			continue
		}
		set = append(set, session.Binding{Name: c.Name, Hash: session.HashValue(c.Value)})
		values = append(values, appCookie{c.Name, c.Value})
	}
	return set, values, deleted, lines
}

// removeSetCookies drops the given lines from h's Set-Cookie values.
func removeSetCookies(h http.Header, drop []string) {
	if len(drop) == 0 {
		return
	}
	var keep []string
	for _, line := range h["Set-Cookie"] {
		held := false
		for _, d := range drop {
			held = held || d == line
		}
		if !held {
			keep = append(keep, line)
		}
	}
	if len(keep) == 0 {
		h.Del("Set-Cookie")
	} else {
		h["Set-Cookie"] = keep
	}
}

// setGatewayCookie stamps the gateway session cookie on h.
func (g *Gateway) setGatewayCookie(h http.Header, r *http.Request, id session.ID, s *session.Session, now time.Time) {
	value := g.rt.codec.Encode(session.Claims{
		ID: id, AAL: s.AAL, User: s.User,
		IdleDeadline: now.Add(g.idleTimeout()).Unix(),
	})
	c := &http.Cookie{
		Name: g.gatewayCookieName(r), Value: value, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
	h.Add("Set-Cookie", c.String())
}

// clearCookies expires the gateway cookie and the app cookies the browser
// sent (by their real names, since the config may name them by glob), unless
// the response sets them itself.
func (g *Gateway) clearCookies(h http.Header, r *http.Request, appNames []string) {
	already := map[string]bool{}
	for _, line := range h["Set-Cookie"] {
		if c, err := http.ParseSetCookie(line); err == nil {
			already[c.Name] = true
		}
	}
	expire := func(name string, secure bool) {
		if already[name] {
			return
		}
		already[name] = true
		c := &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
		h.Add("Set-Cookie", c.String())
	}
	expire(g.gatewayCookieName(r), r.TLS != nil)
	for _, n := range appNames {
		expire(n, r.TLS != nil)
	}
}
