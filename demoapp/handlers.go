package demoapp

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// route dispatches a request after the session and legacy credentials have
// been looked at.
func (a *App) route(w http.ResponseWriter, r *http.Request, st *reqState) {
	switch p := r.URL.Path; {
	case p == "/api/login":
		a.apiLogin(w, r, st)
	case p == "/api/me":
		a.apiMe(w, r, st)
	case p == "/api/data":
		a.apiData(w, r, st)
	case p == "/api.php":
		a.apiUserinfo(w, r, st)
	case p == WidgetPath:
		a.widget(w, r)
	case p == widgetSecretPath:
		a.saveWidgetSecret(w, r, st)
	case a.opts.SharedPath && (p == "/" || p == "/index.php"):
		a.indexPHP(w, r, st)
	case !a.opts.SharedPath && p == "/":
		if !isGet(r) {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		a.dashboard(w, r, st, "")
	case !a.opts.SharedPath && p == "/login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.loginForm(w, r, st, http.StatusOK, "")
		case http.MethodPost:
			a.formLogin(w, r, st)
		default:
			methodNotAllowed(w, "GET, HEAD, POST")
		}
	case !a.opts.SharedPath && p == "/logout":
		if !isGet(r) && r.Method != http.MethodPost {
			methodNotAllowed(w, "GET, HEAD, POST")
			return
		}
		if a.opts.LogoutToken && (!st.ok || subtle.ConstantTimeCompare([]byte(r.Form.Get("token")), []byte(LogoutToken(st.id))) != 1) {
			http.Error(w, "sign-out needs its token", http.StatusForbidden)
			return
		}
		a.signOut(w, st)
		http.Redirect(w, r, a.loginURL(), http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

// indexPHP serves the SharedPath shape: every page is /index.php with a "do"
// action taken from the query or the form.
func (a *App) indexPHP(w http.ResponseWriter, r *http.Request, st *reqState) {
	if r.Method != http.MethodPost && !isGet(r) {
		methodNotAllowed(w, "GET, HEAD, POST")
		return
	}
	if st.formErr != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	do := r.Form.Get("do")
	switch {
	case do == "login" && r.Method == http.MethodPost:
		a.formLogin(w, r, st)
	case do == "login", do == "" && st.user() == "":
		a.loginForm(w, r, st, http.StatusOK, "")
	case do == "logout":
		a.signOut(w, st)
		http.Redirect(w, r, a.loginURL(), http.StatusSeeOther)
	case do == "show", do == "":
		a.dashboard(w, r, st, "")
	case do == "search":
		a.dashboard(w, r, st, r.Form.Get("q"))
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
	}
}

// dashboard renders the signed-in page, or sends an anonymous visitor to the
// sign-in form (starting an anonymous session when not rotating).
func (a *App) dashboard(w http.ResponseWriter, r *http.Request, st *reqState, query string) {
	user := st.user()
	if user == "" {
		if !a.opts.Rotate {
			a.ensureSession(w, st)
		}
		http.Redirect(w, r, a.loginURL(), http.StatusSeeOther)
		return
	}
	a.render(w, http.StatusOK, "dashboard", dashboardPage{
		User:         user,
		Role:         roleOf(user),
		SharedPath:   a.opts.SharedPath,
		Searched:     r.Form.Has("q") || query != "",
		Query:        query,
		Stats:        demoStats(),
		Security:     a.SecurityURL(),
		Widget:       a.widgetURL(user),
		WidgetSigned: a.secret() != "",
		SecretPath:   widgetSecretPath,
	})
}

// loginForm renders the sign-in form with the given status and message.
func (a *App) loginForm(w http.ResponseWriter, r *http.Request, st *reqState, status int, msg string) {
	if !a.opts.Rotate {
		a.ensureSession(w, st)
	}
	page := loginPage{
		Action:     "/login",
		SharedPath: a.opts.SharedPath,
		Error:      msg,
		Next:       safeNext(r.Form.Get("next")),
	}
	if a.opts.SharedPath {
		page.Action = "/index.php"
	}
	if a.opts.CSRF {
		page.CSRF = a.csrfToken(w, st)
	}
	a.render(w, status, "login", page)
}

// formLogin handles a sign-in form post.
func (a *App) formLogin(w http.ResponseWriter, r *http.Request, st *reqState) {
	if st.formErr != nil || !r.PostForm.Has("username") || !r.PostForm.Has("password") {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if a.opts.CSRF {
		tok := r.PostForm.Get("csrf_token")
		if !st.ok || st.sess.csrf == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(st.sess.csrf)) != 1 {
			a.loginForm(w, r, st, http.StatusForbidden, "Your form has expired. Please try again.")
			return
		}
	}
	user := a.canonical(r.PostForm.Get("username"))
	if !a.checkPassword(user, r.PostForm.Get("password")) {
		if a.opts.FailureSetsCookie {
			// A fresh anonymous session for the next try, and a 200.
			if st.ok {
				a.store.delete(st.id)
			}
			st.ok = false
			a.ensureSession(w, st)
			a.loginForm(w, r, st, http.StatusOK, "Invalid username or password. Your login session was restarted.")
			return
		}
		a.loginForm(w, r, st, http.StatusUnauthorized, "Invalid username or password")
		return
	}
	a.signIn(w, st, user)
	dest := safeNext(r.Form.Get("next"))
	if dest == "" {
		dest = a.homeURL()
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// apiLogin handles the JSON sign-in.
func (a *App) apiLogin(w http.ResponseWriter, r *http.Request, st *reqState) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var body struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Username == nil || body.Password == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "bad request"})
		return
	}
	user := a.canonical(*body.Username)
	if !a.checkPassword(user, *body.Password) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false})
		return
	}
	a.signIn(w, st, user)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": user})
}

// apiMe is the "whoami" URL.
func (a *App) apiMe(w http.ResponseWriter, r *http.Request, st *reqState) {
	if !isGet(r) {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	user := st.user()
	if user == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not signed in"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"user":  user,
		"email": user + "@example.com",
		"role":  roleOf(user),
	})
}

// apiUserinfo answers as wiki software does, behind a query string and
// nested: GET /api.php?action=query&meta=userinfo&format=json gives
// {"query":{"userinfo":{"id":…,"name":…}}}; an anonymous visitor is named by
// address with an "anon" marker, and always with 200.
func (a *App) apiUserinfo(w http.ResponseWriter, r *http.Request, st *reqState) {
	q := r.URL.Query()
	if !isGet(r) || q.Get("action") != "query" || q.Get("meta") != "userinfo" || q.Get("format") != "json" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown action"})
		return
	}
	info := map[string]any{"id": 0, "name": r.RemoteAddr, "anon": ""}
	if user := st.user(); user != "" {
		info = map[string]any{"id": len(user), "name": user}
	}
	writeJSON(w, http.StatusOK, map[string]any{"batchcomplete": "", "query": map[string]any{"userinfo": info}})
}

// apiData returns the dashboard numbers.
func (a *App) apiData(w http.ResponseWriter, r *http.Request, st *reqState) {
	if !isGet(r) {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	user := st.user()
	if user == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not signed in"})
		return
	}
	s := demoStats()
	writeJSON(w, http.StatusOK, map[string]any{
		"user":          user,
		"visitors":      s.Visitors,
		"signups":       s.Signups,
		"revenue_cents": s.RevenueCents,
		"open_tickets":  s.OpenTickets,
	})
}

func (a *App) loginURL() string {
	if a.opts.SharedPath {
		return "/index.php?do=login"
	}
	return "/login"
}

func (a *App) homeURL() string {
	if a.opts.SharedPath {
		return "/index.php?do=show"
	}
	return "/"
}

// safeNext returns next when it is a same-origin path, else "".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

func roleOf(user string) string {
	if user == "admin" {
		return "admin"
	}
	return "member"
}

func isGet(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
