package web

import (
	"net/url"
	"strings"
)

// SafeNext is the one redirect validator every endpoint that takes a `next`
// uses: only a same-origin absolute path survives; anything else ("//host",
// "/\host", a scheme, control characters, a too-long value) becomes "/".
func SafeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// A path that decodes to "//" or "/\" would be read as another host by
	// some browsers after a further decode.
	if p := u.Path; strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return next
}
