package integration_test

// Widget identity verification (issue 5) through the real Caddy server in
// front of a real upstream: every cause in Enforce / Monitor / Off,
// anonymous requests, the verdict header, the enforce gate, rotation with
// an overlap window, a claimed id in a JSON body, and the counters, mode and
// secret across reloads and restarts.
//
// Tokens are minted here by hand (HMAC over base64url segments), never with
// the verifier's code, so a bug shared by minting and checking cannot hide.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

// wtBlock is the gateway block of most tests: admins, a 2 s rotation
// overlap, a 5 s leeway, and widget traffic under /widget/ with the claimed
// id in the default header or in a JSON body field.
const wtBlock = adminGateway + `
		identity_overlap 2s
		identity_leeway 5s
		widget {
			match /widget/*
			user_header X-Widget-User-Id
			user_json user_id
		}
`

// wtUpstream is the app behind the gateway: the demo app for sign-in and
// whoami, and under /widget/ and /echo/ an API that records what reached it
// and answers with the request headers as JSON (or, at /widget/echo-body,
// the request body byte for byte with the verdict in a response header).
type wtUpstream struct {
	demo http.Handler
	mu   sync.Mutex
	hits int
	last wtSeen
}

type wtSeen struct {
	Path   string
	Header http.Header
	Body   []byte
}

func (u *wtUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/widget/") && !strings.HasPrefix(r.URL.Path, "/echo/") {
		u.demo.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	u.hits++
	u.last = wtSeen{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	u.mu.Unlock()
	if r.URL.Path == "/widget/echo-body" {
		w.Header().Set("X-Seen-Widget-Identity", strings.Join(r.Header.Values("X-Widget-Identity"), ","))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(r.Header)
}

func (u *wtUpstream) count() int { u.mu.Lock(); defer u.mu.Unlock(); return u.hits }

func (u *wtUpstream) seen() wtSeen { u.mu.Lock(); defer u.mu.Unlock(); return u.last }

func wtStart(t *testing.T, block string) (*env, *wtUpstream) {
	t.Helper()
	up := &wtUpstream{demo: demoapp.New(optsWith(manyUsers()))}
	return startWith(t, up, block), up
}

// ---- tokens, minted by hand --------------------------------------------

var b64 = base64.RawURLEncoding

// wtMint signs header.claims with HMAC(h) under key; the header is
// marshalled as given (no defaults), so any alg can be put in it.
func wtMint(t *testing.T, header, claims map[string]any, key string, h func() hash.Hash) string {
	t.Helper()
	hj, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	head := b64.EncodeToString(hj) + "." + b64.EncodeToString(cj)
	m := hmac.New(h, []byte(key))
	m.Write([]byte(head))
	return head + "." + b64.EncodeToString(m.Sum(nil))
}

var hs256Header = map[string]any{"alg": "HS256", "typ": "JWT"}

func wtExp(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// wtCase is one widget request and what must come of it.
type wtCase struct {
	name   string
	user   string // claimed id (X-Widget-User-Id); "" for none
	auth   string // Authorization header; "" for none
	cause  string // "" = verified (or anonymous without a user)
	verify bool   // true: the token proves the claim
}

// wtCauseWords are the words the product uses for each cause (issue 5,
// "Causes, with their words", plus the two split-out causes documented in
// identity/types.go).
var wtCauseWords = map[string]string{
	"missing_token":         "missing token",
	"expired_token":         "expired token",
	"signature_mismatch":    "signature mismatch",
	"user_mismatch":         "user mismatch",
	"malformed_token":       "malformed token",
	"algorithm_not_allowed": "algorithm not allowed",
	"token_too_large":       "token too large",
	"token_not_yet_valid":   "token not yet valid",
}

// wtCases builds every kind of token for user u1 under secret.
func wtCases(t *testing.T, secret string) []wtCase {
	t.Helper()
	valid := func(c map[string]any) string { return wtMint(t, hs256Header, c, secret, sha256.New) }
	good := valid(map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})
	parts := strings.Split(good, ".")
	other := "ha_secret_" + strings.Repeat("Z", 43) // a well-formed secret that is not the workspace's
	noneHead := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload := b64.EncodeToString([]byte(fmt.Sprintf(`{"sub":"u1","exp":%d}`, wtExp(time.Hour))))
	huge := valid(map[string]any{"sub": "u1", "exp": wtExp(time.Hour), "pad": strings.Repeat("x", 4200)})
	if len(huge) <= 4096 {
		t.Fatalf("the large token is only %d bytes", len(huge))
	}
	bearer := func(tok string) string { return "Bearer " + tok }
	return []wtCase{
		{name: "valid sub", user: "u1", auth: bearer(good), verify: true},
		{name: "valid user_id claim", user: "u1", auth: bearer(valid(map[string]any{"user_id": "u1", "exp": wtExp(time.Hour)})), verify: true},
		{name: "valid integer user_id", user: "42", auth: bearer(valid(map[string]any{"user_id": 42, "exp": wtExp(time.Hour)})), verify: true},
		{name: "lower-case bearer scheme", user: "u1", auth: "bearer " + good, verify: true},
		{name: "expired inside the leeway", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "exp": wtExp(-time.Second)})), verify: true},
		{name: "missing token", user: "u1", cause: "missing_token"},
		{name: "Basic instead of Bearer", user: "u1", auth: basic("u1", "pw"), cause: "missing_token"},
		{name: "expired", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "exp": wtExp(-time.Hour)})), cause: "expired_token"},
		{name: "expired past the 5s leeway", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "exp": wtExp(-20 * time.Second)})), cause: "expired_token"},
		{name: "bad signature", user: "u1", auth: bearer(wtMint(t, hs256Header, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)}, other, sha256.New)), cause: "signature_mismatch"},
		{name: "signature of another token", user: "u1", auth: bearer(parts[0] + "." + payload + "." + parts[2]), cause: "signature_mismatch"},
		{name: "user mismatch", user: "u1", auth: bearer(valid(map[string]any{"sub": "u2", "exp": wtExp(time.Hour)})), cause: "user_mismatch"},
		{name: "user_id beats sub", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "user_id": "u2", "exp": wtExp(time.Hour)})), cause: "user_mismatch"},
		{name: "claim name in another case", user: "u1", auth: bearer(valid(map[string]any{"SUB": "u1", "exp": wtExp(time.Hour)})), cause: "malformed_token"},
		{name: "alg none", user: "u1", auth: bearer(noneHead + "." + payload + "."), cause: "algorithm_not_allowed"},
		{name: "HS512 header", user: "u1", auth: bearer(wtMint(t, map[string]any{"alg": "HS512", "typ": "JWT"}, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)}, secret, sha512.New)), cause: "algorithm_not_allowed"},
		{name: "RS256 header", user: "u1", auth: bearer(wtMint(t, map[string]any{"alg": "RS256"}, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)}, secret, sha256.New)), cause: "algorithm_not_allowed"},
		{name: "bad base64", user: "u1", auth: bearer(parts[0] + ".eyJ!!!not-base64." + parts[2]), cause: "malformed_token"},
		{name: "two parts", user: "u1", auth: bearer(parts[0] + "." + parts[1]), cause: "malformed_token"},
		{name: "four parts", user: "u1", auth: bearer(good + ".x"), cause: "malformed_token"},
		{name: "no exp", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1"})), cause: "malformed_token"},
		{name: "no subject", user: "u1", auth: bearer(valid(map[string]any{"exp": wtExp(time.Hour)})), cause: "malformed_token"},
		{name: "nbf in the future", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "nbf": wtExp(time.Hour), "exp": wtExp(2 * time.Hour)})), cause: "token_not_yet_valid"},
		{name: "iat in the future", user: "u1", auth: bearer(valid(map[string]any{"sub": "u1", "iat": wtExp(time.Hour), "exp": wtExp(2 * time.Hour)})), cause: "token_not_yet_valid"},
		{name: "too large (>4KB)", user: "u1", auth: bearer(huge), cause: "token_too_large"},
		// No claimed id: anonymous whatever the token, in every mode.
		{name: "anonymous, no token"},
		{name: "anonymous, valid token", auth: bearer(good)},
		{name: "anonymous, forged token", auth: bearer("x.y.z")},
	}
}

// ---- requests ------------------------------------------------------------

// wtSend sends one widget request with a forged verdict header in two
// spellings (which must never reach the upstream).
func wtSend(e *env, c wtCase) resp {
	e.t.Helper()
	h := map[string]string{"X-Widget-Identity": "verified", "x_widget_identity": "verified"}
	if c.user != "" {
		h["X-Widget-User-Id"] = c.user
	}
	if c.auth != "" {
		h["Authorization"] = c.auth
	}
	return e.raw("GET", "/widget/messages", "", h, nil)
}

// wtVerdict is the verdict the upstream received, failing unless there is
// exactly one copy in exactly one spelling (the gateway's).
func wtVerdict(t *testing.T, r resp) string {
	t.Helper()
	var h map[string][]string
	if err := json.Unmarshal([]byte(r.Body), &h); err != nil {
		t.Fatalf("the upstream's answer is not its headers (%d): %.300s", r.StatusCode, r.Body)
	}
	return wtVerdictIn(t, h, "x-widget-identity")
}

func wtVerdictIn(t *testing.T, h map[string][]string, name string) string {
	t.Helper()
	var got []string
	var keys []string
	for k, v := range h {
		if strings.ReplaceAll(strings.ToLower(k), "_", "-") == name {
			keys = append(keys, k)
			got = append(got, v...)
		}
	}
	switch {
	case len(got) == 0:
		return ""
	case len(got) > 1 || len(keys) > 1:
		t.Fatalf("the upstream received %s %d times as %q: %q (a client-sent copy got through)", name, len(got), keys, got)
	}
	return got[0]
}

// wtWant403 checks an Enforce refusal: 403, JSON {"error": cause, "message"}
// naming the cause in words, and nothing sent upstream.
func wtWant403(t *testing.T, what string, r resp, cause string, hitsBefore, hitsAfter int) {
	t.Helper()
	if r.StatusCode != 403 {
		t.Errorf("%s: status %d, want 403 %s: %.300s", what, r.StatusCode, cause, r.Body)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: 403 Content-Type %q, want JSON", what, ct)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Errorf("%s: 403 body is not JSON: %q", what, r.Body)
		return
	}
	if m["error"] != cause {
		t.Errorf("%s: error %v, want %q (%s)", what, m["error"], cause, r.Body)
	}
	msg, _ := m["message"].(string)
	if !strings.Contains(strings.ToLower(msg), wtCauseWords[cause]) {
		t.Errorf("%s: message %q does not name the cause in words (%q)", what, msg, wtCauseWords[cause])
	}
	if len(m) != 2 {
		t.Errorf("%s: 403 body has fields beyond error and message: %s", what, r.Body)
	}
	if hitsAfter != hitsBefore {
		t.Errorf("%s: a refused request reached the upstream", what)
	}
}

// ---- the admin API -------------------------------------------------------

type wtHealth struct {
	State         string            `json:"state"`
	Verified      uint64            `json:"verified"`
	Failures      map[string]uint64 `json:"failures"`
	FailureTotal  uint64            `json:"failure_total"`
	TopCause      string            `json:"top_cause"`
	TopCauseWords string            `json:"top_cause_words"`
	LastVerified  time.Time         `json:"last_verified"`
}

type wtStatus struct {
	Mode           string    `json:"mode"`
	HasSecret      bool      `json:"has_secret"`
	SecretCreated  time.Time `json:"secret_created"`
	PrevUntil      time.Time `json:"previous_valid_until"`
	WidgetKey      string    `json:"widget_key"`
	Health         wtHealth  `json:"health"`
	EnforceAllowed bool      `json:"enforce_allowed"`
	EnforceReason  string    `json:"enforce_reason"`
	Problem        string    `json:"problem"`
}

func wtGetStatus(t *testing.T, admin *client) wtStatus {
	t.Helper()
	r := admin.api("admin/identity", nil)
	if r.StatusCode != 200 {
		t.Fatalf("GET admin/identity: %d %s", r.StatusCode, r.Body)
	}
	var st wtStatus
	if err := json.Unmarshal([]byte(r.Body), &st); err != nil {
		t.Fatalf("GET admin/identity: %v: %s", err, r.Body)
	}
	return st
}

// wtSecret generates an identity secret through the API and checks its
// shape and that the mode became Monitor.
func wtSecret(t *testing.T, admin *client) string {
	t.Helper()
	r := admin.api("admin/identity/secret", map[string]any{})
	if r.StatusCode != 200 {
		t.Fatalf("generate secret: %d %s", r.StatusCode, r.Body)
	}
	var out struct {
		Secret string   `json:"secret"`
		Status wtStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
		t.Fatalf("generate secret: %v: %s", err, r.Body)
	}
	raw, err := b64.DecodeString(strings.TrimPrefix(out.Secret, "ha_secret_"))
	if !strings.HasPrefix(out.Secret, "ha_secret_") || err != nil || len(raw) < 32 {
		t.Fatalf("secret %q is not ha_secret_ + >= 256 bits of base64url", out.Secret)
	}
	if out.Status.Mode != "monitor" || !out.Status.HasSecret {
		t.Fatalf("after generating a secret: mode %q has_secret %v, want monitor and true", out.Status.Mode, out.Status.HasSecret)
	}
	return out.Secret
}

// wtMode posts a mode change and returns the answer.
func wtMode(admin *client, mode string) resp {
	admin.t.Helper()
	return admin.api("admin/identity/mode", map[string]string{"mode": mode})
}

func wtSetMode(t *testing.T, admin *client, mode string) {
	t.Helper()
	r := wtMode(admin, mode)
	if r.StatusCode != 200 {
		t.Fatalf("switch to %s: %d %s", mode, r.StatusCode, r.Body)
	}
	if m := r.JSON(t)["mode"]; m != mode {
		t.Fatalf("switch to %s answered mode %v", mode, m)
	}
}

// wtVerified sends one request that must be verified (and pass).
func wtVerified(t *testing.T, e *env, secret, user string) {
	t.Helper()
	tok := mintJWT(t, secret, map[string]any{"sub": user, "exp": wtExp(time.Hour)})
	r := wtSend(e, wtCase{user: user, auth: "Bearer " + tok})
	if r.StatusCode != 200 || wtVerdict(t, r) != "verified" {
		t.Fatalf("a valid token for %s: %d %.300s", user, r.StatusCode, r.Body)
	}
}

// ---- tests -----------------------------------------------------------------

// TestWidgetCausesInEveryMode: each kind of token in Enforce (403 with the
// cause), Monitor (passes, "unverified") and Off (no checks, nothing
// counted); anonymous requests pass everywhere; the client's verdict header
// never reaches the upstream.
func TestWidgetCausesInEveryMode(t *testing.T) {
	e, up := wtStart(t, wtBlock)
	_, _, admin := e.enrolled("admin")

	// Before any secret: Off. Claims pass unverified, nothing is counted.
	if st := wtGetStatus(t, admin); st.Mode != "off" || st.HasSecret || !strings.HasPrefix(st.WidgetKey, "ab_live_") {
		t.Fatalf("fresh status: mode %q has_secret %v widget_key %q", st.Mode, st.HasSecret, st.WidgetKey)
	}
	if r := wtSend(e, wtCase{user: "u1", auth: "Bearer x.y.z"}); r.StatusCode != 200 || wtVerdict(t, r) != "unverified" {
		t.Fatalf("off, no secret: %d %.300s", r.StatusCode, r.Body)
	}

	secret := wtSecret(t, admin)

	// Open the gate with verified traffic only, then Enforce.
	wtVerified(t, e, secret, "u1")
	wtSetMode(t, admin, "enforce")

	want := func(c wtCase, mode string) (status int, verdict string) {
		switch {
		case c.user == "":
			return 200, "anonymous"
		case mode == "off":
			return 200, "unverified"
		case c.verify:
			return 200, "verified"
		case mode == "enforce":
			return 403, ""
		}
		return 200, "unverified"
	}

	verifiedBefore := wtGetStatus(t, admin).Health.Verified
	for _, mode := range []string{"enforce", "monitor", "off"} {
		if mode != "enforce" {
			wtSetMode(t, admin, mode)
		}
		cases := wtCases(t, secret) // minted now: "expired inside the leeway" is time-bound
		before := wtGetStatus(t, admin).Health
		wantFail := map[string]uint64{}
		var wantVerified uint64
		// Twice each: the second time a verified token comes from the
		// cache, a failed one from the failure cache; same answers.
		for pass := 1; pass <= 2; pass++ {
			for _, c := range cases {
				what := fmt.Sprintf("%s, %s (pass %d)", mode, c.name, pass)
				hits := up.count()
				r := wtSend(e, c)
				status, verdict := want(c, mode)
				if status == 403 {
					wtWant403(t, what, r, c.cause, hits, up.count())
				} else if r.StatusCode != status {
					t.Errorf("%s: status %d, want %d: %.300s", what, r.StatusCode, status, r.Body)
				} else if got := wtVerdict(t, r); got != verdict {
					t.Errorf("%s: the upstream got X-Widget-Identity %q, want %q", what, got, verdict)
				}
				if mode != "off" && c.user != "" {
					if c.verify {
						wantVerified++
					} else {
						wantFail[c.cause]++
					}
				}
			}
		}
		// Health counted exactly what was sent (nothing in Off, nothing
		// for anonymous requests).
		after := wtGetStatus(t, admin).Health
		if d := after.Verified - before.Verified; d != wantVerified {
			t.Errorf("%s: verified count went up by %d, want %d", mode, d, wantVerified)
		}
		for cause := range wtCauseWords {
			if d := after.Failures[cause] - before.Failures[cause]; d != wantFail[cause] {
				t.Errorf("%s: failures[%s] went up by %d, want %d", mode, cause, d, wantFail[cause])
			}
		}
	}
	st := wtGetStatus(t, admin)
	if st.Health.Verified <= verifiedBefore || st.Health.LastVerified.IsZero() || time.Since(st.Health.LastVerified) > time.Minute {
		t.Errorf("health after the run: %+v", st.Health)
	}
	if st.Health.State != "warning" && st.Health.State != "failing" {
		t.Errorf("health state %q with %d failures, want warning or failing", st.Health.State, st.Health.FailureTotal)
	}
	if st.Health.TopCause == "" || st.Health.TopCauseWords != wtCauseWords[st.Health.TopCause] {
		t.Errorf("top cause %q in words %q", st.Health.TopCause, st.Health.TopCauseWords)
	}
	// The secret is shown once: never in the status nor on the page.
	if r := admin.api("admin/identity", nil); strings.Contains(r.Body, secret) {
		t.Errorf("GET admin/identity shows the secret")
	}
	if r := admin.get("/_mfa/admin"); r.StatusCode != 200 || strings.Contains(r.Body, secret) {
		t.Errorf("the admin page (%d) shows the secret after it was generated", r.StatusCode)
	}
}

// TestWidgetVerdictHeaderStripped: a client-sent verdict header, in any
// spelling, never reaches the upstream, on widget requests in every mode
// and on other requests; the configured verdict header name is honoured.
func TestWidgetVerdictHeaderStripped(t *testing.T) {
	block := adminGateway + `
		widget {
			match /widget/*
			user_query uid
			token_header X-Widget-Token
			token_query jwt
			verdict_header X-Identity-Verdict
		}
`
	e, _ := wtStart(t, block)
	_, _, admin := e.enrolled("admin")
	forged := map[string]string{
		"X-Identity-Verdict": "verified", "x_identity_verdict": "verified", "X-IDENTITY-VERDICT": "verified",
		"X-Widget-Identity": "verified",
	}
	send := func(path string, extra map[string]string) resp {
		h := map[string]string{}
		for k, v := range forged {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return e.raw("GET", path, "", h, nil)
	}
	check := func(what, path string, extra map[string]string, want string) {
		t.Helper()
		r := send(path, extra)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %.300s", what, r.StatusCode, r.Body)
		}
		var h map[string][]string
		if err := json.Unmarshal([]byte(r.Body), &h); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := wtVerdictIn(t, h, "x-identity-verdict"); got != want {
			t.Errorf("%s: the upstream got X-Identity-Verdict %q, want %q", what, got, want)
		}
	}
	check("off, not a widget path", "/echo/x", nil, "")
	check("off, anonymous", "/widget/m", nil, "anonymous")
	check("off, claimed", "/widget/m?uid=u1", nil, "unverified")

	secret := wtSecret(t, admin)
	tok := mintJWT(t, secret, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})
	check("monitor, token in the configured header", "/widget/m?uid=u1", map[string]string{"X-Widget-Token": tok}, "verified")
	check("monitor, token in the query", "/widget/m?uid=u1&jwt="+tok, nil, "verified")
	check("monitor, Authorization is not the token header here", "/widget/m?uid=u1", map[string]string{"Authorization": "Bearer " + tok}, "unverified")
	check("monitor, wrong user", "/widget/m?uid=u2&jwt="+tok, nil, "unverified")
	check("monitor, anonymous", "/widget/m", nil, "anonymous")
	check("monitor, not a widget path", "/echo/x?uid=u1&jwt="+tok, nil, "")

	// Enforce: the gate has a failure (wrong user, above): refused.
	apiErr(t, wtMode(admin, "enforce"), 409, "enforce_gate")
}

// TestWidgetEnforceGate: Enforce is refused (409 with a reason) without a
// secret, without verified traffic and after a failure; allowed after
// verified traffic only; Off and Monitor are always allowed.
func TestWidgetEnforceGate(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		e, _ := wtStart(t, wtBlock)
		_, _, admin := e.enrolled("admin")

		apiErr(t, wtMode(admin, "enforce"), 409, "no_secret")
		apiErr(t, wtMode(admin, "monitor"), 409, "no_secret")
		apiErr(t, wtMode(admin, "sometimes"), 400, "bad_mode")
		apiErr(t, admin.api("admin/identity/mode", map[string]any{"mode": 2}), 400, "")
		wtSetMode(t, admin, "off")

		secret := wtSecret(t, admin)
		// No traffic at all.
		r := wtMode(admin, "enforce")
		apiErr(t, r, 409, "enforce_gate")
		if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "no verified request") {
			t.Errorf("the gate's message without traffic is %q, want the reason (no verified request)", msg)
		}
		if st := wtGetStatus(t, admin); st.EnforceAllowed || !strings.Contains(st.EnforceReason, "no verified request") || st.Mode != "monitor" {
			t.Errorf("status without traffic: mode %q enforce_allowed %v reason %q", st.Mode, st.EnforceAllowed, st.EnforceReason)
		}
		// Anonymous traffic is not verified traffic.
		wtSend(e, wtCase{})
		apiErr(t, wtMode(admin, "enforce"), 409, "enforce_gate")

		// Verified traffic, then one failure.
		wtVerified(t, e, secret, "u1")
		wtVerified(t, e, secret, "u2")
		exp := mintJWT(t, secret, map[string]any{"sub": "u3", "exp": wtExp(-time.Hour)})
		if r := wtSend(e, wtCase{user: "u3", auth: "Bearer " + exp}); r.StatusCode != 200 || wtVerdict(t, r) != "unverified" {
			t.Fatalf("expired token in monitor: %d %.300s", r.StatusCode, r.Body)
		}
		r = wtMode(admin, "enforce")
		apiErr(t, r, 409, "enforce_gate")
		if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "1 failure") || !strings.Contains(msg, "expired token") {
			t.Errorf("the gate's message after a failure is %q, want the count and the cause in words", msg)
		}
		st := wtGetStatus(t, admin)
		if st.EnforceAllowed || st.Mode != "monitor" || st.Health.State != "warning" || st.Health.Verified != 2 ||
			st.Health.Failures["expired_token"] != 1 || st.Health.TopCauseWords != "expired token" {
			t.Errorf("status after a failure: %+v", st)
		}
		// Off and Monitor are always allowed.
		wtSetMode(t, admin, "off")
		wtSetMode(t, admin, "monitor")
		// More verified traffic does not wash the failure out of the window.
		for i := 0; i < 5; i++ {
			wtVerified(t, e, secret, "u1")
		}
		apiErr(t, wtMode(admin, "enforce"), 409, "enforce_gate")
	})

	t.Run("allowed", func(t *testing.T) {
		e, up := wtStart(t, wtBlock) // a fresh database: no failure ever recorded
		_, _, admin := e.enrolled("admin")
		secret := wtSecret(t, admin)
		wtVerified(t, e, secret, "u1")
		st := wtGetStatus(t, admin)
		if !st.EnforceAllowed || st.EnforceReason != "" || st.Health.State != "healthy" || st.Health.LastVerified.IsZero() {
			t.Fatalf("status after verified traffic only: %+v", st)
		}
		wtSetMode(t, admin, "enforce")
		if st := wtGetStatus(t, admin); st.Mode != "enforce" {
			t.Fatalf("mode after enforce: %q", st.Mode)
		}
		// Setting the current mode again is fine.
		wtSetMode(t, admin, "enforce")
		hits := up.count()
		wtWant403(t, "enforce, no token", wtSend(e, wtCase{user: "u1"}), "missing_token", hits, up.count())
		wtVerified(t, e, secret, "u1")
		// Health degrades: the page warns (enforce_allowed false) but
		// Enforce stays on.
		if st := wtGetStatus(t, admin); st.Mode != "enforce" || st.EnforceAllowed || st.Health.Failures["missing_token"] != 1 {
			t.Errorf("status in enforce after a failure: %+v", st)
		}
		// Monitor is always allowed; back to Enforce is now gated.
		wtSetMode(t, admin, "monitor")
		apiErr(t, wtMode(admin, "enforce"), 409, "enforce_gate")
	})

	t.Run("new secret leaves enforce", func(t *testing.T) {
		e, _ := wtStart(t, wtBlock)
		_, _, admin := e.enrolled("admin")
		secret := wtSecret(t, admin)
		wtVerified(t, e, secret, "u1")
		wtSetMode(t, admin, "enforce")
		wtSecret(t, admin) // checks the mode is monitor again
		if st := wtGetStatus(t, admin); st.Mode != "monitor" {
			t.Fatalf("mode after a new secret in enforce: %q", st.Mode)
		}
	})
}

// TestWidgetRotationOverlap: after a rotation the previous secret keeps
// working for identity_overlap (2 s here), then stops; the new one works at
// once; a second rotation inside the window retires the oldest at once.
func TestWidgetRotationOverlap(t *testing.T) {
	e, _ := wtStart(t, wtBlock)
	_, _, admin := e.enrolled("admin")
	s1 := wtSecret(t, admin)
	old := mintJWT(t, s1, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})
	verdict := func(tok string) string {
		t.Helper()
		r := wtSend(e, wtCase{user: "u1", auth: "Bearer " + tok})
		if r.StatusCode != 200 {
			t.Fatalf("monitor answered %d: %.300s", r.StatusCode, r.Body)
		}
		return wtVerdict(t, r)
	}
	if v := verdict(old); v != "verified" {
		t.Fatalf("token of the first secret before rotation: %q", v)
	}

	rotated := time.Now()
	s2 := wtSecret(t, admin)
	if s2 == s1 {
		t.Fatal("rotation returned the same secret")
	}
	st := wtGetStatus(t, admin)
	if st.PrevUntil.IsZero() || st.PrevUntil.Before(rotated.Add(time.Second)) || st.PrevUntil.After(rotated.Add(3*time.Second)) {
		t.Fatalf("previous_valid_until %v, want about %v (rotation + 2s)", st.PrevUntil, rotated.Add(2*time.Second))
	}
	fresh := mintJWT(t, s2, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})
	oldUncached := mintJWT(t, s1, map[string]any{"sub": "u1", "exp": wtExp(time.Hour), "jti": "second"})
	if v := verdict(old); v != "verified" {
		t.Errorf("old-secret token right after rotation: %q, want verified (overlap)", v)
	}
	if v := verdict(oldUncached); v != "verified" {
		t.Errorf("another old-secret token right after rotation: %q, want verified (overlap)", v)
	}
	if v := verdict(fresh); v != "verified" {
		t.Errorf("new-secret token: %q, want verified", v)
	}
	// The admin page says when the old secret stops working.
	if r := admin.get("/_mfa/admin"); !strings.Contains(r.Body, "The previous secret keeps working until") {
		t.Errorf("the admin page does not say when the previous secret stops working")
	}

	// Past the window (bounded sleep).
	wait := time.Until(st.PrevUntil) + 500*time.Millisecond
	if wait > 3*time.Second {
		t.Fatalf("would sleep %v", wait)
	}
	time.Sleep(wait)
	if v := verdict(old); v != "unverified" {
		t.Errorf("cached old-secret token after the window: %q, want unverified", v)
	}
	oldLate := mintJWT(t, s1, map[string]any{"sub": "u1", "exp": wtExp(time.Hour), "jti": "late"})
	if v := verdict(oldLate); v != "unverified" {
		t.Errorf("fresh old-secret token after the window: %q, want unverified", v)
	}
	if v := verdict(fresh); v != "verified" {
		t.Errorf("new-secret token after the window: %q, want verified", v)
	}
	st = wtGetStatus(t, admin)
	if !st.PrevUntil.IsZero() {
		t.Errorf("previous_valid_until still %v after the window", st.PrevUntil)
	}
	if st.Health.Failures["signature_mismatch"] != 2 {
		t.Errorf("old-secret tokens after the window counted as %v, want 2 signature_mismatch", st.Health.Failures)
	}

	// Two rotations inside one window: only the last replaced secret is kept.
	s3 := wtSecret(t, admin)
	t2 := mintJWT(t, s2, map[string]any{"sub": "u1", "exp": wtExp(time.Hour), "jti": "t2"})
	if v := verdict(t2); v != "verified" {
		t.Errorf("second secret inside its overlap: %q", v)
	}
	s4 := wtSecret(t, admin)
	t2b := mintJWT(t, s2, map[string]any{"sub": "u1", "exp": wtExp(time.Hour), "jti": "t2b"})
	if v := verdict(t2b); v != "unverified" {
		t.Errorf("a secret replaced twice inside the window: %q, want unverified at once", v)
	}
	if v := verdict(mintJWT(t, s3, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})); v != "verified" {
		t.Errorf("the previous secret after the second rotation: %q", v)
	}
	if v := verdict(mintJWT(t, s4, map[string]any{"sub": "u1", "exp": wtExp(time.Hour)})); v != "verified" {
		t.Errorf("the current secret: %q", v)
	}
}

// TestWidgetJSONBodyUser: the claimed id in a JSON body field is verified,
// and the body reaches the upstream byte for byte; a body over 64 KB is
// refused (413); duplicate keys are never verified.
func TestWidgetJSONBodyUser(t *testing.T) {
	e, up := wtStart(t, wtBlock)
	_, _, admin := e.enrolled("admin")
	secret := wtSecret(t, admin)
	tokFor := func(user string) string {
		return "Bearer " + mintJWT(t, secret, map[string]any{"sub": user, "exp": wtExp(time.Hour)})
	}
	post := func(body io.Reader, ctype, auth string) resp {
		t.Helper()
		h := map[string]string{"Content-Type": ctype, "X-Widget-Identity": "verified"}
		if auth != "" {
			h["Authorization"] = auth
		}
		return e.raw("POST", "/widget/echo-body", "", h, body)
	}
	intact := func(what string, r resp, body []byte, verdict string) {
		t.Helper()
		if r.StatusCode != 200 {
			t.Errorf("%s: %d %.300s", what, r.StatusCode, r.Body)
			return
		}
		if got := r.Header.Get("X-Seen-Widget-Identity"); got != verdict {
			t.Errorf("%s: the upstream got verdict %q, want %q", what, got, verdict)
		}
		if seen := up.seen().Body; !bytes.Equal(seen, body) {
			t.Errorf("%s: the upstream got a %d-byte body, want the %d bytes sent unchanged", what, len(seen), len(body))
		}
		if r.Body != string(body) {
			t.Errorf("%s: the echoed body differs from the one sent", what)
		}
	}

	body := []byte("{ \"text\" : \"h\\u00e9llo \u00e9\\n\",\n\t\"user_id\":\"u7\", \"n\": 1.50e0, \"nested\": {\"user_id\": \"x\"}, \"list\": [1,2,3]}  \n")
	intact("valid token, JSON body", post(bytes.NewReader(body), "application/json", tokFor("u7")), body, "verified")
	intact("charset in Content-Type", post(bytes.NewReader(body), "application/json; charset=utf-8", tokFor("u7")), body, "verified")
	// Chunked (no Content-Length): io.Reader that is not a bytes.Reader.
	intact("chunked body", post(io.MultiReader(bytes.NewReader(body)), "application/json", tokFor("u7")), body, "verified")
	intact("token for another user", post(bytes.NewReader(body), "application/json", tokFor("u8")), body, "unverified")
	intact("no token", post(bytes.NewReader(body), "application/json", ""), body, "unverified")
	// Widget SDKs send JSON as text/plain to avoid a CORS preflight; the
	// app parses it anyway, so the gateway must read the claim too.
	intact("text/plain JSON, valid token", post(bytes.NewReader(body), "text/plain;charset=UTF-8", tokFor("u7")), body, "verified")
	intact("text/plain JSON, no token", post(bytes.NewReader(body), "text/plain;charset=UTF-8", ""), body, "unverified")
	num := []byte(`{"user_id": 1234, "x": true}`)
	intact("numeric id", post(bytes.NewReader(num), "application/json", tokFor("1234")), num, "verified")
	noID := []byte(`{"text":"hi"}`)
	intact("no id in the body", post(bytes.NewReader(noID), "application/json", ""), noID, "anonymous")

	// Exactly 64 KB is read; one byte more is refused before the upstream.
	limit := 64 << 10
	mk := func(n int) []byte {
		head := `{"user_id":"u7","pad":"`
		tail := `"}`
		return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	}
	atLimit := mk(limit)
	intact("64 KB body", post(bytes.NewReader(atLimit), "application/json", tokFor("u7")), atLimit, "verified")
	hits := up.count()
	r := post(bytes.NewReader(mk(limit+1)), "application/json", tokFor("u7"))
	apiErr(t, r, 413, "")
	r = post(bytes.NewReader(mk(200<<10)), "application/json", tokFor("u7"))
	apiErr(t, r, 413, "")
	if up.count() != hits {
		t.Errorf("a body over 64 KB reached the upstream")
	}
	// A JSON body is read even when the header claims the id: the body may
	// claim another, which the app may read instead. Too big to read is
	// refused, whatever the header says.
	big := mk(200 << 10)
	hits = up.count()
	rh := e.raw("POST", "/widget/echo-body", "", map[string]string{"Content-Type": "application/json",
		"X-Widget-User-Id": "u7", "Authorization": tokFor("u7")}, bytes.NewReader(big))
	apiErr(t, rh, 413, "")
	if up.count() != hits {
		t.Errorf("a body over 64 KB with the id in the header reached the upstream")
	}

	// Duplicate keys: ambiguous, never verified, whichever user the token names.
	dups := [][]byte{
		[]byte(`{"user_id":"a","USER_ID":"b"}`),
		[]byte(`{"user_id":"a","user_id":"b"}`),
		[]byte(`{"User_Id":"b","user_id":"a"}`),
		// U+017F (long s) folds to "s" in Go's encoding/json (and in
		// strings.EqualFold): a Go app decoding into a `json:"user_id"`
		// field reads "b" from this body, the last match.
		[]byte(`{"user_id":"a","uſer_id":"b"}`),
	}
	for _, d := range dups {
		for _, u := range []string{"a", "b"} {
			intact(fmt.Sprintf("BUG if verified: duplicate keys %s, token for %s (an app's decoder may read the other value)", d, u),
				post(bytes.NewReader(d), "application/json", tokFor(u)), d, "unverified")
		}
	}

	// Enforce: open the gate in a fresh database... this one has failures,
	// so check the refusals on a second environment.
	e2, up2 := wtStart(t, wtBlock)
	_, _, admin2 := e2.enrolled("admin")
	secret2 := wtSecret(t, admin2)
	wtVerified(t, e2, secret2, "u1")
	wtSetMode(t, admin2, "enforce")
	tok2 := "Bearer " + mintJWT(t, secret2, map[string]any{"sub": "a", "exp": wtExp(time.Hour)})
	ok := []byte(`{"user_id":"a","text":"hello"}`)
	r = e2.raw("POST", "/widget/echo-body", "", map[string]string{"Content-Type": "application/json", "Authorization": tok2}, bytes.NewReader(ok))
	if r.StatusCode != 200 || r.Body != string(ok) || r.Header.Get("X-Seen-Widget-Identity") != "verified" {
		t.Errorf("enforce, valid body claim: %d %q verdict %q", r.StatusCode, r.Body, r.Header.Get("X-Seen-Widget-Identity"))
	}
	hits = up2.count()
	r = e2.raw("POST", "/widget/echo-body", "", map[string]string{"Content-Type": "text/plain"}, bytes.NewReader(ok))
	if r.StatusCode != 403 || up2.count() != hits {
		t.Errorf("enforce, text/plain JSON claim without a token: %d %.200s, want 403 and nothing upstream", r.StatusCode, r.Body)
	}
	for _, d := range dups {
		hits := up2.count()
		r := e2.raw("POST", "/widget/echo-body", "", map[string]string{"Content-Type": "application/json", "Authorization": tok2}, bytes.NewReader(d))
		if r.StatusCode != 403 || up2.count() != hits {
			t.Errorf("enforce, duplicate keys %s: %d %.200s, want 403 and nothing upstream", d, r.StatusCode, r.Body)
		}
	}
	// A claim header given twice, or in the header and the body at once:
	// the token proves one copy, the app may read the other. Refused in
	// Enforce. (Caddy itself drops headers spelled with '_'.)
	t.Run("duplicated claims", func(t *testing.T) {
		dupReqs := map[string]func() *http.Request{
			"two header values": func() *http.Request {
				req, _ := http.NewRequest("GET", e2.Base+"/widget/echo-body", nil)
				req.Header.Add("X-Widget-User-Id", "a")
				req.Header.Add("X-Widget-User-Id", "b")
				return req
			},
			"header and body": func() *http.Request {
				req, _ := http.NewRequest("POST", e2.Base+"/widget/echo-body", strings.NewReader(`{"user_id":"b"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Widget-User-Id", "a")
				return req
			},
		}
		for name, mk := range dupReqs {
			req := mk()
			req.Header.Set("Authorization", tok2)
			hits := up2.count()
			if r := e2.rawReq(req); r.StatusCode != 403 || up2.count() != hits {
				t.Errorf("%s, token for a: %d %.200s, want 403 and nothing upstream", name, r.StatusCode, r.Body)
			}
		}
		req, _ := http.NewRequest("GET", e2.Base+"/widget/echo-body", nil)
		req.Header.Add("X-Widget-User-Id", "a")
		req.Header.Add("X-Widget-User-Id", "a")
		req.Header.Set("Authorization", tok2)
		if r := e2.rawReq(req); r.StatusCode != 200 {
			t.Errorf("the same claim twice: %d %.200s, want 200", r.StatusCode, r.Body)
		}
	})
	// Spellings of the claim that an app's JSON decoder may read as user_id
	// (Go's encoding/json matches field names case-insensitively; streaming
	// decoders stop after the first value) must not pass Enforce as
	// "anonymous" without a token.
	t.Run("lenient app parsers", func(t *testing.T) {
		for _, d := range [][]byte{
			[]byte(`{"USER_ID":"victim"}`),
			[]byte(`{"uſer_id":"victim"}`),
			[]byte(`{"user_id":"victim"} trailing`),
		} {
			hits := up2.count()
			r := e2.raw("POST", "/widget/echo-body", "", map[string]string{"Content-Type": "application/json"}, bytes.NewReader(d))
			if r.StatusCode == 200 {
				t.Errorf("BUG: enforce, body %s without a token passed as %q (the app may read user_id=victim); want 403",
					d, r.Header.Get("X-Seen-Widget-Identity"))
			} else if up2.count() != hits {
				t.Errorf("enforce, body %s: refused (%d) but reached the upstream", d, r.StatusCode)
			}
		}
	})
}

// TestWidgetStateSurvivesReloadAndRestart: health counts (verified,
// failures per cause, last verified), the mode and the secret are the same
// after a config reload and after a restart.
func TestWidgetStateSurvivesReloadAndRestart(t *testing.T) {
	e, _ := wtStart(t, wtBlock)
	_, _, admin := e.enrolled("admin")
	secret := wtSecret(t, admin)
	for i := 0; i < 3; i++ {
		wtVerified(t, e, secret, fmt.Sprintf("u%d", i))
	}
	wtSetMode(t, admin, "enforce")
	for i := 0; i < 2; i++ {
		if r := wtSend(e, wtCase{user: "u1"}); r.StatusCode != 403 {
			t.Fatalf("enforce, no token: %d", r.StatusCode)
		}
	}
	bad := mintJWT(t, secret, map[string]any{"sub": "u1", "exp": wtExp(-time.Hour)})
	wtSend(e, wtCase{user: "u1", auth: "Bearer " + bad})
	before := wtGetStatus(t, admin)
	if before.Health.Verified != 3 || before.Health.Failures["missing_token"] != 2 || before.Health.Failures["expired_token"] != 1 {
		t.Fatalf("health before the reload: %+v", before.Health)
	}
	same := func(what string, got wtStatus, verified, missing, expired uint64) {
		t.Helper()
		h := got.Health
		if h.Verified != verified || h.Failures["missing_token"] != missing || h.Failures["expired_token"] != expired || h.FailureTotal != missing+expired {
			t.Errorf("%s: verified %d, failures %v; want %d verified, %d missing_token, %d expired_token", what, h.Verified, h.Failures, verified, missing, expired)
		}
		if h.LastVerified.IsZero() || h.LastVerified.Before(before.Health.LastVerified) {
			t.Errorf("%s: last verified %v, was %v", what, h.LastVerified, before.Health.LastVerified)
		}
		if got.Mode != "enforce" || !got.HasSecret || !got.SecretCreated.Equal(before.SecretCreated) || got.WidgetKey != before.WidgetKey {
			t.Errorf("%s: mode %q has_secret %v created %v key %q; was enforce, true, %v, %q", what,
				got.Mode, got.HasSecret, got.SecretCreated, got.WidgetKey, before.SecretCreated, before.WidgetKey)
		}
	}

	// Reload with a changed block (an extra source for the claimed id).
	changed := strings.Replace(wtBlock, "user_json user_id", "user_json user_id\n\t\t\tuser_query uid", 1)
	e.load(changed)
	same("after reload", wtGetStatus(t, admin), 3, 2, 1)
	// The changed block is in force, and so is Enforce.
	if r := e.raw("GET", "/widget/m?uid=u9", "", nil, nil); r.StatusCode != 403 {
		t.Errorf("after reload, a query claim without a token: %d, want 403", r.StatusCode)
	}
	wtVerified(t, e, secret, "u1")
	same("after reload and more traffic", wtGetStatus(t, admin), 4, 3, 1)

	// Restart: stop Caddy (closing the store) and start it again.
	stopCaddy(t)
	e.load(changed)
	after := wtGetStatus(t, admin)
	same("after restart", after, 4, 3, 1)
	if after.Health.LastVerified.IsZero() {
		t.Errorf("last verified lost across the restart")
	}
	// The secret survived: a token minted with it still verifies; Enforce
	// still refuses.
	wtVerified(t, e, secret, "u5")
	if r := wtSend(e, wtCase{user: "u5"}); r.StatusCode != 403 {
		t.Errorf("after restart, enforce let a claim without a token through: %d", r.StatusCode)
	}
	same("after restart and more traffic", wtGetStatus(t, admin), 5, 4, 1)

	// Mode Off survives a restart too.
	wtSetMode(t, admin, "off")
	stopCaddy(t)
	e.load(changed)
	if st := wtGetStatus(t, admin); st.Mode != "off" || !st.HasSecret || st.Health.Verified != 5 {
		t.Errorf("after a restart in off: mode %q has_secret %v verified %d", st.Mode, st.HasSecret, st.Health.Verified)
	}
}

// TestWidgetIdentityAPIAccess: the identity API is for admins at AAL2.
func TestWidgetIdentityAPIAccess(t *testing.T) {
	e, _ := wtStart(t, wtBlock)
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	dave := e.newClient() // an admin without 2FA: AAL1
	dave.signIn("dave", "dave-password")
	anon := e.newClient()
	for _, c := range []struct {
		who    *client
		status int
		code   string
	}{{bob, 403, "not_admin"}, {dave, 403, "aal2_required"}, {anon, 401, "no_session"}} {
		apiErr(t, c.who.api("admin/identity", nil), c.status, c.code)
		apiErr(t, c.who.api("admin/identity/secret", map[string]any{}), c.status, c.code)
		apiErr(t, c.who.api("admin/identity/mode", map[string]string{"mode": "off"}), c.status, c.code)
	}
	_, _, admin := e.enrolled("admin")
	if st := wtGetStatus(t, admin); st.HasSecret || st.Mode != "off" {
		t.Fatalf("a refused call changed the state: %+v", st)
	}
	// An enrolled non-admin is still not an admin.
	_, _, carol := e.enrolled("carol")
	apiErr(t, carol.api("admin/identity/secret", map[string]any{}), 403, "not_admin")
}
