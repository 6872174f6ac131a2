// Package demoapp is a small dashboard web application that the gateway is
// demonstrated and tested against. It knows nothing of the gateway: it keeps
// its own users, passwords and in-memory sessions, like the unmodified apps the
// gateway sits in front of.
//
// The app can take several shapes (see Options) so that tests can show the
// gateway works for apps that rotate the session at sign-in and apps that do
// not, apps that sign in through a shared path with an action field, apps that
// derive their cookie name from their URL, and apps that carry a CSRF token.
//
// Like some legacy apps, it also signs a user in from any URL when the request
// carries credentials in an "Authorization: Basic" header or in auth_user and
// auth_pass query or form parameters. That is deliberate: it is an attack
// surface the gateway must handle.
package demoapp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"mime"
	"net/http"
	"strings"
	"sync"
	"unicode"
)

// DefaultCookieName is the session cookie name used when Options.CookieName is
// empty and Options.CookieDerived is false.
const DefaultCookieName = "demo_session"

// maxBodyBytes caps request bodies.
const maxBodyBytes = 1 << 20

// maxSessions caps the in-memory session table; anonymous sessions are
// dropped first when it is full.
const maxSessions = 100000

// Options selects the shape of the app. The zero value is usable but has
// Rotate false; start from DefaultOptions for the common shape.
type Options struct {
	// Users maps username to password; nil means DefaultUsers().
	Users map[string]string
	// CookieName is the session cookie name; empty means DefaultCookieName.
	// Ignored when CookieDerived is true.
	CookieName string
	// CookieDerived names the cookie "SESS" + the first 12 hex digits of
	// sha256(BaseURL), like PHP apps that derive the name from their URL.
	CookieDerived bool
	// BaseURL is used only to derive the cookie name.
	BaseURL string
	// Rotate issues a new session ID at sign-in. When false the app starts
	// an anonymous session on the first visit (GET /login, GET /) and marks
	// that same session signed in at sign-in, sending no new Set-Cookie.
	Rotate bool
	// SharedPath serves the app from /index.php with a "do" action field:
	// do=login signs in, do=logout signs out, do=show is the dashboard and
	// do=search searches. /login and /logout are then not served.
	SharedPath bool
	// CSRF puts a token in the sign-in form, stored in the pre-sign-in
	// (anonymous) session, and refuses a form sign-in without it.
	CSRF bool
	// SecureCookie adds the Secure attribute to the session cookie.
	SecureCookie bool
	// LaxCookies reads the session cookie the laxest way frameworks do: its
	// name in any letter case (as ASP.NET Core does), the Cookie header split
	// on ',' as well as ';' (as Python's SimpleCookie does), values
	// unquoted; any copy that names a live session is used.
	LaxCookies bool
	// CSRFCookie sets a new "demo_csrf" cookie at every sign-in, as
	// frameworks that rotate their CSRF cookie on login do.
	CSRFCookie bool
	// FoldNames signs users in by a folded name, as apps whose database
	// collation ignores case and accents do: "ALICE", "Alice" and "Àlice"
	// are alice, and '_' is a space.
	FoldNames bool
	// FailureSetsCookie answers a wrong password with 200, the form again,
	// and a fresh anonymous session cookie, as apps that restart the login
	// session after a failure do.
	FailureSetsCookie bool
	// LogoutToken makes /logout sign out only with token=LogoutToken(the
	// session cookie's value), as apps that protect sign-out from cross-site
	// links do; without it the sign-out is refused with 403.
	LogoutToken bool
	// LogoutKeepsCookie ends the session on the server at sign-out but sends
	// no cookie deletion, as apps that only invalidate server-side do.
	LogoutKeepsCookie bool
	// GatewayPrefix is the gateway's path prefix (its `prefix` option); the
	// dashboard links to its security page, GatewayPrefix + "security".
	// Empty means DefaultGatewayPrefix.
	GatewayPrefix string
	// WidgetSecret is the identity secret the app mints widget tokens with,
	// as a customer's backend does. Empty: the widget claims a user without
	// a token until an admin saves one on the dashboard.
	WidgetSecret string
}

// DefaultGatewayPrefix is the gateway's default path prefix.
const DefaultGatewayPrefix = "/_mfa/"

// LogoutToken is the sign-out token the LogoutToken shape expects.
func LogoutToken(cookieValue string) string {
	sum := sha256.Sum256([]byte("logout:" + cookieValue))
	return hex.EncodeToString(sum[:8])
}

// DefaultOptions returns the common shape: default users, cookie
// DefaultCookieName, a new session ID at sign-in.
func DefaultOptions() Options {
	return Options{
		Users:      DefaultUsers(),
		CookieName: DefaultCookieName,
		Rotate:     true,
	}
}

// DefaultUsers returns the demo accounts. "admin" has the admin role; the
// others are members.
func DefaultUsers() map[string]string {
	return map[string]string{
		"alice": "alice-password",
		"bob":   "bob-password",
		"admin": "admin-password",
	}
}

// DerivedCookieName returns "SESS" + the first 12 hex digits of
// sha256(baseURL).
func DerivedCookieName(baseURL string) string {
	sum := sha256.Sum256([]byte(baseURL))
	return "SESS" + hex.EncodeToString(sum[:])[:12]
}

// App is the demo dashboard. It implements http.Handler and is safe for
// concurrent use.
type App struct {
	opts       Options
	users      map[string]string
	cookieName string
	store      *store
	pages      *template.Template

	mu           sync.Mutex
	widgetSecret string // see Options.WidgetSecret; an admin may replace it
}

// New returns an App of the given shape.
func New(opts Options) *App {
	users := make(map[string]string)
	src := opts.Users
	if src == nil {
		src = DefaultUsers()
	}
	for u, p := range src {
		users[u] = p
	}
	name := opts.CookieName
	if opts.CookieDerived {
		name = DerivedCookieName(opts.BaseURL)
	} else if name == "" {
		name = DefaultCookieName
	}
	opts.Users = nil
	if opts.GatewayPrefix == "" {
		opts.GatewayPrefix = DefaultGatewayPrefix
	}
	if !strings.HasSuffix(opts.GatewayPrefix, "/") {
		opts.GatewayPrefix += "/"
	}
	return &App{
		opts:         opts,
		users:        users,
		cookieName:   name,
		store:        &store{m: make(map[string]session)},
		pages:        parsePages(),
		widgetSecret: opts.WidgetSecret,
	}
}

// CookieName returns the name of the app's session cookie.
func (a *App) CookieName() string { return a.cookieName }

// SessionUser reports which user the app believes the session cookie value
// belongs to. It returns false for unknown and anonymous sessions.
func (a *App) SessionUser(cookieValue string) (string, bool) {
	s, ok := a.store.get(cookieValue)
	if !ok || s.user == "" {
		return "", false
	}
	return s.user, true
}

// canonical is the user name the app signs in: as typed, or folded.
func (a *App) canonical(user string) string {
	if !a.opts.FoldNames {
		return user
	}
	var b strings.Builder
	for _, r := range strings.TrimSpace(user) {
		if f, ok := accentFold[r]; ok {
			r = f
		}
		if r == '_' {
			r = ' '
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// accentFold maps accented Latin letters to their base letter, as a
// case- and accent-insensitive collation compares them.
var accentFold = func() map[rune]rune {
	m := map[rune]rune{}
	for base, accented := range map[rune]string{
		'a': "àáâãäåÀÁÂÃÄÅ", 'e': "èéêëÈÉÊË", 'i': "ìíîïÌÍÎÏ", 'o': "òóôõöÒÓÔÕÖ",
		'u': "ùúûüÙÚÛÜ", 'n': "ñÑ", 'c': "çÇ",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()

// checkPassword reports whether the credentials are valid, doing equal work
// for unknown users. user is the canonical name.
func (a *App) checkPassword(user, pass string) bool {
	want, known := a.users[user]
	if !known {
		want = "\x00no such user\x00"
	}
	w := sha256.Sum256([]byte(want))
	g := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1 && known
}

// reqState is what ServeHTTP learns about a request before routing.
type reqState struct {
	formErr error   // from parsing the form; handlers that need it refuse with 400
	id      string  // session ID from the cookie, or a newly issued one
	sess    session // copy of the session when ok
	ok      bool    // the request has a live session (anonymous or signed in)
}

func (st *reqState) user() string {
	if !st.ok {
		return ""
	}
	return st.sess.user
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	st := &reqState{formErr: parseForm(r)}
	for _, v := range a.sessionCookies(r) {
		if st.sess, st.ok = a.store.get(v); st.ok {
			st.id = v
			break
		}
	}
	if user, ok := a.legacyCredentials(r); ok {
		a.signIn(w, st, user)
	}
	a.route(w, r, st)
}

// sessionCookies returns the values of the session cookie as the app reads
// them: net/http's parsing, or the lax one.
func (a *App) sessionCookies(r *http.Request) []string {
	if !a.opts.LaxCookies {
		if c, err := r.Cookie(a.cookieName); err == nil {
			return []string{c.Value}
		}
		return nil
	}
	var out []string
	for _, line := range r.Header["Cookie"] {
		for _, part := range strings.FieldsFunc(line, func(c rune) bool { return c == ';' || c == ',' }) {
			n, v, _ := strings.Cut(part, "=")
			if strings.EqualFold(strings.TrimSpace(n), a.cookieName) {
				out = append(out, strings.Trim(strings.TrimSpace(v), `"`))
			}
		}
	}
	return out
}

// parseForm parses query and body form values. Only url-encoded and multipart
// bodies are parsed; others (JSON) are left for the handler.
func parseForm(r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		return r.ParseMultipartForm(maxBodyBytes)
	}
	return r.ParseForm()
}

// legacyCredentials returns the user signed in by Basic credentials or by
// auth_user/auth_pass parameters on any URL. Bad credentials are ignored.
func (a *App) legacyCredentials(r *http.Request) (string, bool) {
	if u, p, ok := r.BasicAuth(); ok {
		u = a.canonical(u)
		return u, a.checkPassword(u, p)
	}
	if r.Form != nil && r.Form.Has("auth_user") {
		u := a.canonical(r.Form.Get("auth_user"))
		return u, a.checkPassword(u, r.Form.Get("auth_pass"))
	}
	return "", false
}

// signIn marks the request's user signed in: a new session and cookie when
// rotating or when there is no session yet, else the existing session in
// place with no Set-Cookie.
func (a *App) signIn(w http.ResponseWriter, st *reqState, user string) {
	if a.opts.Rotate || !st.ok || !a.store.update(st.id, func(s *session) { s.user = user }) {
		if st.ok {
			a.store.delete(st.id)
		}
		st.id = a.store.create(session{user: user})
		a.setCookie(w, st.id)
		st.sess = session{user: user}
	} else {
		st.sess.user = user
	}
	st.ok = true
	w.Header().Set("X-Demo-User", user)
	if a.opts.CSRFCookie {
		http.SetCookie(w, &http.Cookie{Name: "demo_csrf", Value: newID(), Path: "/", SameSite: http.SameSiteLaxMode})
	}
}

// ensureSession starts an anonymous session (and sets its cookie) when the
// request has none, as PHP's session_start does.
func (a *App) ensureSession(w http.ResponseWriter, st *reqState) {
	if st.ok {
		return
	}
	st.id = a.store.create(session{})
	st.sess = session{}
	st.ok = true
	a.setCookie(w, st.id)
}

// csrfToken returns the session's CSRF token, creating the session and the
// token when needed.
func (a *App) csrfToken(w http.ResponseWriter, st *reqState) string {
	a.ensureSession(w, st)
	if st.sess.csrf != "" {
		return st.sess.csrf
	}
	tok := newID()
	ok := a.store.update(st.id, func(s *session) {
		if s.csrf == "" {
			s.csrf = tok
		}
		tok = s.csrf
	})
	if !ok {
		return ""
	}
	st.sess.csrf = tok
	return tok
}

// signOut ends the session and clears the cookie.
func (a *App) signOut(w http.ResponseWriter, st *reqState) {
	if st.ok {
		a.store.delete(st.id)
	}
	st.ok, st.id, st.sess = false, "", session{}
	if a.opts.LogoutKeepsCookie {
		return
	}
	c := a.cookie("")
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (a *App) setCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, a.cookie(id))
}

func (a *App) cookie(value string) *http.Cookie {
	return &http.Cookie{
		Name:     a.cookieName,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   a.opts.SecureCookie,
	}
}

// session is one server-side session. user is empty while anonymous.
type session struct {
	user string
	csrf string
}

// store is the in-memory session table.
type store struct {
	mu sync.Mutex
	m  map[string]session
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails; crashes the program if it cannot read
	return hex.EncodeToString(b[:])
}

func (s *store) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	return v, ok
}

func (s *store) create(v session) string {
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.evictLocked()
	}
	s.m[id] = v
	return id
}

// evictLocked drops some sessions, anonymous ones first.
func (s *store) evictLocked() {
	n := len(s.m) / 10
	for id, v := range s.m {
		if n <= 0 {
			return
		}
		if v.user == "" {
			delete(s.m, id)
			n--
		}
	}
	for id := range s.m {
		if n <= 0 {
			return
		}
		delete(s.m, id)
		n--
	}
}

// update applies fn to the session under the lock; false if it is gone.
func (s *store) update(id string, fn func(*session)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return false
	}
	fn(&v)
	s.m[id] = v
	return true
}

func (s *store) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}
