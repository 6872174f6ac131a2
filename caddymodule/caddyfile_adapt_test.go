package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/mfagate/mfagate/guard"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/caddyfile_adapt/*.caddyfiletest with what the adapter produces now")

// goldenDir holds the Caddyfile adapt tests: a Caddyfile, a line of ten
// dashes, then either the adapted JSON (pretty-printed with tabs) or, for a
// Caddyfile that must be refused, a part of the error message.
const goldenDir = "testdata/caddyfile_adapt"

const goldenSeparator = "----------"

// goldenSecrets are the values the golden files' secret placeholders
// resolve to during the test. The adapted JSON must not contain them: the
// adapter keeps {env.*} placeholders, and the module resolves them only when
// it is provisioned. MFA_KEY is a valid key, so the adapted handlers can be
// provisioned.
var goldenSecrets = map[string]string{
	"MFA_KEY":       "Z29sZGVuLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmctLS0=", // 32 bytes, base64
	"SMTP_PASSWORD": "golden-test-smtp-password",
	"SMTP_USERNAME": "golden-test-smtp-username",
	"SMS_SECRET":    "golden-test-sms-secret",
	"TWILIO_TOKEN":  "golden-test-twilio-token",
	"MFA_PG_DSN":    "postgres://gw:golden-test-pg-password@db.example:5432/mfa",
}

// TestCaddyfileAdaptGolden adapts each testdata/caddyfile_adapt file as
// `caddy adapt` does and compares the result with the file's JSON. Each
// mfa_gateway handler in the result must also use snake_case keys, keep its
// secrets as placeholders, decode strictly into the module and encode back
// to the same JSON, and provision.
//
// After an intended change, rewrite the files with
//
//	go test ./caddymodule -run TestCaddyfileAdaptGolden -update
//
// and review the diff.
func TestCaddyfileAdaptGolden(t *testing.T) {
	for k, v := range goldenSecrets {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.caddyfiletest files in %s", goldenDir)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".caddyfiletest")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, expected, ok := splitGolden(string(data))
			if !ok {
				t.Fatalf("%s: no %q line between the Caddyfile and the expected JSON", path, goldenSeparator)
			}
			if expected != "" && expected[0] != '{' {
				checkGoldenError(t, path, caddyfileText, expected)
				return
			}
			actual, err := adaptPretty(t, path, caddyfileText)
			if err != nil {
				t.Fatalf("%s: adapting: %v", path, err)
			}
			if *updateGolden {
				writeGolden(t, path, caddyfileText, actual)
			} else if !caddytest.CompareAdapt(t, path, caddyfileText, "caddyfile", expected) {
				// CompareAdapt has printed the diff on stdout; the whole
				// JSON follows it there, unindented, ready to paste.
				fmt.Printf("%s adapts to:\n%s\n", path, actual)
				t.Errorf("%s: the adapted JSON differs from the file: see the diff ('-' the file, '+' now) and the whole JSON "+
					"printed above. If the change is intended, put that JSON after the %s line, or run\n"+
					"\tgo test ./caddymodule -run 'TestCaddyfileAdaptGolden/%s$' -update", path, goldenSeparator, name)
			}
			checkAdaptedGateways(t, actual)
		})
	}
}

// TestCaddyfileExampleIsGolden keeps the golden copy of Caddyfile.example in
// step with the file itself, so the example's adapted JSON is checked too.
func TestCaddyfileExampleIsGolden(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(goldenDir, "caddyfile_example.caddyfiletest")
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	caddyfileText, _, _ := splitGolden(string(data))
	if want := normalizeNewlines(strings.TrimSpace(string(example))) + "\n"; caddyfileText != want {
		t.Errorf("the Caddyfile part of %s is not Caddyfile.example: copy the example there and run "+
			"`go test ./caddymodule -run 'TestCaddyfileAdaptGolden/caddyfile_example$' -update`", golden)
	}
}

// splitGolden returns the Caddyfile (ending in one newline, as the
// formatter wants it) and the expected part of a golden file.
func splitGolden(data string) (caddyfileText, expected string, ok bool) {
	data = normalizeNewlines(data)
	before, after, ok := strings.Cut(data, "\n"+goldenSeparator+"\n")
	return strings.TrimSpace(before) + "\n", strings.TrimSpace(after), ok
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// adaptPretty adapts a Caddyfile and indents the JSON as CompareAdapt does.
// A warning fails the test: golden files are formatted and warning-free.
func adaptPretty(t *testing.T, path, caddyfileText string) (string, error) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err != nil {
		return "", err
	}
	for _, w := range warnings {
		t.Errorf("%s:%d: warning: %s: %s", path, w.Line, w.Directive, w.Message)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func checkGoldenError(t *testing.T, path, caddyfileText, expected string) {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err == nil {
		t.Fatalf("%s: adapted without an error; want one containing %q", path, expected)
	}
	if *updateGolden {
		writeGolden(t, path, caddyfileText, err.Error())
		return
	}
	if !strings.Contains(err.Error(), expected) {
		t.Errorf("%s: error\n\t%s\ndoes not contain\n\t%s", path, err, expected)
	}
}

func writeGolden(t *testing.T, path, caddyfileText, expected string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(caddyfileText+goldenSeparator+"\n"+expected+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: rewritten", path)
}

// snakeCase is the key style of Caddy's JSON config.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkAdaptedGateways checks every mfa_gateway handler in an adapted config.
func checkAdaptedGateways(t *testing.T, adapted string) {
	t.Helper()
	for k, v := range goldenSecrets {
		if strings.Contains(adapted, v) {
			t.Errorf("the adapted JSON contains the value of $%s, not a placeholder", k)
		}
	}
	var cfg any
	if err := json.Unmarshal([]byte(adapted), &cfg); err != nil {
		t.Fatal(err)
	}
	handlers := findHandlers(cfg, "mfa_gateway", nil)
	if len(handlers) == 0 {
		return // a config of other handlers only
	}
	dbPath := filepath.Join(t.TempDir(), "mfagate.db")
	for i, h := range handlers {
		checkKeys(t, h, "mfa_gateway")
		delete(h, "handler")
		raw, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}

		// The JSON decodes, with Caddy's strictness, into the module and
		// encodes back to itself: each key is one the module reads.
		var m Gateway
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Errorf("handler %d does not decode into the module: %v\n%s", i+1, err, raw)
			continue
		}
		back, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, raw, back) {
			t.Errorf("handler %d does not round-trip:\nadapted: %s\n encoded: %s", i+1, raw, back)
		}

		// And it loads as Caddy loads it, with the database and the key file
		// in a temporary directory and the templates embedded.
		h["db_path"] = dbPath
		h["encryption_key"] = "{env.MFA_KEY}"
		delete(h, "key_file")
		delete(h, "template_dir")
		h["handler"] = "mfa_gateway"
	}
	// The whole config provisions as `caddy validate` does it (which opens
	// no database: stores open when the mfa app starts).
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var whole caddy.Config
	if err := caddy.StrictUnmarshalJSON(raw, &whole); err != nil {
		t.Fatalf("config does not decode: %v", err)
	}
	if err := caddy.Validate(&whole); err != nil {
		t.Errorf("config does not validate: %v\n%s", err, raw)
	}
	if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("validating the config touched the database: %v", err)
	}
}

// findHandlers returns the handler objects named name, in document order.
func findHandlers(v any, name string, acc []map[string]any) []map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == name {
			return append(acc, v)
		}
		for _, e := range v {
			acc = findHandlers(e, name, acc)
		}
	case []any:
		for _, e := range v {
			acc = findHandlers(e, name, acc)
		}
	}
	return acc
}

// checkKeys reports keys of the module's own JSON that are not snake_case.
// Matcher sets are Caddy's and may have other keys (header names).
func checkKeys(t *testing.T, v any, at string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", at, k)
			}
			if k == "sign_in" || k == "sign_out" || k == "match" {
				continue
			}
			checkKeys(t, e, at+"."+k)
		}
	case []any:
		for _, e := range v {
			checkKeys(t, e, at+"[]")
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	for _, p := range []struct {
		data []byte
		v    *any
	}{{a, &x}, {b, &y}} {
		dec := json.NewDecoder(bytes.NewReader(p.data))
		dec.UseNumber()
		if err := dec.Decode(p.v); err != nil {
			t.Fatal(err)
		}
	}
	return reflect.DeepEqual(x, y)
}

// TestJSONConfigKeys loads a handler written with the documented
// snake_case keys, and one written with the capitalised identity source
// keys earlier versions printed (JSON keys match case-insensitively).
func TestJSONConfigKeys(t *testing.T) {
	t.Setenv("MFA_KEY", goldenSecrets["MFA_KEY"])
	want := Gateway{
		UserFrom: []guard.IdentitySource{
			{Kind: guard.FromForm, Name: "username"},
			{Kind: guard.FromWhoami, Path: "/api/me", Field: "user"},
		},
		RoleFrom:  []guard.IdentitySource{{Kind: guard.FromHeader, Name: "X-Role"}},
		EmailFrom: []guard.IdentitySource{{Kind: guard.FromJSON, Name: "email"}},
	}
	const wantJSON = `{"user_from":[{"kind":"form","name":"username"},{"kind":"whoami","path":"/api/me","field":"user"}],` +
		`"role_from":[{"kind":"header","name":"X-Role"}],"email_from":[{"kind":"json","name":"email"}]}`
	for _, tt := range []struct{ name, sources string }{
		{"snake_case", `
			"user_from": [{"kind": "form", "name": "username"}, {"kind": "whoami", "path": "/api/me", "field": "user"}],
			"role_from": [{"kind": "header", "name": "X-Role"}],
			"email_from": [{"kind": "json", "name": "email"}]`},
		{"capitalised", `
			"user_from": [{"Kind": "form", "Name": "username", "Path": "", "Field": ""}, {"Kind": "whoami", "Name": "", "Path": "/api/me", "Field": "user"}],
			"role_from": [{"Kind": "header", "Name": "X-Role"}],
			"email_from": [{"Kind": "json", "Name": "email"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{
				"sign_in": [{"method": ["POST"], "path": ["/login"]}],
				"session_cookies": ["sid"],
				"db_path": ` + mustJSON(t, filepath.Join(t.TempDir(), "mfagate.db")) + `,
				"encryption_key": "{env.MFA_KEY}",` + tt.sources + `
			}`
			m := new(Gateway)
			if err := caddy.StrictUnmarshalJSON([]byte(raw), m); err != nil {
				t.Fatalf("loading %s: %v", raw, err)
			}
			got := Gateway{UserFrom: m.UserFrom, RoleFrom: m.RoleFrom, EmailFrom: m.EmailFrom}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("loaded sources\n got: %+v\nwant: %+v", got, want)
			}
			if enc := mustJSON(t, &got); enc != wantJSON {
				t.Errorf("sources encode as\n%s\nwant\n%s", enc, wantJSON)
			}
		})
	}
}
