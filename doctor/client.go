package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds what the doctor reads of an answer.
const maxBody = 1 << 20

// errBudget is the bound on requests to the app: the doctor must never
// turn into a load test or a password sprayer.
var errBudget = errors.New("request budget spent")

// pacer spaces the doctor's requests and bounds their number. One pacer
// serves every session of a run.
type pacer struct {
	every time.Duration
	left  int
	last  time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	if p.left <= 0 {
		return errBudget
	}
	p.left--
	if d := time.Until(p.last.Add(p.every)); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	p.last = time.Now()
	return nil
}

// browser is a throwaway browser-like session with the app: its own cookie
// jar, redirects not followed (each answer is looked at as sent).
type browser struct {
	base  *url.URL
	jar   *cookiejar.Jar
	http  *http.Client
	pace  *pacer
	agent string
}

func (d *run) newBrowser() *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &browser{
		base: d.base,
		jar:  jar,
		pace: d.pace,
		http: &http.Client{
			Jar:       jar,
			Timeout:   d.opts.Timeout,
			Transport: d.transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		agent: "mfagate-doctor",
	}
}

// answer is one response, read whole (bounded).
type answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Cookies []*http.Cookie // parsed Set-Cookie lines
}

// location is the answer's redirect target, or "".
func (a *answer) location() string {
	if a.Status >= 300 && a.Status < 400 {
		return a.Header.Get("Location")
	}
	return ""
}

// do sends req (its URL relative to the app) and reads the answer.
func (b *browser) do(ctx context.Context, method, target string, body io.Reader, header http.Header) (*answer, error) {
	if err := b.pace.wait(ctx); err != nil {
		return nil, err
	}
	u, err := b.base.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", target, err)
	}
	if u.Host != b.base.Host {
		return nil, fmt.Errorf("URL %q leaves the app", target)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", b.agent)
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
	}
	res, err := b.http.Do(req)
	if err != nil {
		// The URL may carry credentials (the probes): never in an error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, u.Path, err)
	}
	return &answer{Status: res.StatusCode, Header: res.Header, Body: data, Cookies: res.Cookies()}, nil
}

// cookies are the jar's cookies for the app.
func (b *browser) cookies() []*http.Cookie { return b.jar.Cookies(b.base) }

const redacted = "****"

// secretName reports whether a field name reads like a password or token.
func secretName(k string) bool {
	lk := strings.ToLower(k)
	for _, w := range []string{"pass", "pwd", "secret", "token"} {
		if strings.Contains(lk, w) {
			return true
		}
	}
	return false
}
