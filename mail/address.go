package mail

import (
	"net/mail"
	"strings"
)

// UserPlaceholder is replaced by the user ID in an address template.
const UserPlaceholder = "{user}"

// maxLocalPart is the longest local part RFC 5321 §4.5.3.1.1 allows.
const maxLocalPart = 64

// Address picks where to send a user's mail. known is an address the app
// reported (a sign-in form field, a whoami JSON field, kept on the user
// record); it wins when it parses as an address. Otherwise template, such as
// "{user}@example.com", has {user} replaced by user, which must be a safe
// local part: ASCII letters, digits and . _ + - (no leading, trailing or
// doubled dot). A template without {user} is refused, since it would send
// every user's notices to one mailbox. ok is false when neither works.
//
// The result is a bare address ("bob@example.com"), never a display name.
func Address(known, template, user string) (string, bool) {
	if a, ok := parseKnown(known); ok {
		return a, true
	}
	if !strings.Contains(template, UserPlaceholder) || !safeLocalPart(user) {
		return "", false
	}
	s := strings.ReplaceAll(template, UserPlaceholder, user)
	a, err := mail.ParseAddress(s)
	// The template must be a bare address: "Name <{user}@x>" or a user that
	// changes how it parses would not equal the parsed form.
	if err != nil || a.Name != "" || a.Address != s || domainOf(s) == "" {
		return "", false
	}
	local := s[:strings.LastIndexByte(s, '@')]
	if len(local) > maxLocalPart {
		return "", false
	}
	return s, true
}

func parseKnown(known string) (string, bool) {
	known = strings.TrimSpace(known)
	if known == "" || strings.ContainsAny(known, "\r\n") {
		return "", false
	}
	a, err := mail.ParseAddress(known)
	if err != nil {
		return "", false
	}
	if domainOf(a.Address) == "" {
		return "", false
	}
	return a.Address, true
}

func safeLocalPart(u string) bool {
	if u == "" || len(u) > maxLocalPart || u[0] == '.' || u[len(u)-1] == '.' || strings.Contains(u, "..") {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}
