package mail

import (
	"strings"
	"testing"
)

func TestNotices(t *testing.T) {
	const url = "https://desk.example.com/_mfa/security"
	for _, tc := range []struct {
		name    string
		m       Message
		subject string
		has     []string
		hasNot  []string
	}{
		{
			name:    "enforcement with link",
			m:       EnforcementNotice("Acme Desk", "bob", url),
			subject: "Two-factor authentication is now required for Acme Desk",
			has:     []string{"Hello bob,", "your Acme Desk account", "next time you sign in", url},
		},
		{
			name:    "enforcement without link",
			m:       EnforcementNotice("", "", ""),
			subject: "Two-factor authentication is now required",
			has:     []string{"Hello,", "your account", "next time you sign in"},
			hasNot:  []string{"http", "set it up now"},
		},
		{
			name:    "reset by named admin",
			m:       ResetNotice("Acme Desk", "bob", "carol"),
			subject: "Your two-factor authentication was reset by an administrator",
			has:     []string{"reset by an administrator (carol)", "recovery codes no longer work", "signed out everywhere", "contact your administrator"},
			hasNot:  []string{"http"},
		},
		{
			name:    "reset by unnamed admin",
			m:       ResetNotice("Acme Desk", "bob", ""),
			subject: "Your two-factor authentication was reset by an administrator",
			has:     []string{"reset by an administrator.", "did not ask for this"},
		},
		{
			name:    "forced logout",
			m:       ForcedLogoutNotice("Acme Desk", "bob"),
			subject: "You have been signed out: two-factor authentication is required for Acme Desk",
			has:     []string{"grace period", "signed out on all your devices", "Sign in again"},
			hasNot:  []string{"http"},
		},
		{
			name:    "line breaks in values do not reach the subject",
			m:       EnforcementNotice("Acme\r\nBcc: eve@evil.example", "bob\n", ""),
			subject: "Two-factor authentication is now required for Acme Bcc: eve@evil.example",
			has:     []string{"Hello bob,"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.m.Subject != tc.subject {
				t.Errorf("subject %q, want %q", tc.m.Subject, tc.subject)
			}
			if tc.m.To != "" {
				t.Errorf("To %q, want it left to the caller", tc.m.To)
			}
			for _, s := range tc.has {
				if !strings.Contains(tc.m.Text, s) {
					t.Errorf("text lacks %q:\n%s", s, tc.m.Text)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(tc.m.Text, s) {
					t.Errorf("text has %q:\n%s", s, tc.m.Text)
				}
			}
			if err := checkHeader("subject", tc.m.Subject); err != nil {
				t.Error(err)
			}
			if !strings.HasSuffix(tc.m.Text, "replies are not read.\n") {
				t.Errorf("text does not end with the closing line:\n%s", tc.m.Text)
			}
		})
	}
}
