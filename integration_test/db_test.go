package integration_test

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stop ends Caddy with SIGINT, as an operator would, and waits for it.
func (k *killStack) stop() {
	k.t.Helper()
	if k.cmd == nil {
		return
	}
	if err := k.cmd.Process.Signal(os.Interrupt); err != nil {
		k.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- k.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		k.t.Fatal("caddy did not stop within 20s of SIGINT")
	}
	k.cmd = nil
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// dbPath is the database file of the kill stack's Caddyfile.
func (k *killStack) dbPath() string { return filepath.Join(filepath.Dir(k.conf), "mfa.db") }

// memberCount is how many users the operator API lists.
func (k *killStack) memberCount() int {
	k.t.Helper()
	res, err := http.Get(k.admin + "/mfa_gateway/users")
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Members []json.RawMessage `json:"members"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		k.t.Fatal(err)
	}
	return len(out.Members)
}

// checkReport runs `caddy mfa db check --json` and decodes the counts.
func checkReport(t *testing.T, bin, path string) map[string]float64 {
	t.Helper()
	out, err := runCLI(t, bin, "db", "check", path, "--json")
	if err != nil {
		t.Fatalf("db check %s: %v\n%s", path, err, out)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("db check --json: %v\n%s", err, out)
	}
	counts := map[string]float64{}
	for k, v := range rep {
		if f, ok := v.(float64); ok {
			counts[k] = f
		}
	}
	return counts
}

// signInLoop signs bob in and out until stop is closed, each time as a new
// browser: the gateway writes a session per sign-in while a backup runs.
func signInLoop(base string, stop <-chan struct{}, ok *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
		if res, err := hc.Get(base + "/login"); err == nil {
			res.Body.Close()
		}
		res, err := hc.PostForm(base+"/login", url.Values{"username": {"bob"}, "password": {"bob-password"}})
		if err != nil {
			continue
		}
		res.Body.Close()
		if res.StatusCode == http.StatusSeeOther {
			ok.Add(1)
		}
		if res, err := hc.Get(base + "/logout"); err == nil {
			res.Body.Close()
		}
	}
}

// TestDBBackupCheckRestore: the running Caddy writes a backup while
// sign-ins go on; the backup checks clean with the records the server had;
// restored over a database where alice's 2FA was since reset, it brings her
// authenticator back: after a restart her password alone is not enough.
func TestDBBackupCheckRestore(t *testing.T) {
	k := newKillStack(t, manyUsers())
	addr := "--address=" + strings.TrimPrefix(k.admin, "http://")
	db := k.dbPath()
	k.start()
	alice := k.env.newClient()
	alice.signIn("alice", "alice-password")
	alice.enrol()
	if r := k.env.newClient().signIn("bob", "bob-password"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's first sign-in: %d", r.StatusCode)
	}
	if !k.enrolled("alice") {
		t.Fatal("alice is not enrolled before the backup")
	}

	stored := k.memberCount()

	bak := filepath.Join(t.TempDir(), "backup.db")
	stop := make(chan struct{})
	var signIns atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { signInLoop(k.env.Base, stop, &signIns) })
	}
	for signIns.Load() < 2 { // the load is under way before the backup
		time.Sleep(10 * time.Millisecond)
	}
	out, err := runCLI(t, k.bin, "db", "backup", "--out", bak, addr)
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "checked") {
		t.Fatalf("db backup: %v\n%s", err, out)
	}
	if signIns.Load() < 3 {
		t.Fatalf("only %d sign-ins went through around the backup", signIns.Load())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(bak), ".*tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left beside the backup: %v", leftovers)
	}

	// Refused while Caddy runs: another backup over this one, a restore,
	// and a check of the live file (which points at db backup).
	before, _ := os.ReadFile(bak)
	if out, err := runCLI(t, k.bin, "db", "backup", "--out", bak, addr); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("backup over an existing file: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(bak); string(after) != string(before) {
		t.Fatal("the refused backup changed the existing file")
	}
	if out, err := runCLI(t, k.bin, "db", "restore", "--from", bak, "--db", db); err == nil || !strings.Contains(out, "stop Caddy first") {
		t.Fatalf("restore while Caddy runs: %v\n%s", err, out)
	}
	if out, err := runCLI(t, k.bin, "db", "check", db); err == nil || !strings.Contains(out, "db backup") {
		t.Fatalf("check of the live file: %v\n%s", err, out)
	}
	if matches, _ := filepath.Glob(db + ".bak-*"); len(matches) != 0 {
		t.Fatalf("the refused restore kept a copy: %v", matches)
	}

	// Change the live state: alice's 2FA is reset.
	if out, err := runCLI(t, k.bin, "reset", "alice", addr); err != nil {
		t.Fatalf("reset alice: %v\n%s", err, out)
	}
	if k.enrolled("alice") {
		t.Fatal("alice still enrolled after the reset")
	}
	k.stop()

	// The backup holds the users and the audited enrolment of before.
	rep := checkReport(t, k.bin, bak)
	live := checkReport(t, k.bin, db)
	if rep["users"] != float64(stored) || stored < 2 || rep["schema"] != 2 {
		t.Fatalf("backup report %v: want the %d users the server had (alice and bob among them)", rep, stored)
	}
	if rep["sessions"] < 2 || rep["audit_events"] < 3 || rep["audit_events"] >= live["audit_events"] {
		t.Fatalf("backup report %v, live %v: want alice's and bob's sessions and the events up to the backup", rep, live)
	}

	out, err = runCLI(t, k.bin, "db", "restore", "--from", bak, "--db", db)
	if err != nil {
		t.Fatalf("db restore: %v\n%s", err, out)
	}
	kept, _ := filepath.Glob(db + ".bak-*")
	if len(kept) != 1 || !strings.Contains(out, kept[0]) {
		t.Fatalf("the previous file: %v\n%s", kept, out)
	}
	if old := checkReport(t, k.bin, kept[0]); old["audit_events"] != live["audit_events"] {
		t.Fatalf("the kept file %v is not the database of before the restore %v", old, live)
	}

	k.start()
	if !k.enrolled("alice") {
		t.Fatal("after the restore alice is not enrolled")
	}
	r := k.env.newClient().signIn("alice", "alice-password")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("after the restore alice's password alone: %d %q, want the challenge", r.StatusCode, r.Location())
	}
}

// TestDBCheckDamagedFile: the check of a damaged file fails, naming it.
func TestDBCheckDamagedFile(t *testing.T) {
	bin := buildCaddy(t)
	dir := t.TempDir()
	random := make([]byte, 32<<10)
	_, _ = rand.Read(random)
	for name, raw := range map[string][]byte{"empty.db": {}, "random.db": random} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, bin, "db", "check", path)
		if err == nil || !strings.Contains(out, path) || !strings.Contains(out, "damaged") {
			t.Fatalf("check of %s: %v\n%s", name, err, out)
		}
	}
	if out, err := runCLI(t, bin, "db", "check", filepath.Join(dir, "missing.db")); err == nil || !strings.Contains(out, "missing.db") {
		t.Fatalf("check of a missing file: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Fatal("check created the missing file")
	}
}
