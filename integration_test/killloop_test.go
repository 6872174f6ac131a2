package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

// killStack runs the built Caddy binary, so that it can be killed with
// SIGKILL mid-operation and started again on the same database.
type killStack struct {
	t         *testing.T
	bin, conf string
	admin     string
	env       *env
	cmd       *exec.Cmd
}

// newKillStack writes the Caddyfile; extra adds mfa_gateway subdirectives.
func newKillStack(t *testing.T, users map[string]string, extra ...string) *killStack {
	t.Helper()
	bin := buildCaddy(t)
	app := httptest.NewServer(demoapp.New(optsWith(users)))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	site, admin := freePort(t), freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	log {
		level ERROR
	}
}
http://127.0.0.1:%d {
	mfa_gateway {
		sign_in POST /login
		sign_out /logout
		session_cookie demo_session
		user_from whoami /api/me user
		db_path %s
		encryption_key %s
		%s
	}
	reverse_proxy %s
}
`, admin, site, filepath.Join(dir, "mfa.db"), testKey, strings.Join(extra, "\n\t\t"), strings.TrimPrefix(app.URL, "http://"))
	if err := os.WriteFile(conf, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &killStack{t: t, bin: bin, conf: conf, admin: fmt.Sprintf("http://127.0.0.1:%d", admin),
		env: &env{t: t, Base: fmt.Sprintf("http://127.0.0.1:%d", site)}}
	t.Cleanup(func() { k.kill() })
	return k
}

// start runs Caddy and waits until the gateway answers.
func (k *killStack) start() {
	k.t.Helper()
	k.cmd = exec.Command(k.bin, "run", "--config", k.conf, "--adapter", "caddyfile")
	var out bytes.Buffer
	k.cmd.Stdout, k.cmd.Stderr = &out, &out
	if err := k.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(k.env.Base + "/_mfa/api/v1/status"); err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.t.Fatalf("caddy did not start:\n%s", out.String())
}

// killDuring starts op, which may never get its answer, sends SIGKILL at a
// random moment up to within after it, and starts Caddy again.
func (k *killStack) killDuring(within time.Duration, op func()) {
	go op()
	time.Sleep(rand.N(within))
	k.kill()
	k.start()
}

// post sends a JSON POST that may never be answered (Caddy is killed): no
// test failure from another goroutine, the answer is ignored.
func post(url, cookie, body string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

// kill sends SIGKILL: no shutdown, no flush.
func (k *killStack) kill() {
	if k.cmd != nil && k.cmd.Process != nil {
		_ = k.cmd.Process.Kill()
		_ = k.cmd.Wait()
		k.cmd = nil
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// enrolled reports whether the operator API lists user with 2FA.
func (k *killStack) enrolled(user string) bool {
	enrolled, _ := k.member(user)
	return enrolled
}

// member reports user's 2FA status and method from the operator API.
func (k *killStack) member(user string) (enrolled bool, method string) {
	k.t.Helper()
	res, err := http.Get(k.admin + "/mfa_gateway/users")
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Members []struct {
			User     string `json:"user"`
			Enrolled bool   `json:"enrolled"`
			Method   string `json:"method"`
		} `json:"members"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		k.t.Fatal(err)
	}
	for _, m := range out.Members {
		if m.User == user {
			return m.Enrolled, m.Method
		}
	}
	return false, ""
}

// TestAdminResetSurvivesKill: an operator's 2FA reset, killed with SIGKILL at
// a random moment, leaves after the restart either the old state (the
// authenticator and the AAL2 session both still there) or the new one (both
// gone), never a user without 2FA whose old AAL2 session still works. A
// bounded loop of 20 kills.
func TestAdminResetSurvivesKill(t *testing.T) {
	const rounds = 20
	users := map[string]string{}
	for i := range rounds {
		users[fmt.Sprintf("u%02d", i)] = fmt.Sprintf("u%02d-password", i)
	}
	k := newKillStack(t, users)
	old, reset := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("u%02d", i)
		k.start()
		c := k.env.newClient()
		c.signIn(user, user+"-password")
		c.enrol() // an AAL2 session, bound to the app's cookie
		k.killDuring(4*time.Millisecond, func() {
			post(k.admin+"/mfa_gateway/users/reset", "", fmt.Sprintf(`{"user":%q}`, user))
		})
		factor := k.enrolled(user)
		st := c.api("status", nil)
		session := st.StatusCode == 200
		switch {
		case factor && session:
			old++
		case !factor && !session:
			reset++
		case !factor && session:
			t.Fatalf("round %d: 2FA removed but the old AAL2 session still works: %s", i, st.Body)
		default:
			t.Fatalf("round %d: 2FA kept but the session is gone (status %d)", i, st.StatusCode)
		}
		k.kill()
	}
	t.Logf("%d kills: %d left the old state, %d the reset, none mixed", rounds, old, reset)
	if old+reset != rounds {
		t.Fatalf("rounds counted %d, want %d", old+reset, rounds)
	}
}

// sessionStates lists the states of user's live sessions, as the operator
// API reports them.
func (k *killStack) sessionStates(user string) []string {
	k.t.Helper()
	res, err := http.Get(k.admin + "/mfa_gateway/sessions?user=" + user)
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Sessions []struct {
			State string `json:"state"`
		} `json:"sessions"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		k.t.Fatal(err)
	}
	var states []string
	for _, s := range out.Sessions {
		states = append(states, s.State)
	}
	return states
}

// TestRecoveryCodeSurvivesKill: using a recovery code at the challenge
// removes the authenticator, spends the code and activates the session, all
// at once. Killed with SIGKILL at a random moment, the restart shows either
// none of it (still enrolled, the sign-in still pending) or all of it (no
// authenticator, an active session), never the authenticator gone without
// the session or the other way round. A bounded loop of 20 kills.
func TestRecoveryCodeSurvivesKill(t *testing.T) {
	const rounds = 20
	users := map[string]string{}
	for i := range rounds {
		users[fmt.Sprintf("r%02d", i)] = fmt.Sprintf("r%02d-password", i)
	}
	k := newKillStack(t, users)
	old, used := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("r%02d", i)
		k.start()
		c := k.env.newClient()
		c.signIn(user, user+"-password")
		_, codes := c.enrol()
		p := k.env.newClient()
		if r := p.signIn(user, user+"-password"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("round %d: sign-in %d %q, want the challenge", i, r.StatusCode, r.Location())
		}
		c.get("/logout") // only the pending sign-in is left
		if st := strings.Join(k.sessionStates(user), ","); st != "pending" {
			t.Fatalf("round %d: before the code, sessions [%s], want only the pending sign-in", i, st)
		}
		k.killDuring(800*time.Microsecond, func() {
			post(k.env.Base+"/_mfa/api/v1/challenge/recovery", p.cookieHeader(), fmt.Sprintf(`{"recovery_code":%q}`, codes[0]))
		})
		_, method := k.member(user) // "totp", or "recovery_codes" once the authenticator is gone
		states := strings.Join(k.sessionStates(user), ",")
		switch {
		case method == "totp" && states == "pending":
			old++
		case method == "recovery_codes" && states == "active":
			used++
		default:
			t.Fatalf("round %d: method %q with sessions [%s]: a half-used recovery code", i, method, states)
		}
		k.kill()
	}
	t.Logf("%d kills: %d left the sign-in pending, %d the code used, none half-way", rounds, old, used)
}

// killUsers is n demo-app users named prefix00, prefix01, …, each with the
// password "<name>-password": one fresh user per round.
func killUsers(prefix string, n int) map[string]string {
	users := map[string]string{}
	for i := range n {
		u := fmt.Sprintf("%s%02d", prefix, i)
		users[u] = u + "-password"
	}
	return users
}

// TestEnrolmentSurvivesKill: confirming an authenticator stores the factor
// and the session's step up to AAL2 (a new session id) in one transaction.
// Killed at a random moment, the restart shows either neither (no factor,
// the old AAL1 session still working) or both (the factor, and the old
// session id replaced), never a factor whose pre-enrolment session lives
// on or a lost session without a factor. A bounded loop of 20 kills.
func TestEnrolmentSurvivesKill(t *testing.T) {
	const rounds = 20
	k := newKillStack(t, killUsers("e", rounds))
	old, enrolled := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("e%02d", i)
		k.start()
		c := k.env.newClient()
		c.signIn(user, user+"-password")
		r := c.api("totp/enroll", map[string]any{})
		if r.StatusCode != 200 {
			t.Fatalf("round %d: enroll %d %s", i, r.StatusCode, r.Body)
		}
		secret := r.JSON(t)["secret"].(string)
		k.killDuring(3*time.Millisecond, func() {
			post(k.env.Base+"/_mfa/api/v1/totp/confirm", c.cookieHeader(), fmt.Sprintf(`{"code":%q}`, code(t, secret, 0)))
		})
		factor := k.enrolled(user)
		st := c.api("status", nil)
		switch {
		case !factor && st.StatusCode == 200 && st.JSON(t)["aal"] == 1.0:
			old++
		case factor && st.StatusCode != 200:
			enrolled++
		default:
			t.Fatalf("round %d: factor %v with the pre-enrolment session answering %d %s", i, factor, st.StatusCode, st.Body)
		}
		k.kill()
	}
	t.Logf("%d kills: %d left no factor, %d the factor with the session stepped up, none half-way", rounds, old, enrolled)
}

// TestDisableSurvivesKill: turning 2FA off removes the authenticator and
// the recovery codes together. Killed at a random moment, the restart shows
// both or neither (never codes left without the authenticator, which would
// leave the user a second factor they turned off), and the user's own
// session works either way. A bounded loop of 20 kills.
func TestDisableSurvivesKill(t *testing.T) {
	const rounds = 20
	k := newKillStack(t, killUsers("d", rounds))
	kept, off := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("d%02d", i)
		k.start()
		c := k.env.newClient()
		c.signIn(user, user+"-password")
		c.enrol()
		k.killDuring(1500*time.Microsecond, func() {
			post(k.env.Base+"/_mfa/api/v1/totp/disable", c.cookieHeader(), `{}`)
		})
		enrolled, method := k.member(user)
		switch {
		case enrolled && method == "totp":
			kept++
		case !enrolled && method == "none":
			off++
		default:
			t.Fatalf("round %d: enrolled %v, method %q: half turned off", i, enrolled, method)
		}
		if st := c.api("status", nil); st.StatusCode != 200 {
			t.Fatalf("round %d: the user's own session ended: %d %s", i, st.StatusCode, st.Body)
		}
		k.kill()
	}
	t.Logf("%d kills: %d kept 2FA, %d turned it off, none half-way", rounds, kept, off)
}

// TestRevokeOthersSurvivesKill: "sign out other sessions" deletes them in
// one transaction. Killed at a random moment, the restart shows all four
// other sessions working or none, and the session that asked still works.
// A bounded loop of 20 kills.
func TestRevokeOthersSurvivesKill(t *testing.T) {
	const rounds, others = 20, 4
	k := newKillStack(t, killUsers("s", rounds))
	kept, revoked := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("s%02d", i)
		k.start()
		var cs []*client
		for range others + 1 {
			c := k.env.newClient()
			c.signIn(user, user+"-password") // no factor: each sign-in is a session at once
			cs = append(cs, c)
		}
		// Deletions go through the store's batch, which waits up to 10 ms
		// to gather writers: kill across that window too.
		k.killDuring(25*time.Millisecond, func() {
			post(k.env.Base+"/_mfa/api/v1/sessions/revoke-others", cs[0].cookieHeader(), `{}`)
		})
		if st := cs[0].api("status", nil); st.StatusCode != 200 {
			t.Fatalf("round %d: the session that asked ended: %d", i, st.StatusCode)
		}
		alive := 0
		for _, c := range cs[1:] {
			if c.api("status", nil).StatusCode == 200 {
				alive++
			}
		}
		switch alive {
		case others:
			kept++
		case 0:
			revoked++
		default:
			t.Fatalf("round %d: %d of %d other sessions survived", i, alive, others)
		}
		k.kill()
	}
	t.Logf("%d kills: %d kept the other sessions, %d revoked them all, none half-way", rounds, kept, revoked)
}

// TestPolicySwitchSurvivesKill: switching "require 2FA" on is stored, and
// the forced logouts of users without a factor follow from what is stored
// once the grace period (here 1s) is over, so a kill between the two cannot
// lose them. Killed at a random moment, the restart shows either the old
// policy with the unenrolled user's session working on, or the new one with
// that session ended within the grace period and a fresh sign-in sent to
// set up 2FA. A bounded loop of 20 kills.
func TestPolicySwitchSurvivesKill(t *testing.T) {
	const rounds = 20
	k := newKillStack(t, killUsers("p", rounds), "grace_period 1s")
	policy := func(on bool) {
		t.Helper()
		body := strings.NewReader(fmt.Sprintf(`{"require_2fa":%v}`, on))
		res, err := http.Post(k.admin+"/mfa_gateway/policy", "application/json", body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("policy %v: %v %v", on, err, res)
		}
		res.Body.Close()
	}
	required := func() bool {
		res, err := http.Get(k.admin + "/mfa_gateway/policy")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p struct {
			Require bool `json:"require_2fa"`
		}
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p.Require
	}
	kept, switched := 0, 0
	for i := range rounds {
		user := fmt.Sprintf("p%02d", i)
		k.start()
		policy(false)
		c := k.env.newClient()
		c.signIn(user, user+"-password")
		time.Sleep(10 * time.Millisecond) // the session starts strictly before the switch
		k.killDuring(3*time.Millisecond, func() {
			post(k.admin+"/mfa_gateway/policy", "", `{"require_2fa":true}`)
		})
		if !required() {
			time.Sleep(2200 * time.Millisecond) // past the grace period and a sweep: nothing may end it
			if st := c.api("status", nil); st.StatusCode != 200 {
				t.Fatalf("round %d: the policy stayed off but the session ended: %d", i, st.StatusCode)
			}
			kept++
			k.kill()
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.api("status", nil).StatusCode == 200 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: 2FA required, but the unenrolled session outlived the grace period", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r := k.env.newClient().signIn(user, user+"-password"); !strings.Contains(r.Location(), "setup") {
			t.Fatalf("round %d: a fresh sign-in under the new policy went to %q, not to set up 2FA", i, r.Location())
		}
		switched++
		k.kill()
	}
	t.Logf("%d kills: %d kept the old policy, %d switched and logged out the unenrolled user, none half-way", rounds, kept, switched)
}
