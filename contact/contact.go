// Package contact reads and masks the destinations that second-factor codes
// are sent to: email addresses and mobile numbers. Destinations come from
// people typing them, so they are normalised before they are stored or
// compared, and masked before they are shown: a page or a log line never
// needs the whole address.
package contact

import (
	"errors"
	"net/mail"
	"strings"
)

// Errors for destinations that cannot receive codes.
var (
	ErrEmail = errors.New("contact: not an email address")
	ErrPhone = errors.New("contact: not a mobile number in international form (+ and country code)")
)

// maxEmail is the longest address SMTP carries (RFC 5321 §4.5.3.1.3).
const maxEmail = 254

// Email returns addr as one bare address (no display name, no list), with
// its domain in lower case.
func Email(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" || len(addr) > maxEmail || strings.ContainsAny(addr, "<>,;\"\r\n ") {
		return "", ErrEmail
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return "", ErrEmail
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", ErrEmail
	}
	return local + "@" + strings.ToLower(domain), nil
}

// Phone returns number in E.164 form: "+" and 7 to 15 digits, the first
// not 0. Spaces, dots, dashes and brackets people type are dropped.
func Phone(number string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(number) {
		switch {
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", ErrPhone
		}
	}
	s := b.String()
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return "", ErrPhone
	}
	return s, nil
}

// MaskEmail shows the first letter of the local part and the domain:
// "a•••@example.com".
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "•••"
	}
	first := []rune(local)[0]
	return string(first) + "•••@" + domain
}

// MaskPhone shows the first two digits after "+" and the last two:
// "+44 •••• ••12".
func MaskPhone(number string) string {
	if len(number) < 6 || number[0] != '+' {
		return "•••"
	}
	return number[:3] + " •••• ••" + number[len(number)-2:]
}
