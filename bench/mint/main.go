// Command mint prepares a running mfa_gateway for bench/widget_load.sh and
// mints the widget identity tokens the load run sends.
//
//	go run ./bench/mint -base http://127.0.0.1:PORT -n 400000 -out tokens.txt
//
// Through the gateway's own pages and API, as an admin would: it signs the
// admin in (demo app form), turns TOTP on (enrol, confirm with a code it
// computes, acknowledge the recovery codes), generates the identity secret
// (the mode becomes Monitor), sends one verified widget request so the
// enforce gate opens, switches to Enforce, checks that Enforce refuses a
// token for another user and a missing token (403 with the cause), then
// writes n distinct tokens for the widget user, one a line, and prints
//
//	secret=ha_secret_…
//	user=<widget user>
//	reuse_token=<a token for the reuse case, not in the file>
//	tokens=<n>
//
// The tokens are HS256 JWTs signed by hand here (HMAC-SHA256 over base64url
// segments), not with the gateway's verifier. Loopback only.
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(1)
	}
}

type cfg struct {
	base       string
	admin      string
	password   string
	widgetPath string
	user       string
	n          int
	out        string
	ttl        time.Duration
}

func run() error {
	var c cfg
	flag.StringVar(&c.base, "base", "", "the gateway's base `URL` (http://127.0.0.1:port)")
	flag.StringVar(&c.admin, "admin", "admin", "admin user of the demo app")
	flag.StringVar(&c.password, "password", "admin-password", "the admin's password")
	flag.StringVar(&c.widgetPath, "widget-path", "/healthz", "a path the gateway's widget block matches")
	flag.StringVar(&c.user, "user", "widget-user-8f3a2c", "the claimed widget user id")
	flag.IntVar(&c.n, "n", 100000, "tokens to write")
	flag.StringVar(&c.out, "out", "", "tokens `file` (one a line)")
	flag.DurationVar(&c.ttl, "ttl", 2*time.Hour, "token lifetime")
	flag.Parse()
	if c.base == "" || c.out == "" || c.n < 1 {
		return errors.New("-base, -out and -n >= 1 are required")
	}
	u, err := url.Parse(c.base)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-base %q: want http://127.0.0.1:port", c.base)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-base %q is not a loopback address", c.base)
	}

	s := newSession(c.base)
	secret, err := s.setup(c)
	if err != nil {
		return err
	}
	if err := writeTokens(c, secret); err != nil {
		return err
	}
	reuse := mintToken(secret, c.user, time.Now(), c.ttl, "reuse")
	fmt.Printf("secret=%s\nuser=%s\nreuse_token=%s\ntokens=%d\n", secret, c.user, reuse, c.n)
	return nil
}

// ---- the gateway, as an admin uses it ----------------------------------

type session struct {
	base string
	hc   *http.Client
}

func newSession(base string) *session {
	jar, _ := cookiejar.New(nil)
	return &session{base: base, hc: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (s *session) do(method, path string, body io.Reader, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, b, err
}

// api POSTs v as JSON (GETs when v is nil) to the gateway's API and
// decodes a 200 answer into out.
func (s *session) api(path string, v any, out any) error {
	method, rdr := http.MethodGet, io.Reader(nil)
	hdr := map[string]string{}
	if v != nil {
		b, _ := json.Marshal(v)
		method, rdr = http.MethodPost, bytes.NewReader(b)
		hdr["Content-Type"] = "application/json"
	}
	code, b, err := s.do(method, "/_mfa/api/v1/"+path, rdr, hdr)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: %w: %s", path, err, b)
		}
	}
	return nil
}

func (s *session) setup(c cfg) (string, error) {
	// Sign in through the demo app's form.
	if _, _, err := s.do("GET", "/login", nil, nil); err != nil {
		return "", fmt.Errorf("GET /login: %w", err)
	}
	form := url.Values{"username": {c.admin}, "password": {c.password}}
	code, b, err := s.do("POST", "/login", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if err != nil || code != http.StatusSeeOther {
		return "", fmt.Errorf("sign-in of %s: %d %v %s", c.admin, code, err, b)
	}

	// TOTP on: enrol, confirm with the current code, acknowledge the codes.
	var enrol struct {
		Secret string `json:"secret"`
	}
	if err := s.api("totp/enroll", map[string]any{}, &enrol); err != nil {
		return "", fmt.Errorf("enrol (a fresh database is needed): %w", err)
	}
	otp, err := totp.GenerateCode(enrol.Secret, time.Now())
	if err != nil {
		return "", err
	}
	if err := s.api("totp/confirm", map[string]string{"code": otp}, nil); err != nil {
		return "", err
	}
	if err := s.api("recovery-codes/acknowledge", map[string]any{}, nil); err != nil {
		return "", err
	}

	// The identity secret: Monitor.
	var gen struct {
		Secret string `json:"secret"`
		Status struct {
			Mode string `json:"mode"`
		} `json:"status"`
	}
	if err := s.api("admin/identity/secret", map[string]any{}, &gen); err != nil {
		return "", err
	}
	if !strings.HasPrefix(gen.Secret, "ha_secret_") || gen.Status.Mode != "monitor" {
		return "", fmt.Errorf("generated secret %q, mode %q", gen.Secret, gen.Status.Mode)
	}
	secret := gen.Secret

	// One verified request opens the gate.
	tok := mintToken(secret, c.user, time.Now(), c.ttl, "gate")
	if code, b, err := s.widget(c, tok, c.user); err != nil || code != http.StatusOK {
		return "", fmt.Errorf("verified widget request: %d %v %s", code, err, b)
	}
	var st struct {
		Mode   string `json:"mode"`
		Health struct {
			Verified     uint64 `json:"verified"`
			FailureTotal uint64 `json:"failure_total"`
		} `json:"health"`
		EnforceAllowed bool   `json:"enforce_allowed"`
		EnforceReason  string `json:"enforce_reason"`
	}
	if err := s.api("admin/identity", nil, &st); err != nil {
		return "", err
	}
	if st.Health.Verified < 1 || st.Health.FailureTotal != 0 || !st.EnforceAllowed {
		return "", fmt.Errorf("the gate did not open: verified %d, failures %d, reason %q",
			st.Health.Verified, st.Health.FailureTotal, st.EnforceReason)
	}
	if err := s.api("admin/identity/mode", map[string]string{"mode": "enforce"}, &st); err != nil {
		return "", err
	}
	if st.Mode != "enforce" {
		return "", fmt.Errorf("mode %q after switching to enforce", st.Mode)
	}

	// Enforce is in force: a token for someone else and no token are 403.
	for _, tc := range []struct{ tok, cause string }{
		{mintToken(secret, c.user+"-other", time.Now(), c.ttl, "other"), "user_mismatch"},
		{"", "missing_token"},
	} {
		code, b, err := s.widget(c, tc.tok, c.user)
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if err != nil || code != http.StatusForbidden || e.Error != tc.cause {
			return "", fmt.Errorf("enforce check (%s): %d %v %s", tc.cause, code, err, b)
		}
	}
	// And the verified request still passes.
	if code, b, err := s.widget(c, tok, c.user); err != nil || code != http.StatusOK {
		return "", fmt.Errorf("verified widget request in enforce: %d %v %s", code, err, b)
	}
	return secret, nil
}

// widget sends one widget request without the admin's cookies.
func (s *session) widget(c cfg, token, user string) (int, []byte, error) {
	req, err := http.NewRequest("GET", s.base+c.widgetPath, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Widget-User-Id", user)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, b, err
}

// ---- tokens ------------------------------------------------------------

var enc = base64.RawURLEncoding

var headerSeg = enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// mintToken is an HS256 JWT: sub, iat, exp and a jti that makes it unique.
func mintToken(secret, user string, now time.Time, ttl time.Duration, jti string) string {
	p, _ := json.Marshal(map[string]any{"sub": user, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": jti})
	head := headerSeg + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(head))
	return head + "." + enc.EncodeToString(m.Sum(nil))
}

func writeTokens(c cfg, secret string) error {
	f, err := os.Create(c.out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	for i := range c.n {
		w.WriteString(mintToken(secret, c.user, now, c.ttl, "t"+strconv.FormatInt(int64(i), 36)))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
