package totp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// maxSecretText bounds DecodeSecret's input before any work; a 160-bit
// secret is 32 characters, grouped 39.
const maxSecretText = 256

// b32 returns RFC 4648 base32 without padding, what authenticator apps
// expect in otpauth URIs and what users type by hand. A function rather than
// a package variable, so the package holds no mutable state.
func b32() *base32.Encoding {
	return base32.StdEncoding.WithPadding(base32.NoPadding)
}

// errSecretText is returned (wrapped) for secrets DecodeSecret cannot read.
var errSecretText = errors.New("totp: secret is not base32")

// EncodeSecret returns secret as upper-case base32 without padding.
func EncodeSecret(secret []byte) string {
	return b32().EncodeToString(secret)
}

// FormatSecret returns EncodeSecret(secret) in blocks of four characters
// separated by spaces, for people copying it by hand.
func FormatSecret(secret []byte) string {
	s := EncodeSecret(secret)
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// DecodeSecret reads a base32 secret as users and other tools write it:
// spaces, lower case and '=' padding are tolerated.
func DecodeSecret(s string) ([]byte, error) {
	if len(s) > maxSecretText {
		return nil, fmt.Errorf("%w: longer than %d characters", errSecretText, maxSecretText)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	t := strings.TrimRight(b.String(), "=")
	if t == "" {
		return nil, fmt.Errorf("%w: empty", errSecretText)
	}
	// Unpadded base32 of whole bytes never leaves 1, 3 or 6 characters in
	// its last block; the decoder would silently drop them.
	if r := len(t) % 8; r == 1 || r == 3 || r == 6 {
		return nil, fmt.Errorf("%w: truncated", errSecretText)
	}
	secret, err := b32().DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSecretText, err)
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: empty", errSecretText)
	}
	return secret, nil
}
