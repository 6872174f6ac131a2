package doctor

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// sendable is a request that a matcher matches: its method (prefer is
// taken when allowed), and a path with the query it requires.
func sendable(m Match, prefer string) (method, target string, ok bool) {
	method = prefer
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, prefer) {
		method = m.Methods[0]
	}
	target = "/"
	for i, p := range m.Paths {
		if !strings.Contains(p, "*") {
			target = p
			break
		}
		if i == 0 {
			target = strings.TrimSuffix(p[:strings.Index(p, "*")], "/") + "/"
		}
	}
	q := url.Values{}
	for k, vs := range m.Query {
		v := ""
		if len(vs) > 0 && vs[0] != "*" {
			v = vs[0]
		}
		q.Set(k, v)
	}
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return method, target, method != http.MethodGet && method != http.MethodHead
}

// matches reports whether a request to action (relative to base, as a
// form's action is) with method would match m, as Caddy's matchers read it.
func (d *run) matches(m Match, method, action, base string) bool {
	b, err := d.base.Parse(base)
	if err != nil {
		return false
	}
	u, err := b.Parse(action)
	if err != nil || u.Host != d.base.Host {
		return false
	}
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, strings.ToUpper(method)) {
		return false
	}
	if len(m.Paths) > 0 && !slices.ContainsFunc(m.Paths, func(p string) bool { return pathMatch(p, u.Path) }) {
		return false
	}
	q := u.Query()
	for k, want := range m.Query {
		if !slices.ContainsFunc(q[k], func(v string) bool { return slices.Contains(want, v) || slices.Contains(want, "*") }) {
			return false
		}
	}
	return true
}

// pathMatch is Caddy's path matcher, case-insensitive: exact, a prefix
// (/x*), a suffix (*.php), a substring (*x*), or a path.Match glob.
func pathMatch(pattern, p string) bool {
	pattern, p = strings.ToLower(pattern), strings.ToLower(p)
	switch n := strings.Count(pattern, "*"); {
	case n == 0:
		return pattern == p
	case n == 2 && strings.HasPrefix(pattern, "*") && strings.HasSuffix(pattern, "*") && len(pattern) > 2:
		return strings.Contains(p, pattern[1:len(pattern)-1])
	case n == 1 && strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(p, pattern[:len(pattern)-1])
	case n == 1 && strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(p, pattern[1:])
	}
	ok, _ := path.Match(pattern, p)
	return ok
}
