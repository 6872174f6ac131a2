package guard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// bodyFields reads the body of a request from a signed-in session for its
// field names: an app may switch the session to whoever's password arrives,
// at any URL. Urlencoded, JSON and multipart bodies within the limit are
// read, and put back for the app; sure is false for any other body, or a
// larger one: it may carry anything.
func (g *Guard) bodyFields(r *http.Request) (names []string, sure bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true, nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var scan func([]byte) ([]string, bool)
	switch {
	case mt == "application/x-www-form-urlencoded":
		scan = formNames
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		scan = jsonKeys
	case mt == "multipart/form-data" && params["boundary"] != "":
		scan = func(b []byte) ([]string, bool) { return multipartNames(b, params["boundary"]) }
	default:
		return nil, false, nil
	}
	if r.ContentLength > g.cfg.MaxBodyBytes {
		return nil, false, nil // an upload: not read here
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("%w: body: %v", errUnreadable, err)
	}
	if int64(len(body)) > g.cfg.MaxBodyBytes { // a chunked body past the limit
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil, false, nil
	}
	setBody(r, body)
	names, sure = scan(body)
	return names, sure, nil
}

// formNames are the names of an urlencoded body's fields.
func formNames(b []byte) ([]string, bool) {
	var names []string
	queryHas(string(b), func(k string) bool {
		names = append(names, k)
		return false
	})
	return names, true
}

// jsonKeys are the object keys of a JSON body, at any depth. A body that is
// not JSON is not sure.
func jsonKeys(b []byte) ([]string, bool) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, false
	}
	var names []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				names = append(names, k)
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return names, true
}

// multipartNames are the form names of a multipart body's parts. A body
// that does not parse is not sure.
func multipartNames(b []byte, boundary string) ([]string, bool) {
	var names []string
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return names, true
		}
		if err != nil {
			return names, false
		}
		names = append(names, p.FormName())
	}
}
