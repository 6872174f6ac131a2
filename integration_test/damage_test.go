package integration_test

import (
	"crypto/rand"
	"os"
	"strings"
	"testing"
)

// TestDamagedDatabaseRefusedAtStart: Caddy does not start on an empty or
// random file at the database path (an empty one would otherwise be a new
// database, letting every enrolled user in with the password alone). The
// error names the file and what to do; nothing panics; the good file, put
// back, starts again with alice still enrolled.
func TestDamagedDatabaseRefusedAtStart(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway)
	e.enrolled("alice")
	stopCaddy(t)
	good, err := os.ReadFile(e.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 32<<10)
	_, _ = rand.Read(random)
	for name, raw := range map[string][]byte{"empty": {}, "random": random, "truncated": good[:len(good)/2]} {
		if err := os.WriteFile(e.DBPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		err := e.tryLoad(e.gateway)
		if err == nil {
			t.Fatalf("%s database file: Caddy started", name)
		}
		if !strings.Contains(err.Error(), e.DBPath) || !strings.Contains(err.Error(), "backup") {
			t.Errorf("%s: the error does not name the file and what to do: %v", name, err)
		}
		if fi, _ := os.Stat(e.DBPath); fi.Size() != int64(len(raw)) {
			t.Errorf("%s: the file was changed (%d bytes, was %d)", name, fi.Size(), len(raw))
		}
	}
	if err := os.WriteFile(e.DBPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	e.load(e.gateway)
	e.pending("alice") // still enrolled: the challenge
}
