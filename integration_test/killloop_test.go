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

func newKillStack(t *testing.T, users map[string]string) *killStack {
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
	}
	reverse_proxy %s
}
`, admin, site, filepath.Join(dir, "mfa.db"), testKey, strings.TrimPrefix(app.URL, "http://"))
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
		go func() {
			body := strings.NewReader(fmt.Sprintf(`{"user":%q}`, user))
			if res, err := http.Post(k.admin+"/mfa_gateway/users/reset", "application/json", body); err == nil {
				res.Body.Close()
			}
		}()
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
		k.kill()

		k.start()
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
		cookie := p.cookieHeader()
		go func() { // the answer may never come: Caddy is killed
			req, _ := http.NewRequest("POST", k.env.Base+"/_mfa/api/v1/challenge/recovery",
				strings.NewReader(fmt.Sprintf(`{"recovery_code":%q}`, codes[0])))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Cookie", cookie)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
		time.Sleep(time.Duration(rand.IntN(800)) * time.Microsecond)
		k.kill()

		k.start()
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
