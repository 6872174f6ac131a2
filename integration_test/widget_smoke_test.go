package integration_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

// mintJWT signs claims with HS256 by hand, independently of the gateway's
// verifier.
func mintJWT(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	head := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(head))
	return head + "." + enc.EncodeToString(m.Sum(nil))
}

const widgetGateway = adminGateway + `
		widget {
			match /widget/*
		}
`

// widgetApp is the demo app plus a widget API that echoes the request
// headers it receives.
func widgetApp() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", demoapp.New(optsWith(manyUsers())))
	mux.HandleFunc("/widget/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	})
	return mux
}

func TestWidgetSmoke(t *testing.T) {
	e := startWith(t, widgetApp(), widgetGateway)
	_, _, admin := e.enrolled("admin")
	r := admin.api("admin/identity/secret", map[string]any{})
	if r.StatusCode != 200 {
		t.Fatalf("secret: %d %s", r.StatusCode, r.Body)
	}
	secret := r.JSON(t)["secret"].(string)
	tok := mintJWT(t, secret, map[string]any{"sub": "u42", "exp": time.Now().Add(time.Hour).Unix()})
	c := e.newClient()
	res := c.req("GET", "/widget/messages", nil, map[string]string{"X-Widget-User-Id": "u42", "Authorization": "Bearer " + tok, "X-Widget-Identity": "verified"})
	if res.StatusCode != 200 || !jsonHas(res.Body, "X-Widget-Identity", "verified") {
		t.Fatalf("verified request: %d %s", res.StatusCode, res.Body)
	}
	res = c.req("GET", "/widget/messages", nil, map[string]string{"X-Widget-User-Id": "u43", "Authorization": "Bearer " + tok, "X-Widget-Identity": "verified"})
	if !jsonHas(res.Body, "X-Widget-Identity", "unverified") {
		t.Fatalf("user mismatch in monitor: %d %s", res.StatusCode, res.Body)
	}
	// The gate refuses enforce: a failure was recorded.
	apiErr(t, admin.api("admin/identity/mode", map[string]string{"mode": "enforce"}), 409, "enforce_gate")
	st := admin.api("admin/identity", nil)
	if st.StatusCode != 200 {
		t.Fatalf("identity status: %d %s", st.StatusCode, st.Body)
	}
	page := admin.get("/_mfa/admin")
	if page.StatusCode != 200 {
		t.Fatalf("admin page: %d", page.StatusCode)
	}
}

func jsonHas(body, header, value string) bool {
	var h map[string][]string
	if json.Unmarshal([]byte(body), &h) != nil {
		return false
	}
	return len(h[header]) == 1 && h[header][0] == value
}

// TestWidgetUploadIsNotAClaim: with user_json, a large multipart upload on a
// widget path carries no JSON claim; it is not refused for its size.
func TestWidgetUploadIsNotAClaim(t *testing.T) {
	e := startWith(t, widgetApp(), adminGateway+`
		widget {
			match /widget/*
			user_json user_id
		}
`)
	c := e.newClient()
	body := strings.Repeat("x", 100<<10)
	r := c.req("POST", "/widget/upload", strings.NewReader(body), map[string]string{"Content-Type": "multipart/form-data; boundary=zz"})
	if r.StatusCode != 200 || !jsonHas(r.Body, "X-Widget-Identity", "anonymous") {
		t.Fatalf("upload: %d %.200s", r.StatusCode, r.Body)
	}
	r = c.req("POST", "/widget/upload", strings.NewReader(`{"user_id":"u1"}`+strings.Repeat(" ", 100<<10)), map[string]string{"Content-Type": "application/json"})
	if r.StatusCode != 413 {
		t.Fatalf("an oversized JSON claim must not pass unchecked: %d", r.StatusCode)
	}
}
