// Package cookies owns every cookie rule of the gateway: the name, reading
// and writing of its own session cookie, which of the app's cookies are
// session cookies, the one classifier of the app's Set-Cookie lines, and the
// rewrite of a request's Cookie header so the app sees its session cookie
// only with the gateway session it was issued under.
package cookies

import (
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mfagate/mfagate/session"
)

// Jar applies the cookie rules of one site block.
type Jar struct {
	name     string   // the gateway cookie's name on HTTP
	hostName string   // and on HTTPS: "__Host-" + name
	app      []string // the app's session cookie names or globs, lower-cased, in Key form
	glob     []bool   // per app entry: a pattern, not a plain name
}

// NewJar returns the rules for a gateway cookie called name and the app's
// session cookies named (or matched, as path.Match globs) by app.
func NewJar(name string, app []string) (*Jar, error) {
	j := &Jar{name: name, hostName: "__Host-" + name}
	for _, p := range app {
		if err := CheckPattern(p); err != nil {
			return nil, err
		}
		j.app = append(j.app, strings.ToLower(Key(p)))
		j.glob = append(j.glob, strings.ContainsAny(p, "*?[\\"))
	}
	return j, nil
}

// CheckPattern reports whether p is a cookie name or a path.Match glob.
func CheckPattern(p string) error {
	if _, err := path.Match(p, ""); err != nil || p == "" || strings.ContainsAny(p, "=; \t") {
		return fmt.Errorf("session cookie %q: not a cookie name or glob", p)
	}
	return nil
}

// Key is a cookie name as an app may read it: PHP, for one, turns '.' and
// ' ' in names into '_', so "wp.logged.in" reaches it as "wp_logged_in".
// Matching on this form means no spelling of the app's cookie slips past
// the binding check.
func Key(name string) string {
	plain := true
	for i := 0; i < len(name) && plain; i++ {
		plain = name[i] != '.' && name[i] != ' '
	}
	if plain {
		return name
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// IsApp reports whether name is one of the app's session cookies, in any
// spelling an app may read as it: letter case does not count (ASP.NET Core
// and others read cookie names case-insensitively), nor '.' or ' ' for '_'.
func (j *Jar) IsApp(name string) bool {
	name = Key(name)
	lower := ""
	for i, p := range j.app {
		if !j.glob[i] {
			if strings.EqualFold(p, name) {
				return true
			}
			continue
		}
		if lower == "" {
			lower = strings.ToLower(name)
		}
		if ok, _ := path.Match(p, lower); ok {
			return true
		}
	}
	return false
}

// isGateway reports whether name reads as one of the gateway's cookies
// (its session, or a remembered browser), in either scheme's spelling and
// any letter case. They never reach the app.
func (j *Jar) isGateway(name string) bool {
	rest, ok := cutPrefixFold(name, j.name)
	if !ok {
		rest, ok = cutPrefixFold(name, j.hostName)
	}
	return ok && (rest == "" || strings.EqualFold(rest, deviceSuffix) || strings.EqualFold(rest, seenSuffix))
}

// cutPrefixFold is strings.CutPrefix ignoring letter case. It runs for
// every cookie of every request: no allocation.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// deviceSuffix names the cookie of a remembered browser after the gateway
// cookie: "mfa_session_device"; seenSuffix the one that recognises a
// browser a user signed in from before, for new-login alerts.
const (
	deviceSuffix = "_device"
	seenSuffix   = "_seen"
)

// Name is the gateway cookie's name for r: "__Host-" on HTTPS, so a
// sibling subdomain cannot plant one (RFC 6265bis §4.1.3.2).
func (j *Jar) Name(r *http.Request) string {
	if r.TLS != nil {
		return j.hostName
	}
	return j.name
}

// Value returns the gateway cookie's value without touching the rest of
// the request.
func (j *Jar) Value(r *http.Request) string { return valueOf(r, j.Name(r)) }

// SetDevice stamps the remembered-browser cookie, for maxAge.
func (j *Jar) SetDevice(h http.Header, r *http.Request, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: j.Name(r) + deviceSuffix, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
	h.Add("Set-Cookie", c.String())
}

// SetSeen stamps the cookie that recognises this browser at later sign-ins.
func (j *Jar) SetSeen(h http.Header, r *http.Request, value string) {
	c := &http.Cookie{
		Name: j.Name(r) + seenSuffix, Value: value, Path: "/", MaxAge: 400 * 24 * 3600,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
	h.Add("Set-Cookie", c.String())
}

// SeenValue is the browser-recognition cookie's value, "" if none.
func (j *Jar) SeenValue(r *http.Request) string { return valueOf(r, j.Name(r)+seenSuffix) }

// ClearDevice expires the remembered-browser cookie.
func (j *Jar) ClearDevice(h http.Header, r *http.Request) {
	c := &http.Cookie{Name: j.Name(r) + deviceSuffix, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
	h.Add("Set-Cookie", c.String())
}

func valueOf(r *http.Request, name string) string {
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

// Set stamps the gateway cookie with value on h.
func (j *Jar) Set(h http.Header, r *http.Request, value string) {
	c := &http.Cookie{
		Name: j.Name(r), Value: value, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
	h.Add("Set-Cookie", c.String())
}

// Own reports whether a Set-Cookie line is one of the gateway's own
// cookies for r.
func (j *Jar) Own(r *http.Request, line string) bool {
	n := j.Name(r)
	return strings.HasPrefix(line, n+"=") || strings.HasPrefix(line, n+deviceSuffix+"=") || strings.HasPrefix(line, n+seenSuffix+"=")
}

// Clear expires the gateway cookie and the app cookies the browser sent
// (by their real names, since the config may name them by glob), unless
// the response sets them itself.
func (j *Jar) Clear(h http.Header, r *http.Request, appNames []string) {
	already := map[string]bool{}
	for _, line := range h["Set-Cookie"] {
		if n, _, ok := strings.Cut(line, "="); ok {
			already[strings.TrimSpace(n)] = true
		}
	}
	expire := func(name string) {
		if already[name] {
			return
		}
		already[name] = true
		c := &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
		h.Add("Set-Cookie", c.String())
	}
	expire(j.Name(r))
	for _, n := range appNames {
		expire(n)
	}
}

// Classify is the one reading of the app's Set-Cookie lines: ok when line
// sets or deletes one of the app's session cookies, deleted when it deletes
// it (Max-Age<0, an empty value, or an Expires in the past).
func (j *Jar) Classify(line string, now time.Time) (name, value string, deleted, ok bool) {
	c, err := http.ParseSetCookie(line)
	if err != nil || !j.IsApp(c.Name) {
		return "", "", false, false
	}
	deleted = c.MaxAge < 0 || c.Value == "" || (!c.Expires.IsZero() && c.Expires.Before(now))
	return c.Name, c.Value, deleted, true
}

// Pair is one cookie as a browser or the app sent it.
type Pair struct{ Name, Value string }

// AppSet is what a response's Set-Cookie lines do to the app's session.
type AppSet struct {
	Set     []session.Binding // values it sets (to bind)
	Values  []Pair            // the same, in the clear (for the whoami call)
	Deleted []string          // names it deletes
	Lines   []string          // the raw lines (to hold back)
}

// AppSetCookies reads the app's session cookies from response headers.
func (j *Jar) AppSetCookies(h http.Header, now time.Time) AppSet {
	var as AppSet
	for _, line := range h["Set-Cookie"] {
		name, value, deleted, ok := j.Classify(line, now)
		if !ok {
			continue
		}
		as.Lines = append(as.Lines, line)
		if deleted {
			as.Deleted = append(as.Deleted, name)
			continue
		}
		as.Set = append(as.Set, session.Binding{Name: name, Hash: session.HashValue(value)})
		as.Values = append(as.Values, Pair{name, value})
	}
	return as
}

// SetsNew reports whether h sets a value of the app's session cookie that s
// (an active session, or nil) has not bound: a sign-in from any URL, or a
// switch to another user inside a session. A rolling refresh of a bound
// value, or a deletion, is nothing new.
func (j *Jar) SetsNew(h http.Header, s *session.Session, now time.Time) bool {
	for _, line := range h["Set-Cookie"] {
		name, value, deleted, ok := j.Classify(line, now)
		if ok && !deleted && (s == nil || !s.Bound(name, value)) {
			return true
		}
	}
	return false
}

// RemoveLines drops the given lines from h's Set-Cookie values.
func RemoveLines(h http.Header, drop []string) {
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

// Scan is what the gateway learned from a request's Cookie headers.
type Scan struct {
	Gateway   string   // value of the gateway cookie, "" if absent
	Device    string   // value of the remembered-browser cookie, "" if absent
	Seen      string   // value of the browser-recognition cookie, "" if absent
	Forwarded []Pair   // app cookies bound to the session and passed on
	Stripped  []string // names of app cookies removed
}

// Rewrite removes the gateway cookie and every app session cookie that is
// not bound to sess from the request, so the app sees its own cookie only
// when it comes with the gateway session it was issued under. Pending
// sessions forward nothing: their cookies are held until the challenge.
//
// This runs on every request. The cookies kept are usually one run of the
// browser's single Cookie line joined by "; " (the gateway cookie comes first
// or last), and then the rewritten header is a substring of that line: no
// copy. Anything else is joined anew in a builder.
func (j *Jar) Rewrite(r *http.Request, sess *session.Session) Scan {
	var sc Scan
	j.RewriteInto(&sc, r, sess)
	return sc
}

// RewriteInto is Rewrite writing its findings into *sc, which it resets
// first but for Forwarded's backing array: a caller that keeps the Scan on
// the heap anyway can give Forwarded room there (sc.Forwarded = buf[:0]), and
// the common request then allocates nothing.
func (j *Jar) RewriteInto(sc *Scan, r *http.Request, sess *session.Session) {
	*sc = Scan{Forwarded: sc.Forwarded[:0]}
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	gwName := j.Name(r)
	forward := sess != nil && sess.State != session.Pending
	var b strings.Builder
	joined := len(lines) > 1   // writing into b rather than keeping a run
	runStart, runEnd := -1, -1 // the kept run of lines[0], while !joined
	gap := false               // a part was dropped since the run started
	changed := len(lines) > 1
	if joined {
		n := 0
		for _, line := range lines {
			n += len(line)
		}
		b.Grow(n)
	}
	for _, line := range lines {
		for pos := 0; pos <= len(line); {
			end := strings.IndexByte(line[pos:], ';')
			if end < 0 {
				end = len(line)
			} else {
				end += pos
			}
			ps, pe := trimSpan(line, pos, end)
			pos = end + 1
			if ps == pe {
				continue
			}
			part := line[ps:pe]
			n, v, _ := strings.Cut(part, "=")
			// Apps differ in how they read a name: trimmed, in any case, or
			// with '.' and ' ' as '_'. Any spelling that reads as a
			// protected cookie is one; only the spelling bound is forwarded.
			key := Key(strings.TrimSpace(n))
			keep := true
			switch {
			case j.isGateway(key):
				switch n {
				case gwName:
					sc.Gateway = v
				case gwName + deviceSuffix:
					sc.Device = v
				case gwName + seenSuffix:
					sc.Seen = v
				}
				keep = false
			case j.IsApp(key):
				if forward && sess.Bound(n, v) {
					sc.Forwarded = append(sc.Forwarded, Pair{n, v})
				} else {
					sc.Stripped = append(sc.Stripped, strings.TrimSpace(n))
					keep = false
				}
			case strings.IndexByte(part, ',') >= 0:
				// Some parsers (Python's SimpleCookie among them) also split
				// on ',': "x=1, sid=stolen" would reach them as sid.
				if hidden := j.hiddenProtected(part); hidden != "" {
					sc.Stripped = append(sc.Stripped, hidden)
					keep = false
				}
			}
			if !keep {
				changed = true
				gap = runStart >= 0
				continue
			}
			if !joined {
				if runStart < 0 {
					runStart, runEnd = ps, pe
					continue
				}
				if !gap && line[runEnd:ps] == "; " {
					runEnd = pe
					continue
				}
				joined = true
				b.Grow(len(line))
				b.WriteString(line[runStart:runEnd])
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if !changed {
		return
	}
	out := b.String()
	if !joined && runStart >= 0 {
		out = lines[0][runStart:runEnd]
	}
	if out == "" {
		r.Header.Del("Cookie")
	} else {
		lines[0] = out // the request's own slice: no new one
		if len(lines) > 1 {
			r.Header["Cookie"] = lines[:1]
		}
	}
}

// hiddenProtected returns the name of a gateway or app session cookie that a
// parser splitting on ',' would find inside part, or "".
func (j *Jar) hiddenProtected(part string) string {
	for piece := range strings.SplitSeq(part, ",") {
		n, _, _ := strings.Cut(piece, "=")
		n = strings.TrimSpace(n)
		if key := Key(n); j.isGateway(key) || j.IsApp(key) {
			return n
		}
	}
	return ""
}

// trimSpan is strings.TrimSpace(s[ps:pe]) as offsets into s.
func trimSpan(s string, ps, pe int) (int, int) {
	for ps < pe && asciiSpace(s[ps]) {
		ps++
	}
	for pe > ps && asciiSpace(s[pe-1]) {
		pe--
	}
	if ps < pe && (s[ps] >= utf8.RuneSelf || s[pe-1] >= utf8.RuneSelf) {
		t := strings.TrimLeftFunc(s[ps:pe], unicode.IsSpace)
		ps = pe - len(t)
		pe = ps + len(strings.TrimRightFunc(t, unicode.IsSpace))
	}
	return ps, pe
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
