package guard

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/identity"
	"github.com/mfagate/mfagate/web"
)

// WidgetConfig says which requests are widget traffic and where their
// claimed user id and identity token are. Widget traffic is the volume path:
// customers' pages call the app's widget API through the gateway, claiming a
// user id; the customer's backend proves the claim with an HS256 JWT signed
// with the identity secret.
type WidgetConfig struct {
	Match         Matcher // required
	UserHeader    string  // default X-Widget-User-Id
	UserQuery     string  // or a query parameter
	UserJSON      string  // or a top-level field of a JSON body (read bounded, passed on intact)
	TokenHeader   string  // default Authorization (Bearer); another header carries the bare token
	TokenQuery    string  // or a query parameter
	VerdictHeader string  // the upstream's answer: verified, unverified or anonymous; default X-Widget-Identity

	userKey string // headerKey(UserHeader), for matching every spelling
}

const maxWidgetBody = 64 << 10

func (w *WidgetConfig) normalize() {
	if w.UserHeader == "" && w.UserQuery == "" && w.UserJSON == "" {
		w.UserHeader = "X-Widget-User-Id"
	}
	if w.TokenHeader == "" && w.TokenQuery == "" {
		w.TokenHeader = "Authorization"
	}
	if w.VerdictHeader == "" {
		w.VerdictHeader = "X-Widget-Identity"
	}
	w.VerdictHeader = http.CanonicalHeaderKey(w.VerdictHeader)
	w.userKey = headerKey(w.UserHeader)
}

// checkWidget verifies a widget request's claimed identity. It returns true
// when it has answered the request itself (refused).
func (g *Guard) checkWidget(w http.ResponseWriter, r *http.Request) (bool, error) {
	wc := g.cfg.Widget
	claimed, err := widgetUser(wc, r)
	if err != nil {
		g.svc.Stats().WidgetUnreadable(g.svc.Identity.Mode())
		return true, web.WriteJSONError(w, errWidgetBody)
	}
	token := widgetToken(wc, r)
	verdict, cause, mode := g.svc.Identity.Check(token, claimed)
	g.svc.Stats().Widget(mode, verdict, cause)
	if verdict == identity.Unverified && mode == identity.Enforce {
		if c := g.log.Check(zapcore.DebugLevel, "widget request refused"); c != nil {
			c.Write(zap.String("cause", string(cause)), zap.String("claimed_user", claimed), zap.String("remote_ip", g.site.ClientIP(r)))
		}
		web.WriteJSON(w, http.StatusForbidden, map[string]string{"error": string(cause), "message": "Identity verification failed: " + cause.Words() + "."})
		return true, nil
	}
	r.Header[wc.VerdictHeader] = []string{verdict.String()}
	return false, nil
}

var errWidgetBody = &web.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "The widget request body is too large to verify its identity."}

// ambiguousClaim stands for a claim given more than once with different
// values: the gateway cannot know which copy the app reads, so no token can
// prove it.
const ambiguousClaim = "\x00ambiguous"

// widgetUser finds the claimed user id; "" is an anonymous visitor. Every
// copy counts, in every place the operator named and every spelling an app
// may read (header names folded as CGI does, query keys in any case): copies
// that disagree are ambiguousClaim.
func widgetUser(wc *WidgetConfig, r *http.Request) (string, error) {
	var c claims
	if wc.UserHeader != "" {
		key := wc.userKey
		if key == "" { // a config that skipped normalize
			key = headerKey(wc.UserHeader)
		}
		for k, vs := range r.Header {
			if sameHeader(k, key) {
				c.add(vs...)
			}
		}
	}
	if wc.UserQuery != "" && r.URL.RawQuery != "" {
		want := laxParamName(wc.UserQuery)
		forEachParam(r.URL.RawQuery, func(k, v string) {
			if laxParamName(k) == want {
				c.add(v)
			}
		})
	}
	body, err := widgetBodyClaim(wc, r)
	if err != nil {
		return "", err
	}
	if body != "" {
		c.add(body)
	}
	if c.conflict {
		return ambiguousClaim, nil
	}
	return c.first, nil
}

// forEachParam calls f with each name and value of a raw query, split on
// ';' as well as '&' and decoded where they decode (raw where they do not):
// every pair some app reads, where Go's parser drops pairs it cannot read.
func forEachParam(raw string, f func(k, v string)) {
	for raw != "" {
		var kv string
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			kv, raw = raw, ""
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		f(k, v)
	}
}

// laxParamName is a parameter name as the laxest app reads it: in any letter
// case, cut at a NUL (C strings), without leading spaces, and with '.', ' '
// and '[' as '_' (PHP).
func laxParamName(k string) string {
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	k = strings.ToLower(strings.TrimLeft(k, " "))
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', ' ', '[':
			return '_'
		}
		return r
	}, k)
}

// claims collects every copy of a claim: the first, and whether any differs.
type claims struct {
	first    string
	n        int
	conflict bool
}

func (c *claims) add(vs ...string) {
	for _, v := range vs {
		if c.n == 0 {
			c.first = v
		}
		c.conflict = c.conflict || v != c.first
		c.n++
	}
}

// widgetBodyClaim reads the claim from a JSON body, when configured.
func widgetBodyClaim(wc *WidgetConfig, r *http.Request) (string, error) {
	// The body is read whatever its Content-Type claims: an app may parse
	// JSON sent as text/plain, and a claim the gateway skipped would pass
	// unchecked.
	if wc.UserJSON == "" || r.Body == nil || r.Body == http.NoBody {
		return "", nil
	}
	// Bodies no JSON parser reads (uploads, forms) carry no JSON claim.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") ||
		mt == "application/x-www-form-urlencoded" || mt == "application/octet-stream" {
		return "", nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWidgetBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || len(body) > maxWidgetBody {
		// The app would read a claim the gateway could not: fail closed.
		return "", errBodyTooLarge
	}
	return jsonClaim(body, wc.UserJSON)
}

// jsonClaim reads a top-level field. An ambiguous body (the field twice,
// in another spelling, or trailing data) is a claim nobody can prove.
func jsonClaim(body []byte, field string) (string, error) {
	sh := shapeOf(body)
	if sh.ambiguous(field) {
		return ambiguousClaim, nil
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return "", nil
	}
	v, _ := jsonScalar(doc[field])
	return v, nil
}

// widgetToken finds the identity token. Copies of the token header that
// differ are no token: the app may read the copy the gateway did not check.
func widgetToken(wc *WidgetConfig, r *http.Request) string {
	if wc.TokenHeader != "" {
		vs := r.Header.Values(wc.TokenHeader)
		for _, other := range vs[min(1, len(vs)):] {
			if other != vs[0] {
				return ""
			}
		}
		v := r.Header.Get(wc.TokenHeader)
		if strings.EqualFold(wc.TokenHeader, "Authorization") {
			if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
				return strings.TrimSpace(v[7:])
			}
			v = ""
		}
		if v != "" {
			return v
		}
	}
	if wc.TokenQuery != "" && r.URL.RawQuery != "" {
		return r.URL.Query().Get(wc.TokenQuery)
	}
	return ""
}
