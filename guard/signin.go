package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// signinReq is a request that matched the sign-in, with the fields of its
// body when the gateway needed to read them.
type signinReq struct {
	rules     *Rules // the rules of the sign-in matched: a route's or the block's
	form      url.Values
	json      map[string]json.RawMessage
	jsonShape jsonShape
}

// field returns a form or JSON field's value as text. A field given twice
// (username=bob&username=alice, or "username" and "USERNAME" in JSON) is
// ambiguous: apps disagree on which copy wins (first, last, case-folded),
// so the gateway reads it as absent rather than guess.
func (s *signinReq) field(kind, name string) (string, bool) {
	switch kind {
	case FromForm:
		if vs, ok := s.form[name]; ok && len(vs) == 1 {
			return vs[0], true
		}
	case FromJSON:
		if s.jsonShape.ambiguous(name) {
			return "", false
		}
		if raw, ok := s.json[name]; ok {
			return jsonScalar(raw)
		}
	}
	return "", false
}

// hasField reports whether any copy of the field (form, JSON or query, the
// name in any letter case) carries the value: an app may read any of them,
// so any one makes the request a sign-in to watch. Copies with different
// values are errAmbiguousField: the app may read the one the gateway did not.
func (s *signinReq) hasField(r *http.Request, f Field) (bool, error) {
	var vals []string
	for k, vs := range s.form {
		if strings.EqualFold(k, f.Name) {
			vals = append(vals, vs...)
		}
	}
	for k, raw := range s.json {
		if strings.EqualFold(k, f.Name) {
			v, _ := jsonScalar(raw)
			vals = append(vals, v)
		}
	}
	if r.URL.RawQuery != "" {
		for k, vs := range r.URL.Query() {
			if strings.EqualFold(k, f.Name) {
				vals = append(vals, vs...)
			}
		}
	}
	for _, v := range vals {
		if v != vals[0] {
			return false, errAmbiguousField
		}
	}
	return len(vals) > 0 && (f.Value == "" || vals[0] == f.Value), nil
}

// errAmbiguousField is a sign-in field given more than once with different values.
var errAmbiguousField = errors.New("the sign-in field is given twice with different values")

// jsonShape lists the top-level keys of a JSON object as written, and
// whether anything follows the object (which some decoders ignore).
type jsonShape struct {
	keys     []string
	trailing bool
}

func shapeOf(body []byte) jsonShape {
	var sh jsonShape
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return sh
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return sh
		}
		k, _ := t.(string)
		sh.keys = append(sh.keys, k)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return sh
		}
	}
	if _, err := dec.Token(); err == nil { // the closing brace
		_, err = dec.Token()
		sh.trailing = err != io.EOF
	}
	return sh
}

// ambiguous reports whether apps could disagree on the field's value: it is
// given twice, or in another spelling that case-insensitive decoders (Go's
// encoding/json folds "USER_ID" and "uſer_id" into user_id) would read, or
// the body carries more than one JSON value.
func (sh jsonShape) ambiguous(name string) bool {
	n := 0
	for _, k := range sh.keys {
		if strings.EqualFold(k, name) {
			n++
			if k != name {
				return true
			}
		}
	}
	return n > 1 || sh.trailing
}

// jsonScalar renders a JSON string, number or boolean as text.
func jsonScalar(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return strconv.FormatBool(b), true
	}
	return "", false
}

// needsBody reports whether a sign-in's body must be read: for a field
// condition or a form/JSON identity source.
func (ru *Rules) needsBody() bool {
	if ru.Field != nil {
		return true
	}
	for _, s := range ru.Identity {
		if s.Kind == FromForm || s.Kind == FromJSON {
			return true
		}
	}
	return false
}

// matchSignIn tells whether r is the app's sign-in: a sign-in route's (in
// order), or the block's. The body, when read, is bounded and put back
// intact for the app.
func (g *Guard) matchSignIn(r *http.Request) (*signinReq, error) {
	for i := range g.cfg.Routes {
		rt := &g.cfg.Routes[i]
		if s, err := g.matchRules(r, rt.Match, &rt.Rules); err != nil || s != nil {
			return s, err
		}
	}
	if g.cfg.SignIn == nil {
		return nil, nil
	}
	return g.matchRules(r, g.cfg.SignIn, &g.cfg.block)
}

// matchRules matches r against one sign-in matcher and its rules' field.
func (g *Guard) matchRules(r *http.Request, m Matcher, ru *Rules) (*signinReq, error) {
	ok, err := m.MatchWithError(r)
	if err != nil || !ok {
		return nil, err
	}
	s := &signinReq{rules: ru}
	if ru.needsBody() && r.Body != nil && r.Body != http.NoBody {
		if err := s.readBody(r, g.cfg.MaxBodyBytes); err != nil {
			return nil, err
		}
	}
	if f := ru.Field; f != nil {
		if ok, err := s.hasField(r, *f); err != nil || !ok {
			return nil, err
		}
	}
	return s, nil
}

var errBodyTooLarge = errors.New("sign-in request body too large")

func (s *signinReq) readBody(r *http.Request, limit int64) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body.Close()
	if err != nil {
		return fmt.Errorf("read sign-in body: %w", err)
	}
	if int64(len(body)) > limit {
		return errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	// A body of a kind the gateway reads must parse: a laxer app parser
	// would find fields the gateway did not see.
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		if s.form, err = url.ParseQuery(string(body)); err != nil {
			return fmt.Errorf("%w: %v", errUnreadable, err)
		}
	case "multipart/form-data":
		// Go's reader takes some cut-off bodies as complete; the closing
		// delimiter must be there.
		if b := params["boundary"]; b == "" || !bytes.Contains(body, []byte("--"+b+"--")) {
			return fmt.Errorf("%w: multipart body without its closing delimiter", errUnreadable)
		}
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(bytes.NewReader(body))
		if err := c.ParseMultipartForm(limit); err != nil {
			return fmt.Errorf("%w: %v", errUnreadable, err)
		}
		if c.MultipartForm != nil {
			s.form = c.MultipartForm.Value
			_ = c.MultipartForm.RemoveAll()
		}
	case "application/json":
		if err := json.Unmarshal(body, &s.json); err != nil {
			return fmt.Errorf("%w: %v", errUnreadable, err)
		}
		s.jsonShape = shapeOf(body)
	}
	return nil
}
