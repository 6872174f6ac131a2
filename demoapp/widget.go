package demoapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The demo's support widget: the dashboard opens WidgetPath with the user
// it claims (WidgetUserParam) and, once the app has an identity secret, a
// token the app signed (WidgetTokenParam), as a customer's page hands its
// widget both. The widget page shows the verdict the gateway put in
// WidgetVerdictHeader.
const (
	WidgetPath          = "/widget/support"
	WidgetUserParam     = "user_id"
	WidgetTokenParam    = "token"
	WidgetVerdictHeader = "X-Widget-Identity"
	// widgetSecretPath is where an admin saves the identity secret.
	widgetSecretPath = "/settings/widget-secret"
	// widgetTokenLife is how long a minted token is good for.
	widgetTokenLife = 10 * time.Minute
)

// SecurityURL is the gateway's security page the dashboard links to.
func (a *App) SecurityURL() string { return a.opts.GatewayPrefix + "security" }

func (a *App) secret() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.widgetSecret
}

// widgetURL is the widget's address for user: the claim, and a token when
// the app has a secret.
func (a *App) widgetURL(user string) string {
	q := url.Values{WidgetUserParam: {user}}
	if s := a.secret(); s != "" {
		q.Set(WidgetTokenParam, MintWidgetToken(s, user, time.Now()))
	}
	return WidgetPath + "?" + q.Encode()
}

// MintWidgetToken signs an HS256 JWT for user with secret, valid from now
// for ten minutes, as the customer's backend does.
func MintWidgetToken(secret, user string, now time.Time) string {
	enc := base64.RawURLEncoding
	head, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	body, _ := json.Marshal(map[string]any{"sub": user, "iat": now.Unix(), "exp": now.Add(widgetTokenLife).Unix()})
	signed := enc.EncodeToString(head) + "." + enc.EncodeToString(body)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(m.Sum(nil))
}

// widgetPage is the data of the widget page.
type widgetPage struct {
	User     string // the claimed user; "" for none
	HasToken bool
	Verdict  string // the gateway's verdict; "" when the gateway sent none
}

// widget serves the support widget. It needs no app session: widget
// traffic comes from customers' pages.
func (a *App) widget(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	a.render(w, http.StatusOK, "widget", widgetPage{
		User:     q.Get(WidgetUserParam),
		HasToken: q.Get(WidgetTokenParam) != "",
		Verdict:  r.Header.Get(WidgetVerdictHeader),
	})
}

// saveWidgetSecret stores the identity secret an admin pasted (empty clears
// it) and goes back to the dashboard.
func (a *App) saveWidgetSecret(w http.ResponseWriter, r *http.Request, st *reqState) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if st.formErr != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if roleOf(st.user()) != "admin" {
		http.Error(w, "only an admin can save the identity secret", http.StatusForbidden)
		return
	}
	a.mu.Lock()
	a.widgetSecret = strings.TrimSpace(r.PostForm.Get("secret"))
	a.mu.Unlock()
	http.Redirect(w, r, a.homeURL(), http.StatusSeeOther)
}
