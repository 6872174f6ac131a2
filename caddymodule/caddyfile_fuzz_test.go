package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile: no input makes the directive's or the global option's
// parser panic; a parse that succeeds yields a config that passes Validate
// or fails it with an error, never both silently.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"mfa_gateway {\n sign_in POST /login\n session_cookie sid\n}",
		"mfa_gateway {\n sign_in {\n method POST\n path /login\n }\n user_from whoami /api/me user\n role_from header X-Role\n}",
		"mfa_gateway {\n widget {\n match /w/*\n user_json id\n }\n smtp {\n host h\n from a@b\n }\n}",
		"mfa_gateway {\n idle_timeout 1d\n success status 200 302\n}",
		"mfa {\n store bolt /tmp/x.db\n}",
		"mfa {\n store\n}",
		"mfa_gateway {",
		"mfa_gateway {\n sign_in_field\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		m := new(Gateway)
		if m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)) == nil {
			_ = m.Validate()
		}
		_, _ = parseGlobal(caddyfile.NewTestDispenser(input), nil)
	})
}
