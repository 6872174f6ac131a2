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

// hasField reports whether any copy of the field (form, JSON or query)
// carries the value: an app may read any of them, so any one makes the
// request a sign-in to watch.
func (s *signinReq) hasField(r *http.Request, f Field) bool {
	var vals []string
	vals = append(vals, s.form[f.Name]...)
	for k, raw := range s.json {
		if strings.EqualFold(k, f.Name) {
			if v, ok := jsonScalar(raw); ok {
				vals = append(vals, v)
			}
		}
	}
	if r.URL.RawQuery != "" {
		vals = append(vals, r.URL.Query()[f.Name]...)
	}
	for _, v := range vals {
		if f.Value == "" || v == f.Value {
			return true
		}
	}
	return false
}

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

// needsBody reports whether the sign-in's body must be read: for a field
// condition or a form/JSON identity source.
func (g *Guard) needsBody() bool {
	if g.cfg.SignInField != nil {
		return true
	}
	for _, s := range g.cfg.Identity {
		if s.Kind == FromForm || s.Kind == FromJSON {
			return true
		}
	}
	return false
}

// matchSignIn tells whether r is the app's sign-in. The body, when read, is
// bounded and put back intact for the app.
func (g *Guard) matchSignIn(r *http.Request) (*signinReq, error) {
	ok, err := g.cfg.SignIn.MatchWithError(r)
	if err != nil || !ok {
		return nil, err
	}
	s := &signinReq{}
	if g.needsBody() && r.Body != nil && r.Body != http.NoBody {
		if err := s.readBody(r, g.cfg.MaxBodyBytes); err != nil {
			return nil, err
		}
	}
	if f := g.cfg.SignInField; f != nil && !s.hasField(r, *f) {
		return nil, nil
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
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		// A body that is not a valid form is the app's to refuse; it simply
		// has no fields for the gateway.
		s.form, _ = url.ParseQuery(string(body))
	case "multipart/form-data":
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(bytes.NewReader(body))
		if c.ParseMultipartForm(limit) == nil && c.MultipartForm != nil {
			s.form = c.MultipartForm.Value
		}
		_ = params
	case "application/json":
		if json.Unmarshal(body, &s.json) == nil {
			s.jsonShape = shapeOf(body)
		}
	}
	return nil
}
