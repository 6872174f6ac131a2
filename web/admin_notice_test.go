package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mfagate/mfagate/challengeui"
)

func TestAdminNoticeNamesOnlyWhatTheGatewayDid(t *testing.T) {
	const key = "session-csrf-token"
	page := challengeui.AdminPage{
		Members:  []challengeui.MemberView{{User: "alice"}, {User: "bob"}},
		Policy:   challengeui.PolicyView{Require2FA: true, IdleMinutes: 30},
		Identity: &challengeui.IdentityView{Mode: "monitor"},
	}
	read := func(raw string, key string) adminNotice {
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		return readNotice(q, key)
	}
	signed := func(n adminNotice) string { return n.query(key) }

	tests := []struct {
		name, query string
		key         string
		emailOn     bool
		want        string
	}{
		{"reset, emailed", signed(adminNotice{Done: "reset", User: "alice", Mailed: true}), key, true, "2FA reset for alice — they were emailed."},
		{"reset, no email configured", signed(adminNotice{Done: "reset", User: "alice"}), key, false, "2FA reset for alice — no email is configured, so tell them yourself."},
		{"reset, no address", signed(adminNotice{Done: "reset", User: "alice"}), key, true, "2FA reset for alice — no email address is known for them, so tell them yourself."},
		{"revoked with the device", signed(adminNotice{Done: "revoked", User: "bob", Device: "Chrome on Linux"}), key, false, "Signed out bob's session (Chrome on Linux)."},
		{"unlock", signed(adminNotice{Done: "unlock", User: "bob"}), key, false, "Authenticator unlocked for bob."},
		{"policy from the page", "done=policy", key, false, "Team policy: 2FA now required for everyone."},
		{"timeout from the page", "done=timeout", key, false, "Session timeout: now 30 minutes."},
		{"mode from the page", "done=identity", key, false, "Identity verification: now Monitor."},
		// Crafted links: the text in them is never shown.
		{"unsigned subject", "done=revoked&user=bob&device=Evil%20Corp%20laptop", key, false, "Session signed out."},
		{"forged signature", "done=reset&user=alice&mailed=1&sig=AAAAAAAAAAAAAAAAAAAAAA", key, true, "Two-factor authentication was reset."},
		{"signed for another session", adminNotice{Done: "reset", User: "alice", Mailed: true}.query("another"), key, true, "Two-factor authentication was reset."},
		{"device swapped after signing", strings.Replace(signed(adminNotice{Done: "revoked", User: "bob", Device: "Chrome on Linux"}), "Chrome", "Evil", 1), key, false, "Session signed out."},
		{"no session key", signed(adminNotice{Done: "unlock", User: "bob"}), "", false, "The authenticator was unlocked."},
		{"signed, not a member", signed(adminNotice{Done: "unlock", User: "mallory"}), key, false, "The authenticator was unlocked."},
		{"unknown code", "done=<script>", key, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := page
			p.EmailConfigured = tc.emailOn
			if got := noticeText(read(tc.query, tc.key), p); got != tc.want {
				t.Errorf("notice for %q reads %q, want %q", tc.query, got, tc.want)
			}
		})
	}
	if q := signed(adminNotice{Done: "revoked", User: "bob", Device: "Chrome on Linux"}); !strings.HasPrefix(q, "done=revoked&") {
		t.Errorf("the query %q does not lead with done", q)
	}
}
