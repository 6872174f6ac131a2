package caddymodule

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// testKey is a valid 32-byte master key in hex.
var testKey = hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func newCaddyContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// newModule is a minimal valid configuration on dbPath.
func newModule(dbPath string) *Gateway {
	return &Gateway{
		SignInRaw:      caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/login"]`)}},
		SessionCookies: []string{"sid"},
		DBPath:         dbPath,
		EncryptionKey:  testKey,
	}
}

// provisionWithin provisions m on a new mfa app (as one config load does)
// and starts the app, failing the test if that takes longer than d: a
// second bbolt open of a held file would wait on the lock. Cleanup stops the
// app and cleans m up, as Caddy does when the config is unloaded.
func provisionWithin(t *testing.T, m *Gateway, ctx caddy.Context, d time.Duration) error {
	t.Helper()
	app := &App{}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	testApps.Store(m, app)
	done := make(chan error, 1)
	go func() {
		err := m.provisionOn(ctx, app)
		if err == nil {
			err = app.Start()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Provision did not return within %v", d)
		return nil
	}
}

// testApps is the mfa app each test handler was started on.
var testApps sync.Map // *Gateway -> *App

// unload stops m's app and cleans m up, in Caddy's order.
func unload(m *Gateway) error {
	if a, ok := testApps.LoadAndDelete(m); ok {
		if err := a.(*App).Stop(); err != nil {
			return err
		}
	}
	return m.Cleanup()
}

// openBoltQuickly opens path directly, as a second process would.
func openBoltQuickly(path string) error {
	db, err := bolt.Open(path, bolt.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	return db.Close()
}

func TestProvisionSharesDatabase(t *testing.T) {
	ctx := newCaddyContext(t)
	dbPath := filepath.Join(t.TempDir(), "mfa.db")

	first, second := newModule(dbPath), newModule(dbPath)
	if err := provisionWithin(t, first, ctx, 5*time.Second); err != nil {
		t.Fatalf("first Provision: %v", err)
	}
	t.Cleanup(func() { _ = unload(first) })

	// As on a reload: the new config is provisioned while the old one still
	// holds the file. bbolt's lock timeout is 1s, so sharing must be faster.
	start := time.Now()
	if err := provisionWithin(t, second, ctx, 5*time.Second); err != nil {
		t.Fatalf("second Provision on the same db_path: %v", err)
	}
	t.Cleanup(func() { _ = unload(second) })
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("second Provision took %v: it waited on the bbolt lock", el)
	}
	if first.gw.load() == nil || second.gw.load() == nil {
		t.Fatal("Provision and Start left no guard")
	}

	// The old config goes away: the new one still holds the database.
	if err := unload(first); err != nil {
		t.Fatalf("first Cleanup: %v", err)
	}
	if err := openBoltQuickly(dbPath); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("after the first Cleanup only, a direct open = %v, want ErrLocked (still in use)", err)
	}

	// The last user closes it.
	if err := unload(second); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	start = time.Now()
	if err := openBoltQuickly(dbPath); err != nil {
		t.Fatalf("after both Cleanups, open = %v, want the database closed", err)
	}
	if el := time.Since(start); el > 150*time.Millisecond {
		t.Errorf("open after Cleanup took %v", el)
	}
}

func TestProvisionDistinctPathsAreIndependent(t *testing.T) {
	ctx := newCaddyContext(t)
	dir := t.TempDir()
	a, b := newModule(filepath.Join(dir, "a.db")), newModule(filepath.Join(dir, "b.db"))
	for _, m := range []*Gateway{a, b} {
		if err := provisionWithin(t, m, ctx, 5*time.Second); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	if err := unload(a); err != nil {
		t.Fatal(err)
	}
	if err := openBoltQuickly(a.DBPath); err != nil {
		t.Errorf("a.db after its Cleanup: %v", err)
	}
	if err := openBoltQuickly(b.DBPath); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("b.db while b is live: %v, want ErrLocked", err)
	}
	if err := unload(b); err != nil {
		t.Fatal(err)
	}
}

func TestProvisionRelativeAndPlaceholderDBPath(t *testing.T) {
	ctx := newCaddyContext(t)
	dir := t.TempDir()
	t.Setenv("MFA_TEST_DB_DIR", dir)
	m := newModule("{env.MFA_TEST_DB_DIR}/sub/mfa.db")
	if err := provisionWithin(t, m, ctx, 5*time.Second); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	defer unload(m)
	want := filepath.Join(dir, "sub", "mfa.db")
	if got := m.store.StoreKey(); got != want {
		t.Errorf("store = %q, want %q", got, want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Errorf("database not created: %v", err)
	}
}

func TestProvisionCreatesKeyFile(t *testing.T) {
	t.Run("default beside the database", func(t *testing.T) {
		ctx := newCaddyContext(t)
		dir := t.TempDir()
		m := newModule(filepath.Join(dir, "mfa.db"))
		m.EncryptionKey = ""
		if err := provisionWithin(t, m, ctx, 5*time.Second); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		keyPath := filepath.Join(dir, "key")
		first := checkKeyFile(t, keyPath)
		if err := unload(m); err != nil {
			t.Fatal(err)
		}

		// A restart reads the same key rather than making a new one.
		again := newModule(m.DBPath)
		again.EncryptionKey = ""
		if err := provisionWithin(t, again, ctx, 5*time.Second); err != nil {
			t.Fatalf("second Provision: %v", err)
		}
		defer unload(again)
		if second := checkKeyFile(t, keyPath); second != first {
			t.Error("key file was rewritten on the second Provision")
		}
	})
	t.Run("key_file", func(t *testing.T) {
		ctx := newCaddyContext(t)
		dir := t.TempDir()
		m := newModule(filepath.Join(dir, "mfa.db"))
		m.EncryptionKey = ""
		m.KeyFile = filepath.Join(dir, "secrets", "mfa.key")
		if err := provisionWithin(t, m, ctx, 5*time.Second); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		defer unload(m)
		checkKeyFile(t, m.KeyFile)
		if _, err := os.Stat(filepath.Join(dir, "key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("default key file created although key_file was set: %v", err)
		}
	})
	t.Run("not created with encryption_key", func(t *testing.T) {
		ctx := newCaddyContext(t)
		dir := t.TempDir()
		m := newModule(filepath.Join(dir, "mfa.db"))
		if err := provisionWithin(t, m, ctx, 5*time.Second); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		defer unload(m)
		if _, err := os.Stat(filepath.Join(dir, "key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("key file created although encryption_key was set: %v", err)
		}
	})
}

func checkKeyFile(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %#o, want 0600", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProvisionBadEncryptionKey(t *testing.T) {
	// Each value carries a recognisable marker that must never reach an error.
	const marker = "SECRETMARKER"
	tests := []struct {
		name  string
		key   string
		env   string // MFA_TEST_BAD_KEY, if set
		leaks string // what the error must not contain
	}{
		{name: "literal garbage", key: "not-a-key-" + marker, leaks: marker},
		{name: "too short hex", key: hex.EncodeToString([]byte(marker + "0123")), leaks: hex.EncodeToString([]byte(marker))},
		{name: "env placeholder with garbage", key: "{env.MFA_TEST_BAD_KEY}", env: "garbage-" + marker, leaks: marker},
		{name: "env placeholder with 16 bytes", key: "{env.MFA_TEST_BAD_KEY}", env: "U0VDUkVUTUFSS0VSMDEyMw==", leaks: "U0VDUkVUTUFSS0VSMDEyMw"},
		{name: "env placeholder unset", key: "{env.MFA_TEST_UNSET_KEY_XYZ}", leaks: marker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("MFA_TEST_BAD_KEY", tt.env)
			}
			ctx := newCaddyContext(t)
			dbPath := filepath.Join(t.TempDir(), "mfa.db")
			m := newModule(dbPath)
			m.EncryptionKey = tt.key
			err := provisionWithin(t, m, ctx, 5*time.Second)
			if err == nil {
				unload(m)
				t.Fatal("Provision accepted a bad encryption_key")
			}
			msg := err.Error()
			if !strings.Contains(msg, "encryption_key") {
				t.Errorf("error %q does not name encryption_key", msg)
			}
			if strings.Contains(msg, tt.leaks) {
				t.Errorf("error %q leaks the key", msg)
			}
			// Caddy calls Cleanup after a failed Provision.
			if err := unload(m); err != nil {
				t.Errorf("Cleanup after failed Provision: %v", err)
			}
			if err := openBoltQuickly(dbPath); err != nil {
				t.Errorf("database left locked after a failed Provision: %v", err)
			}
		})
	}
}

func TestProvisionMissingSignIn(t *testing.T) {
	ctx := newCaddyContext(t)
	dbPath := filepath.Join(t.TempDir(), "mfa.db")
	m := newModule(dbPath)
	m.SignInRaw = nil
	err := provisionWithin(t, m, ctx, 5*time.Second)
	if err == nil {
		unload(m)
		t.Fatal("Provision accepted a config without sign_in")
	}
	if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "sign-in") && !strings.Contains(msg, "sign_in") {
		t.Errorf("error %q does not say the sign-in is missing", err)
	}
	if err := unload(m); err != nil {
		t.Errorf("Cleanup after failed Provision: %v", err)
	}
	if err := openBoltQuickly(dbPath); err != nil {
		t.Errorf("database left locked after a failed Provision: %v", err)
	}
}

// A failed Provision must give back only its own hold: a live config on the
// same database keeps it open.
func TestProvisionFailureKeepsSharedDatabase(t *testing.T) {
	ctx := newCaddyContext(t)
	dbPath := filepath.Join(t.TempDir(), "mfa.db")
	live := newModule(dbPath)
	if err := provisionWithin(t, live, ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	defer unload(live)

	bad := newModule(dbPath)
	bad.IdleTimeout = caddy.Duration(time.Minute) // out of range: refused
	if err := provisionWithin(t, bad, ctx, 5*time.Second); err == nil {
		unload(bad)
		t.Fatal("Provision accepted idle_timeout 1m")
	}
	if err := unload(bad); err != nil {
		t.Fatal(err)
	}
	if err := openBoltQuickly(dbPath); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("live config's database after another config failed: open = %v, want ErrLocked", err)
	}
}

func TestProvisionBadSignInMatcher(t *testing.T) {
	ctx := newCaddyContext(t)
	m := newModule(filepath.Join(t.TempDir(), "mfa.db"))
	m.SignInRaw = caddyhttp.RawMatcherSets{{"no_such_matcher": json.RawMessage(`1`)}}
	err := provisionWithin(t, m, ctx, 5*time.Second)
	if err == nil {
		unload(m)
		t.Fatal("Provision accepted an unknown matcher")
	}
	if !strings.Contains(err.Error(), "sign_in") {
		t.Errorf("error %q does not name sign_in", err)
	}
	if err := unload(m); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
}

func TestValidate(t *testing.T) {
	m := newModule("x.db")
	if err := m.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	m.SessionCookies = nil
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "session_cookie") {
		t.Errorf("Validate without session_cookie = %v, want an error naming session_cookie", err)
	}
}

func TestCleanupWithoutProvision(t *testing.T) {
	var m Gateway
	if err := m.Cleanup(); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
}

// Caddy starts apps in no particular order: a request that reaches a handler
// before the mfa app's Start starts the handler then, instead of a 503, and
// the app's Start does not start it twice.
func TestRequestBeforeAppStart(t *testing.T) {
	ctx := newCaddyContext(t)
	m := newModule(filepath.Join(t.TempDir(), "mfa.db"))
	app := &App{}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.provisionOn(ctx, app); err != nil {
		t.Fatal(err)
	}
	testApps.Store(m, app)
	t.Cleanup(func() { _ = unload(m) })
	if m.gw.load() != nil {
		t.Fatal("Provision started the handler: it must not touch the store")
	}
	called := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		called = true
		return nil
	})
	r := httptest.NewRequest(http.MethodGet, "/page", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	if err := m.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || !called {
		t.Fatalf("request before Start: err %v, passed on %v", err, called)
	}
	first := m.gw.load()
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	if m.gw.load() != first {
		t.Fatal("Start started the handler a second time")
	}
}
