package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestParseKey(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i*7 + 0xf0) // includes bytes that differ between base64 alphabets
	}
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"base64 std", base64.StdEncoding.EncodeToString(key), true},
		{"base64 url", base64.URLEncoding.EncodeToString(key), true},
		{"base64 raw std", base64.RawStdEncoding.EncodeToString(key), true},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(key), true},
		{"hex lower", hex.EncodeToString(key), true},
		{"hex upper", strings.ToUpper(hex.EncodeToString(key)), true},
		{"trailing newline", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"surrounding spaces", "  " + hex.EncodeToString(key) + " \r\n", true},
		{"empty", "", false},
		{"whitespace", " \n", false},
		{"short base64", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"long base64", base64.StdEncoding.EncodeToString(append(key, 1)), false},
		{"short hex", hex.EncodeToString(key[:31]), false},
		{"bad hex", strings.Repeat("zz", 32), false},
		{"garbage", "not a key at all!", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseKey accepted %q", tc.in)
				}
				if s := strings.TrimSpace(tc.in); len(s) > 3 && strings.Contains(err.Error(), s) {
					t.Fatalf("error echoes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if len(got) != KeySize {
				t.Fatalf("len = %d", len(got))
			}
		})
	}
	// The unambiguous encodings decode to the same bytes.
	for _, s := range []string{hex.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
		if got, _ := ParseKey(s); !bytes.Equal(got, key) {
			t.Fatalf("ParseKey(%q) = %x, want %x", s, got, key)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(testKey(3)))
	f.Add(hex.EncodeToString(testKey(4)))
	f.Add("")
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseKey(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes input: %v", err)
			}
			return
		}
		if len(key) != KeySize {
			t.Fatalf("accepted %d-byte key", len(key))
		}
		// Round trip through the canonical encodings.
		for _, enc := range []string{base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key)} {
			if k2, err := ParseKey(enc); err != nil || !bytes.Equal(k2, key) {
				t.Fatalf("re-parse %q: %x, %v", enc, k2, err)
			}
		}
	})
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "master.key")

	key, err := LoadOrCreateKeyFile(path, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(key) != KeySize {
		t.Fatalf("len = %d", len(key))
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("key file mode %#o, want 0600", perm)
		}
		di, _ := os.Stat(dir)
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Fatalf("dir mode %#o, want 0700", perm)
		}
	}
	again, err := LoadOrCreateKeyFile(path, nil)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("re-read = %x, %v; want %x", again, err, key)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKeyFile(path, nil) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("goroutine %d got a different key", i)
		}
	}
}

func TestLoadOrCreateKeyFileExisting(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	key := testKey(9)
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string // substring; "" = success
	}{
		{"hex with newline", hex.EncodeToString(key) + "\n", 0o600, ""},
		{"base64 read-only", base64.StdEncoding.EncodeToString(key), 0o400, ""},
		{"world readable", hex.EncodeToString(key), 0o644, "0644"},
		{"group readable", hex.EncodeToString(key), 0o640, "0640"},
		{"group writable", hex.EncodeToString(key), 0o620, "0620"},
		{"bad content", "hello", 0o600, "base64"},
		{"empty", "", 0o600, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := LoadOrCreateKeyFile(path, nil)
			if tc.wantErr == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("got %x, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q should mention %q and the path", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), hex.EncodeToString(key)) {
				t.Fatalf("error echoes the key: %v", err)
			}
		})
	}
}

func TestLoadOrCreateKeyFileDeterministicRand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	got, err := LoadOrCreateKeyFile(path, bytes.NewReader(testKey(5)))
	if err != nil || !bytes.Equal(got, testKey(5)) {
		t.Fatalf("got %x, %v", got, err)
	}
	if _, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "k"), bytes.NewReader(nil)); err == nil {
		t.Fatal("empty rand accepted")
	}
}
