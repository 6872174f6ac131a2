package challengeui

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mfagate/mfagate/useragent"
)

// files holds the default templates and the static assets. It is the only
// package-level variable; everything derived from it is built once in New.
//
//go:embed templates/*.html assets/*
var files embed.FS

// ContentSecurityPolicy is sent with every page. Pages carry no inline script
// or style, so nothing needs 'unsafe-inline' or a nonce; data: images are
// allowed for the QR code.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configures a Renderer.
type Options struct {
	Prefix      string // gateway path prefix, e.g. "/_mfa/"; must start and end with "/"
	Issuer      string // product/app name shown in titles, e.g. "Demo Dashboard"
	TemplateDir string // optional: files here named like the embedded templates override them
}

// Renderer renders the pages and serves their assets. It is immutable after
// New and safe for concurrent use.
type Renderer struct {
	prefix string
	issuer string
	pages  map[string]*template.Template // by Page.pageName()
	assets map[string]asset              // by file name, e.g. "mfa.css"
}

// baseTemplates are parsed into every page's set; pageTemplates each add the
// "content" (and optionally "dialogs") blocks of one page.
func baseTemplates() []string { return []string{"layout.html", "partials.html"} }

func pageTemplates() []string {
	return []string{"challenge.html", "recovery.html", "security.html", "admin.html", "error.html"}
}

// New parses the templates once and loads the assets. A template that fails to
// parse, from the embedded set or from TemplateDir, is an error here rather
// than on the first request.
func New(opts Options) (*Renderer, error) {
	if !strings.HasPrefix(opts.Prefix, "/") || !strings.HasSuffix(opts.Prefix, "/") {
		return nil, fmt.Errorf("challengeui: prefix %q must start and end with \"/\"", opts.Prefix)
	}
	r := &Renderer{
		prefix: opts.Prefix,
		issuer: opts.Issuer,
		pages:  make(map[string]*template.Template),
	}
	var err error
	if r.assets, err = loadAssets(); err != nil {
		return nil, err
	}

	base := template.New("base").Funcs(r.funcs())
	for _, name := range baseTemplates() {
		src, err := readTemplate(opts.TemplateDir, name)
		if err != nil {
			return nil, err
		}
		if _, err := base.New(name).Parse(src); err != nil {
			return nil, fmt.Errorf("challengeui: parse %s: %w", name, err)
		}
	}
	for _, name := range pageTemplates() {
		src, err := readTemplate(opts.TemplateDir, name)
		if err != nil {
			return nil, err
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("challengeui: clone for %s: %w", name, err)
		}
		if _, err := t.New(name).Parse(src); err != nil {
			return nil, fmt.Errorf("challengeui: parse %s: %w", name, err)
		}
		if t.Lookup("layout") == nil || t.Lookup("content") == nil {
			return nil, fmt.Errorf("challengeui: %s: templates \"layout\" and \"content\" must be defined", name)
		}
		r.pages[strings.TrimSuffix(name, ".html")] = t
	}
	return r, nil
}

// readTemplate returns the override from dir if it has one, else the embedded file.
func readTemplate(dir, name string) (string, error) {
	if dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("challengeui: template override: %w", err)
		}
	}
	b, err := files.ReadFile("templates/" + name)
	if err != nil {
		return "", fmt.Errorf("challengeui: embedded template %s: %w", name, err)
	}
	return string(b), nil
}

func (r *Renderer) funcs() template.FuncMap {
	return template.FuncMap{
		// url builds a gateway URL from the prefix: url "challenge" -> /_mfa/challenge.
		"url": func(path string) string { return r.prefix + path },
		// asset adds a content hash so the long cache lifetime survives upgrades.
		"asset": func(name string) string {
			if a, ok := r.assets[name]; ok {
				return r.AssetPath(name) + "?v=" + a.version
			}
			return r.AssetPath(name)
		},
		"withNext":    withNext,
		"stepsOf":     stepsOf,
		"removing":    removing,
		"methodName":  methodName,
		"groupSecret": groupSecret,
		// olderURL is the audit log's "Older events" href, filters kept.
		"olderURL":   func(a AuditView) string { return olderURL(r.prefix, a) },
		"humanTime":  humanTime,
		"isoTime":    isoTime,
		"deviceName": useragent.Describe,
		"clip":       clip,
		"plural":     plural,
	}
}

// humanTime formats t for people, in UTC so that every admin reads the same
// clock: "26 Nov 2026, 14:05 UTC". The spaces inside the date and inside the
// clock are no-break spaces, so a narrow table cell wraps only after the
// comma. The "time" partial pairs it with a machine-readable <time datetime>;
// the zero time is shown as "—".
func humanTime(t time.Time) string {
	return t.UTC().Format("2\u00a0Jan\u00a02006, 15:04\u00a0UTC")
}

// isoTime is the datetime attribute of a <time> element.
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// clip shortens s to at most n runes, marking the cut with "…".
func clip(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:max(n-1, 0)]) + "…"
}

// plural picks the word for a count: plural 1 "day" "days" -> "day". The
// count may be any of the integer types the view models use.
func plural(n any, one, many string) string {
	switch n {
	case 1, int64(1), uint64(1):
		return one
	}
	return many
}

// withNext appends ?next=… to u when next is set. next was validated by the
// caller as a same-origin path; it is query-escaped here and html/template
// escapes the whole attribute.
func withNext(u, next string) string {
	if next == "" {
		return u
	}
	return u + "?next=" + url.QueryEscape(next)
}

// groupSecret splits a base32 secret into blocks of four for typing by hand.
// Authenticator apps ignore the spaces; the copy button copies it without them.
func groupSecret(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// removing is the method a confirm action removes ("remove-email"), or "".
func removing(action string) string {
	m, ok := strings.CutPrefix(action, "remove-")
	if !ok {
		return ""
	}
	return m
}

// methodName is a method for people.
func methodName(method string) string {
	switch method {
	case "totp":
		return "the authenticator app"
	case "email":
		return "codes by email"
	case "sms":
		return "codes by text message"
	}
	return method
}

// stepsView is what the authenticator-steps template sees: the page view
// (for the hidden fields), the setup and where its code is posted.
type stepsView struct {
	View   *view
	Setup  *SetupView
	Action string
}

func stepsOf(v *view, s *SetupView, action string) stepsView {
	return stepsView{View: v, Setup: s, Action: action}
}

// view is what the templates see: the page plus the values derived from it.
type view struct {
	Name    string
	Title   string
	Issuer  string
	User    string
	CSRF    string
	Next    string
	IsAdmin bool // the header links to the admin page
	Modal   bool // a dialog is open; the rest of the page is inert
	Page    Page // the concrete page, always a value, never a pointer
}

func (r *Renderer) view(p Page) (*view, error) {
	var b Base
	v := &view{Issuer: r.issuer}
	switch pg := p.(type) {
	case ChallengePage:
		b, v.Next, v.Page = pg.base(), pg.Next, pg
	case *ChallengePage:
		if pg == nil {
			return nil, errors.New("nil page")
		}
		b, v.Next, v.Page = pg.base(), pg.Next, *pg
	case RecoveryPage:
		b, v.Next, v.Page = pg.base(), pg.Next, pg
	case *RecoveryPage:
		if pg == nil {
			return nil, errors.New("nil page")
		}
		b, v.Next, v.Page = pg.base(), pg.Next, *pg
	case SecurityPage:
		b, v.Next, v.Page = pg.base(), pg.Next, pg
		v.Modal = pg.modal()
	case *SecurityPage:
		if pg == nil {
			return nil, errors.New("nil page")
		}
		b, v.Next, v.Page = pg.base(), pg.Next, *pg
		v.Modal = pg.modal()
	case AdminPage:
		b, v.Page = pg.base(), pg
	case *AdminPage:
		if pg == nil {
			return nil, errors.New("nil page")
		}
		b, v.Page = pg.base(), *pg
	case ErrorPage:
		b, v.Page = pg.base(), pg
	case *ErrorPage:
		if pg == nil {
			return nil, errors.New("nil page")
		}
		b, v.Page = pg.base(), *pg
	default:
		return nil, fmt.Errorf("unknown page type %T", p)
	}
	v.Name = v.Page.pageName()
	v.User, v.CSRF, v.Title, v.IsAdmin = b.User, b.CSRF, b.Title, b.IsAdmin
	if v.Title == "" {
		v.Title = defaultTitle(v.Page)
	}
	return v, nil
}

// Render executes the page into a buffer and only then writes it, so a
// template error becomes a clean 500 instead of half a page. The error is
// returned for the caller to log.
func (r *Renderer) Render(w http.ResponseWriter, status int, p Page) error {
	var buf bytes.Buffer
	v, err := r.view(p)
	if err == nil {
		err = r.pages[v.Name].ExecuteTemplate(&buf, "layout", v)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	if err != nil {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "Internal Server Error: the page could not be rendered.\n")
		return fmt.Errorf("challengeui: render: %w", err)
	}
	if status == 0 {
		status = http.StatusOK
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err = buf.WriteTo(w)
	return err
}
