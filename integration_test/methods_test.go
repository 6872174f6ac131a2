package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfagate/mfagate/internal/smtpsink"
	"github.com/mfagate/mfagate/sms"
)

// smsSink is an SMS webhook on loopback that checks each request's
// signature and keeps the messages.
type smsSink struct {
	*httptest.Server
	t      *testing.T
	secret string
	mu     sync.Mutex
	msgs   []map[string]string
}

func newSMSSink(t *testing.T, secret string) *smsSink {
	s := &smsSink{t: t, secret: secret}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ts, sig string
		for _, part := range strings.Split(r.Header.Get(sms.SignatureHeader), ",") {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "t":
				ts = v
			case "v1":
				sig = v
			}
		}
		if sig == "" || sig != sms.Sign(secret, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]string
		if json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

var codeRe = regexp.MustCompile(`\b\d{6}\b`)

// waitCode waits for the n-th text message and returns its number and code.
func (s *smsSink) waitCode(n int) (to, code string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		if len(s.msgs) >= n {
			m := s.msgs[n-1]
			s.mu.Unlock()
			return m["to"], codeRe.FindString(m["body"])
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no text message %d", n)
	return "", ""
}

func (s *smsSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// mailCode waits for the n-th email and returns its recipient and code.
func mailCode(t *testing.T, sink *smtpsink.Sink, n int) (to, code string) {
	t.Helper()
	msgs, err := sink.WaitFor(n, 10*time.Second)
	if err != nil {
		t.Fatalf("email %d: %v", n, err)
	}
	m := msgs[n-1]
	return m.To[0], codeRe.FindString(m.Text)
}

// methodsStack is the demo app behind the gateway with email (to an SMTP
// sink) and text messages (to a webhook sink) configured.
func methodsStack(t *testing.T, extra string) (*env, *smtpsink.Sink, *smsSink) {
	t.Helper()
	mailSink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mailSink.Close() })
	texts := newSMSSink(t, "webhook-secret")
	t.Setenv("MFA_TEST_SMS_SECRET", "webhook-secret")
	block := defaultGateway + fmt.Sprintf(`
		smtp {
			host 127.0.0.1
			port %d
			security none
			from "Demo security <security@example.com>"
		}
		sms {
			webhook %s/send
			secret {env.MFA_TEST_SMS_SECRET}
		}
%s`, mailSink.Port(), texts.URL, extra)
	return start(t, optsWith(manyUsers()), block), mailSink, texts
}

// TestEmailAndSMSMethods: a user with no authenticator app enrols email as
// the first method, adds SMS, makes it primary, signs in with a texted code
// and, with "use a different method", with an emailed one.
func TestEmailAndSMSMethods(t *testing.T) {
	e, mailSink, texts := methodsStack(t, "")
	c := e.newClient()
	c.signIn("alice", "alice-password")

	r := c.api("methods/start", map[string]string{"method": "email", "destination": "alice@example.com"})
	if r.StatusCode != 200 || r.JSON(t)["sent_to"] != "a•••@example.com" {
		t.Fatalf("start email: %d %s", r.StatusCode, r.Body)
	}
	to, code := mailCode(t, mailSink, 1)
	if to != "alice@example.com" || code == "" {
		t.Fatalf("emailed %q to %q", code, to)
	}
	r = c.api("methods/confirm", map[string]string{"method": "email", "code": code})
	if r.StatusCode != 200 || len(r.JSON(t)["recovery_codes"].([]any)) != 10 {
		t.Fatalf("confirm email: %d %s", r.StatusCode, r.Body)
	}
	c.api("recovery-codes/acknowledge", map[string]any{})

	r = c.api("methods/start", map[string]string{"method": "sms", "destination": "+44 7700 900123"})
	if r.StatusCode != 200 || r.JSON(t)["sent_to"] != "+44 •••• ••23" {
		t.Fatalf("start sms: %d %s", r.StatusCode, r.Body)
	}
	to, code = texts.waitCode(1)
	if to != "+447700900123" {
		t.Fatalf("texted %q", to)
	}
	r = c.api("methods/confirm", map[string]string{"method": "sms", "code": code})
	if r.StatusCode != 200 || len(r.JSON(t)["recovery_codes"].([]any)) != 0 {
		t.Fatalf("confirm sms: %d %s (a second method issues no new codes)", r.StatusCode, r.Body)
	}
	if r := c.api("methods/primary", map[string]string{"method": "sms"}); r.StatusCode != 200 {
		t.Fatalf("primary: %d %s", r.StatusCode, r.Body)
	}
	st := c.status()
	if st["primary"] != "sms" || strings.Join(methodsOf(st), ",") != "sms,email,recovery_code" {
		t.Fatalf("status: %v", st)
	}

	// Sign in: the challenge texts a code to the primary method.
	p := e.pending("alice")
	page := p.get("/_mfa/challenge")
	if page.StatusCode != 200 || !strings.Contains(page.Body, "44 •••• ••23") {
		t.Fatalf("challenge page for sms: %d %s", page.StatusCode, page.Body[strings.Index(page.Body, "<main"):])
	}
	_, code = texts.waitCode(2)
	if p.get("/_mfa/challenge"); texts.count() != 2 {
		t.Fatal("opening the challenge again sent another text")
	}
	apiErr(t, p.api("challenge", map[string]string{"method": "sms", "code": wrongSix(code)}), 401, "invalid_code")
	if r := p.api("challenge", map[string]string{"method": "sms", "code": code}); r.StatusCode != 200 {
		t.Fatalf("texted code: %d %s", r.StatusCode, r.Body)
	}
	if u := p.dashboardUser(); u != "alice" {
		t.Fatalf("dashboard after the texted code: %q", u)
	}

	// Use a different method: email.
	p2 := e.pending("alice")
	r = p2.api("challenge/send", map[string]string{"method": "email"})
	if r.StatusCode != 200 || r.JSON(t)["sent_to"] != "a•••@example.com" {
		t.Fatalf("send by email: %d %s", r.StatusCode, r.Body)
	}
	_, code = mailCode(t, mailSink, 2)
	apiErr(t, p2.api("challenge", map[string]string{"method": "sms", "code": code}), 401, "code_expired")
	if r := p2.api("challenge", map[string]string{"method": "email", "code": code}); r.StatusCode != 200 {
		t.Fatalf("emailed code: %d %s", r.StatusCode, r.Body)
	}
}

// wrongSix is a six-digit code other than code.
func wrongSix(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// TestSentCodeLimitsAndBadInput: resends wait 30 s, a code retires after
// five wrong entries, and every new endpoint refuses bad input clearly.
func TestSentCodeLimitsAndBadInput(t *testing.T) {
	e, mailSink, texts := methodsStack(t, "")
	c := e.newClient()
	c.signIn("bob", "bob-password")

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"number without country code", map[string]string{"method": "sms", "destination": "07700 900123"}, 400, "bad_destination"},
		{"letters in a number", map[string]string{"method": "sms", "destination": "+44 7700 9OO123"}, 400, "bad_destination"},
		{"two addresses", map[string]string{"method": "email", "destination": "a@example.com, b@example.com"}, 400, "bad_destination"},
		{"a header in an address", map[string]string{"method": "email", "destination": "a@example.com\r\nBcc: x@example.com"}, 400, "bad_destination"},
		{"unknown method", map[string]string{"method": "fax", "destination": "+14155550100"}, 409, "method_unavailable"},
		{"no destination", map[string]string{"method": "sms"}, 400, "bad_request"},
		{"destination not a string", map[string]any{"method": "sms", "destination": 447700900123}, 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiErr(t, c.api("methods/start", tc.body), tc.status, tc.code)
		})
	}
	big := strings.Repeat("x", 20<<10)
	apiErr(t, c.api("methods/start", map[string]string{"method": "email", "destination": big}), 413, "too_large")
	if texts.count() != 0 || len(mailSink.Messages()) != 0 {
		t.Fatal("refused requests sent something")
	}

	if r := c.api("methods/start", map[string]string{"method": "sms", "destination": "+1 415 555 0100"}); r.StatusCode != 200 {
		t.Fatalf("start: %d %s", r.StatusCode, r.Body)
	}
	_, code := texts.waitCode(1)
	r := c.api("methods/start", map[string]string{"method": "sms", "destination": "+1 415 555 0100"})
	apiErr(t, r, 429, "send_limited")
	if r.Header.Get("Retry-After") == "" || !strings.Contains(r.JSON(t)["message"].(string), "Try again in") {
		t.Fatalf("send limit answer: %v %s", r.Header, r.Body)
	}
	apiErr(t, c.api("methods/confirm", map[string]string{"method": "sms", "code": "12345"}), 400, "malformed_code")
	for range 5 {
		apiErr(t, c.api("methods/confirm", map[string]string{"method": "sms", "code": wrongSix(code)}), 401, "invalid_code")
	}
	// max_attempts (5) is reached as well: wait out neither, the code is gone.
	r = c.api("methods/confirm", map[string]string{"method": "sms", "code": code})
	if r.StatusCode != 401 && r.StatusCode != 429 {
		t.Fatalf("the right code after five wrong ones: %d %s", r.StatusCode, r.Body)
	}
	if st := c.status(); st["enrolled"] != false {
		t.Fatalf("a retired code enrolled the number: %v", st)
	}

	// Sending at sign-in needs a method the user holds.
	e.enrolled("carol")
	p := e.pending("carol")
	apiErr(t, p.api("challenge/send", map[string]string{"method": "email"}), 409, "method_not_set_up")
	apiErr(t, p.api("challenge/send", map[string]string{}), 400, "bad_request")
}

// enrolSent sets up a sent-code method for c's user through the API.
func enrolSent(t *testing.T, c *client, method, dest string, code func() string) {
	t.Helper()
	if r := c.api("methods/start", map[string]string{"method": method, "destination": dest}); r.StatusCode != 200 {
		t.Fatalf("start %s: %d %s", method, r.StatusCode, r.Body)
	}
	if r := c.api("methods/confirm", map[string]string{"method": method, "code": code()}); r.StatusCode != 200 {
		t.Fatalf("confirm %s: %d %s", method, r.StatusCode, r.Body)
	}
}

// TestAdminRemovesMemberMethod: an admin removes one method of a member
// (who is emailed and keeps the others); removing the last is a reset that
// ends the member's sessions.
func TestAdminRemovesMemberMethod(t *testing.T) {
	e, mailSink, texts := methodsStack(t, "\t\tadmins admin\n")
	_, _, admin := e.enrolled("admin")
	bob := e.newClient()
	bob.signIn("bob", "bob-password")
	enrolSent(t, bob, "email", "bob@example.com", func() string { _, c := mailCode(t, mailSink, 1); return c })
	bob.api("recovery-codes/acknowledge", map[string]any{})
	enrolSent(t, bob, "sms", "+14155550123", func() string { _, c := texts.waitCode(1); return c })

	apiErr(t, bob.api("admin/methods/remove", map[string]string{"user": "bob", "method": "sms"}), 403, "not_admin")
	apiErr(t, admin.api("admin/methods/remove", map[string]string{"user": "nobody", "method": "sms"}), 404, "unknown_user")
	apiErr(t, admin.api("admin/methods/remove", map[string]string{"user": "bob", "method": "totp"}), 409, "method_not_set_up")
	apiErr(t, admin.api("admin/methods/remove", map[string]string{"user": "bob"}), 400, "bad_request")

	r := admin.api("admin/methods/remove", map[string]string{"user": "bob", "method": "sms"})
	if r.StatusCode != 200 || r.JSON(t)["emailed"] != true || r.JSON(t)["last"] != false {
		t.Fatalf("remove bob's sms: %d %s", r.StatusCode, r.Body)
	}
	msgs, err := mailSink.WaitFor(2, 10*time.Second)
	if err != nil || msgs[1].To[0] != "bob@example.com" || !strings.Contains(msgs[1].Subject, "was removed") || !strings.Contains(msgs[1].Text, "codes by text message") {
		t.Fatalf("bob's notice: %v %+v", err, msgs)
	}
	if st := bob.status(); strings.Join(methodsOf(st), ",") != "email,recovery_code" {
		t.Fatalf("bob after the removal: %v", st)
	}
	r = admin.api("admin/methods/remove", map[string]string{"user": "bob", "method": "email"})
	if r.StatusCode != 200 || r.JSON(t)["last"] != true {
		t.Fatalf("remove bob's last method: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, bob.api("status", nil), 401, "no_session")
	if c := e.newClient(); c.signIn("bob", "bob-password").Location() != "/" {
		t.Fatal("after the last method was removed, bob's sign-in is still challenged")
	}
}
