package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Credentials outside the sign-in. Apps that sign a user in from any URL
// read a user and password wherever a request carries them; the operator
// names those parameters (strip_param) and headers (strip_header), and the
// gateway removes them from every request that is not the sign-in, in every
// encoding an app parses: the query, urlencoded, multipart and JSON bodies.
// A query or body of those kinds that the gateway cannot parse is refused:
// the app's parser may be laxer and find what the gateway missed.

// errUnreadable is a query or body the gateway could not vet.
var errUnreadable = errors.New("request could not be parsed")

// stripCredentials removes the named headers and parameters from r.
func (g *Guard) stripCredentials(r *http.Request) error {
	for _, h := range g.cfg.StripHeaders {
		r.Header.Del(h)
	}
	names := g.cfg.StripParams
	if len(names) == 0 {
		return nil
	}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return fmt.Errorf("%w: query: %v", errUnreadable, err)
		}
		if stripParams(q, names) {
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil && ct != "" && mt == "" {
		return fmt.Errorf("%w: Content-Type: %v", errUnreadable, err)
	}
	switch {
	case mt == "multipart/form-data":
		return g.stripMultipart(r, params["boundary"], names)
	case mt == "application/x-www-form-urlencoded":
		return g.rewriteBody(r, func(body []byte) ([]byte, error) {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, err
			}
			if !stripParams(form, names) {
				return nil, nil
			}
			return []byte(form.Encode()), nil
		})
	case strings.HasPrefix(mt, "multipart/"), mt == "application/octet-stream":
		return nil // uploads: no credentials an app reads
	}
	// Anything else may be JSON to a lenient app (SDKs send JSON as
	// text/plain to avoid a CORS preflight): an object is vetted.
	// A body that no JSON parser reads carries nothing to strip; one that
	// says it is JSON must parse.
	isJSON := strings.HasSuffix(mt, "json")
	return g.rewriteBody(r, func(body []byte) ([]byte, error) {
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return nil, nil
		}
		out, err := stripJSON(body, names)
		if err != nil && !isJSON {
			return nil, nil
		}
		return out, err
	})
}

// rewriteBody reads r's body (bounded) and replaces it with what edit
// returns; nil means unchanged, and the body goes on as sent.
func (g *Guard) rewriteBody(r *http.Request, edit func([]byte) ([]byte, error)) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBodyBytes+1))
	r.Body.Close()
	if err != nil {
		return fmt.Errorf("%w: body: %v", errUnreadable, err)
	}
	if int64(len(body)) > g.cfg.MaxBodyBytes {
		return errBodyTooLarge
	}
	out, err := edit(body)
	if err != nil {
		return fmt.Errorf("%w: body: %v", errUnreadable, err)
	}
	if out == nil {
		out = body
	}
	setBody(r, out)
	return nil
}

func setBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// stripMultipart removes the named form fields from a multipart body. A
// body within the limit is rewritten in memory and keeps a Content-Length;
// a larger one (an upload) is rewritten as it streams to the app, and a
// fault found part-way cuts it off, so the app never gets it whole.
func (g *Guard) stripMultipart(r *http.Request, boundary string, names []string) error {
	if boundary == "" {
		return fmt.Errorf("%w: multipart body without a boundary", errUnreadable)
	}
	if r.ContentLength >= 0 && r.ContentLength <= g.cfg.MaxBodyBytes {
		return g.rewriteBody(r, func(body []byte) ([]byte, error) {
			var out bytes.Buffer
			changed, err := copyMultipart(&out, bytes.NewReader(body), boundary, names)
			if err != nil || !changed {
				return nil, err
			}
			return out.Bytes(), nil
		})
	}
	src := r.Body
	pr, pw := io.Pipe()
	go func() {
		_, err := copyMultipart(pw, src, boundary, names)
		src.Close()
		pw.CloseWithError(err)
	}()
	r.Body = pr
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	return nil
}

// copyMultipart copies a multipart body from src to dst, part by part with
// the same boundary, leaving out parts whose form name is one of names. A
// body that ends before its closing delimiter is an error: Go's reader takes
// some cut-off bodies as complete, and another parser may not.
func copyMultipart(dst io.Writer, src io.Reader, boundary string, names []string) (changed bool, err error) {
	watch := &closeWatcher{r: src, delim: []byte("--" + boundary + "--")}
	mr := multipart.NewReader(watch, boundary)
	mw := multipart.NewWriter(dst)
	if err := mw.SetBoundary(boundary); err != nil {
		return false, err
	}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
		if nameIn(p.FormName(), names) {
			changed = true
			continue
		}
		w, err := mw.CreatePart(p.Header)
		if err != nil {
			return false, err
		}
		if _, err := io.Copy(w, p); err != nil {
			return false, err
		}
	}
	if _, err := io.Copy(io.Discard, watch); err != nil { // the epilogue
		return false, err
	}
	if !watch.seen {
		return false, errors.New("multipart body without its closing delimiter")
	}
	return changed, mw.Close()
}

// closeWatcher passes a stream through and notes whether delim appeared.
type closeWatcher struct {
	r     io.Reader
	delim []byte
	tail  []byte // the last len(delim)-1 bytes read, for a delim split across reads
	seen  bool
}

func (c *closeWatcher) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.seen {
		buf := append(c.tail, p[:n]...)
		c.seen = bytes.Contains(buf, c.delim)
		c.tail = append(c.tail[:0], buf[max(0, len(buf)-len(c.delim)+1):]...)
	}
	return n, err
}

// stripJSON removes the named top-level keys (in any letter case, as Go's
// and other decoders match them) from a JSON object, keeping the rest as
// written. Nested objects are not searched.
func stripJSON(body []byte, names []string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out bytes.Buffer
	out.WriteByte('{')
	changed, n := false, 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if nameIn(k, names) {
			changed = true
			continue
		}
		if n > 0 {
			out.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		out.Write(kb)
		out.WriteByte(':')
		out.Write(v)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if !changed {
		return nil, nil
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// stripParams deletes the named parameters, in any letter case, reporting
// whether any was there.
func stripParams(v url.Values, names []string) bool {
	changed := false
	for k := range v {
		if nameIn(k, names) {
			delete(v, k)
			changed = true
		}
	}
	return changed
}

func nameIn(k string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	return false
}
