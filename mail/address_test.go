package mail

import (
	"strings"
	"testing"
)

func TestAddress(t *testing.T) {
	const tmpl = "{user}@example.com"
	for _, tc := range []struct {
		name                  string
		known, template, user string
		want                  string
		ok                    bool
	}{
		{name: "known valid", known: "alice@corp.example", template: tmpl, user: "alice", want: "alice@corp.example", ok: true},
		{name: "known wins over template", known: "a.l+desk@corp.example", template: tmpl, user: "alice", want: "a.l+desk@corp.example", ok: true},
		{name: "known with display name", known: "Alice Doe <alice@corp.example>", template: "", user: "", want: "alice@corp.example", ok: true},
		{name: "known trimmed", known: "  alice@corp.example ", want: "alice@corp.example", ok: true},
		{name: "known junk, template", known: "n/a", template: tmpl, user: "alice", want: "alice@example.com", ok: true},
		{name: "known without domain, template", known: "alice@", template: tmpl, user: "alice", want: "alice@example.com", ok: true},
		{name: "known injection, template", known: "a@example.com\r\nBcc: x@example.com", template: tmpl, user: "alice", want: "alice@example.com", ok: true},
		{name: "known empty, template", template: tmpl, user: "bob.smith_2+x-y", want: "bob.smith_2+x-y@example.com", ok: true},
		{name: "template with prefix", template: "desk-{user}@mail.example.com", user: "bob", want: "desk-bob@mail.example.com", ok: true},

		{name: "unsafe user: at", template: tmpl, user: "bob@evil.example", ok: false},
		{name: "unsafe user: space", template: tmpl, user: "bob smith", ok: false},
		{name: "unsafe user: angle", template: tmpl, user: "bob>x", ok: false},
		{name: "unsafe user: comma", template: tmpl, user: "a,b", ok: false},
		{name: "unsafe user: CRLF", template: tmpl, user: "bob\r\nBcc: x", ok: false},
		{name: "unsafe user: non-ASCII", template: tmpl, user: "jösé", ok: false},
		{name: "unsafe user: leading dot", template: tmpl, user: ".bob", ok: false},
		{name: "unsafe user: double dot", template: tmpl, user: "bo..b", ok: false},
		{name: "unsafe user: empty", template: tmpl, user: "", ok: false},
		{name: "unsafe user: too long", template: tmpl, user: strings.Repeat("a", 65), ok: false},
		{name: "template without placeholder", template: "helpdesk@example.com", user: "bob", ok: false},
		{name: "template not an address", template: "{user}", user: "bob", ok: false},
		{name: "template with display name", template: "Desk <{user}@example.com>", user: "bob", ok: false},
		{name: "neither", ok: false},
		{name: "junk and no template", known: "junk", user: "bob", ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Address(tc.known, tc.template, tc.user)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Address(%q, %q, %q) = %q, %v; want %q, %v", tc.known, tc.template, tc.user, got, ok, tc.want, tc.ok)
			}
		})
	}
}
