package recovery

import "strings"

// Text returns the downloadable recovery-code file: a header naming issuer
// and account, one code per line, and a note that each works once. Control
// characters in issuer and account are replaced by spaces, so a crafted
// account name cannot add lines that look like codes.
func Text(codes []string, issuer, account string) string {
	var b strings.Builder
	b.WriteString("Recovery codes for ")
	b.WriteString(printable(account))
	b.WriteString(" at ")
	b.WriteString(printable(issuer))
	b.WriteString("\n\n")
	for _, c := range codes {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	b.WriteString("\nEach code works only once. Use one to sign in if you lose your\n" +
		"authenticator app, then set up a new one. Keep this file somewhere safe.\n")
	return b.String()
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
