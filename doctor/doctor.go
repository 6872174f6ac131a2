package doctor

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/guard"
)

// Options are the account the doctor signs in with, and its manners.
type Options struct {
	User     string
	Password string // used for the sign-ins and never printed
	// WrongPassword is the password that must fail; empty: a random one.
	WrongPassword string
	// PasswordField names the password in a sign-in the doctor builds
	// itself (no HTML form found, e.g. a JSON sign-in). Default "password".
	PasswordField string
	Rate          float64       // requests per second, default 4, at most 20
	MaxRequests   int           // requests in all, default 80
	Timeout       time.Duration // per request, default 10s
	// Transport, if set, carries the requests (tests); default: a fresh one.
	Transport http.RoundTripper

	gap time.Duration // tests in this package: the spacing, instead of Rate's
}

// Defaults and bounds of Options.
const (
	DefaultRate        = 4
	MaxRate            = 20
	DefaultMaxRequests = 80
	maxMaxRequests     = 200
)

// ErrBadInput is wrapped by every error that means the doctor could not
// check the configuration (as opposed to a finding about it).
var ErrBadInput = errors.New("cannot check")

// run is one doctor run: its configuration, its pacer, what it learnt.
type run struct {
	cfg       Config
	opts      Options
	base      *url.URL
	pace      *pacer
	transport http.RoundTripper
	rep       *Report
	landing   string  // the page a signed-in user is sent to
	anonHome  *answer // that page for nobody
}

// Run checks cfg against the app and reports. An error means the checks
// could not be made (unreachable app, credentials that do not sign in, a
// configuration without a sign-in to check); it wraps ErrBadInput.
func Run(ctx context.Context, cfg Config, opts Options) (*Report, error) {
	if opts.User == "" || opts.Password == "" {
		return nil, fmt.Errorf("%w: a user and a password are required", ErrBadInput)
	}
	base, err := url.Parse(cfg.Upstream)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: upstream %q: want http://host:port", ErrBadInput, cfg.Upstream)
	}
	base.Path, base.RawQuery = "/", ""
	if len(cfg.SignIns) == 0 {
		return nil, fmt.Errorf("%w: the configuration has no sign_in", ErrBadInput)
	}
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	opts.Rate = min(opts.Rate, MaxRate)
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = DefaultMaxRequests
	}
	opts.MaxRequests = min(opts.MaxRequests, maxMaxRequests)
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.PasswordField == "" {
		opts.PasswordField = "password"
	}
	if opts.WrongPassword == "" {
		var b [9]byte
		_, _ = rand.Read(b[:])
		opts.WrongPassword = "wrong-" + hex.EncodeToString(b[:])
	}
	if opts.WrongPassword == opts.Password {
		return nil, fmt.Errorf("%w: the wrong password is the password", ErrBadInput)
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // straight to the app, never through a proxy
		tr = t
		defer t.CloseIdleConnections()
	}
	d := &run{
		cfg: cfg, opts: opts, base: base, transport: tr,
		pace: &pacer{every: cmp.Or(opts.gap, time.Duration(float64(time.Second)/opts.Rate)), left: opts.MaxRequests},
		rep:  &Report{Upstream: base.String()},
	}
	err = d.check(ctx)
	d.rep.Requests = opts.MaxRequests - d.pace.left
	if err != nil {
		if errors.Is(err, errBudget) {
			d.rep.add(Warn, "doctor", Ref{}, "", "the request budget (%d) ran out before every check was made", opts.MaxRequests)
			return d.rep, nil
		}
		return d.rep, err
	}
	return d.rep, nil
}

func (d *run) check(ctx context.Context) error {
	var ok *attempt
	for i := range d.cfg.SignIns {
		a, err := d.checkSignIn(ctx, &d.cfg.SignIns[i])
		if err != nil {
			return err
		}
		if ok == nil && a != nil {
			ok = a
		}
	}
	if ok == nil {
		return nil // every sign-in failed the configuration: reported
	}
	if err := d.checkCredentials(ctx, ok); err != nil {
		return err
	}
	return d.checkSignOut(ctx, ok)
}

// attempt is one sign-in the doctor made.
type attempt struct {
	si       *SignIn
	b        *browser
	req      string         // the request, redacted
	sent     sentRequest    // what the identity sources read
	before   []*http.Cookie // the jar before the sign-in
	ans      *answer
	whoami   string // the app's answer about the session afterwards ("" nobody)
	whoKnown bool
	landing  tri
}

// sentRequest is what a sign-in request carried.
type sentRequest struct {
	form      url.Values
	json      map[string]string
	query     url.Values
	userField string
	passField string
}

type tri int

const (
	unknown tri = iota
	yes
	no
)

// signIn primes a fresh browser on the sign-in form (as a user would
// open it), then posts the sign-in as configured.
func (d *run) signIn(ctx context.Context, si *SignIn, user, pass, label string) (*attempt, error) {
	b := d.newBrowser()
	method, target, ok := sendable(si.Match, http.MethodPost)
	if !ok {
		return nil, nil
	}
	if si.Field != nil && si.Field.Value != "" {
		target = withQuery(target, si.Field.Name, si.Field.Value)
	}
	page, err := b.do(ctx, http.MethodGet, target, nil, nil)
	if err != nil {
		return nil, err
	}
	a := &attempt{si: si, b: b, before: b.cookies()}
	fm, hasForm := signInForm(page.Body)
	jsonBody := !hasForm && hasKind(si.identity(), guard.FromJSON)
	s := sentRequest{userField: "username", passField: d.opts.PasswordField, query: url.Values{}}
	for _, src := range si.identity() {
		if src.Kind == guard.FromForm || src.Kind == guard.FromJSON {
			s.userField = src.Name
			break
		}
	}
	if u, err := url.Parse(target); err == nil {
		s.query = u.Query()
	}
	enc := "form"
	if jsonBody {
		enc = "json"
	}
	if hasForm {
		s.userField, s.passField = fm.User, fm.Password
		s.form = fm.Fields
		s.form.Set(fm.User, user)
		s.form.Set(fm.Password, pass)
		if si.Field != nil && !hasFold(s.form, si.Field.Name) && !hasFold(s.query, si.Field.Name) {
			s.form.Set(si.Field.Name, si.Field.Value)
		}
	}
	if hasForm && !d.matches(si.Match, method, fm.Action, target) {
		d.rep.add(Warn, "sign-in", si.Match.Ref, "match the path the form posts to",
			"the app's sign-in form at %s posts to %q, which this sign_in does not match; the doctor posted to %s as configured", target, fm.Action, target)
	}
	a.sent, a.ans, err = d.post(ctx, b, method, target, enc, s, user, pass, si.Field)
	if err != nil {
		return nil, err
	}
	if !hasForm && (a.ans.Status == http.StatusBadRequest || a.ans.Status == http.StatusUnsupportedMediaType) {
		// No form to go by: the app may want the other encoding.
		other := map[string]string{"form": "json", "json": "form"}[enc]
		if a.sent, a.ans, err = d.post(ctx, b, method, target, other, s, user, pass, si.Field); err != nil {
			return nil, err
		}
	}
	a.req = fmt.Sprintf("%s %s %s", method, target, d.describe(a.sent))
	d.rep.Exchanges = append(d.rep.Exchanges, Exchange{Label: label, Request: a.req, Status: a.ans.Status,
		Location: a.ans.location(), Cookies: d.notes(a.ans)})
	if err := d.observe(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// post sends a sign-in: the form's fields when s has them, else the user
// and password in the encoding enc ("form" or "json").
func (d *run) post(ctx context.Context, b *browser, method, target, enc string, s sentRequest, user, pass string, field *guard.Field) (sentRequest, *answer, error) {
	header := http.Header{}
	var body string
	switch {
	case s.form != nil:
		body = s.form.Encode()
		header.Set("Content-Type", "application/x-www-form-urlencoded")
	case enc == "json":
		s.json = map[string]string{s.userField: user, s.passField: pass}
		if field != nil {
			s.json[field.Name] = field.Value
		}
		j, _ := json.Marshal(s.json)
		body = string(j)
		header.Set("Content-Type", "application/json")
		header.Set("Accept", "application/json")
	default:
		f := url.Values{s.userField: {user}, s.passField: {pass}}
		if field != nil {
			f.Set(field.Name, field.Value)
		}
		body = f.Encode()
		header.Set("Content-Type", "application/x-www-form-urlencoded")
		a, err := b.do(ctx, method, target, strings.NewReader(body), header)
		s.form = f
		return s, a, err
	}
	a, err := b.do(ctx, method, target, strings.NewReader(body), header)
	return s, a, err
}

// observe asks the app, after a sign-in or a probe, whether the browser
// is signed in: through the configured whoami or page, and through the
// page a signed-in user lands on.
func (d *run) observe(ctx context.Context, a *attempt) error {
	if src := d.asker(a.si); src != nil {
		u, known, err := d.ask(ctx, a.b, src)
		if err != nil {
			return err
		}
		a.whoami, a.whoKnown = u, known
	}
	if d.landing == "" {
		if loc := a.ans.location(); loc != "" && a.ans.Status < 400 {
			// Its host may be the gateway's public one: the path is the app's.
			if u, err := d.base.Parse(loc); err == nil {
				d.landing = u.RequestURI()
			}
		}
		if d.landing == "" {
			d.landing = "/"
		}
	}
	if d.anonHome == nil {
		var err error
		if d.anonHome, err = d.newBrowser().do(ctx, http.MethodGet, d.landing, nil, nil); err != nil {
			return err
		}
	}
	home, err := a.b.do(ctx, http.MethodGet, d.landing, nil, nil)
	if err != nil {
		return err
	}
	anon := d.anonHome
	switch {
	case home.Status == http.StatusOK && (anon.Status >= 300 && anon.Status < 400 || anon.Status == 401 || anon.Status == 403):
		a.landing = yes
	case home.Status == http.StatusOK && containsFold(home.Body, d.opts.User) && !containsFold(anon.Body, d.opts.User):
		a.landing = yes // the page names the user only when signed in
	case home.Status == anon.Status && home.location() == anon.location() && anon.Status != http.StatusOK:
		a.landing = no
	}
	return nil
}

// signedIn sums up observe: yes when either the app's answer or the
// landing page says so.
func (a *attempt) signedIn() tri {
	switch {
	case a.whoKnown && a.whoami != "", a.landing == yes:
		return yes
	case a.whoKnown, a.landing == no:
		return no
	}
	return unknown
}

// asker is the source the doctor asks the app with: the sign-in's own
// whoami or page, else any the configuration has.
func (d *run) asker(si *SignIn) *Source {
	if si != nil {
		if s := si.asksApp(); s != nil {
			return s
		}
	}
	for i := range d.cfg.SignIns {
		if s := d.cfg.SignIns[i].asksApp(); s != nil {
			return s
		}
	}
	return nil
}

// ask reads the user from the app's answer at the source's path, as the
// gateway does: "" when it says nobody, known false when it says neither.
func (d *run) ask(ctx context.Context, b *browser, src *Source) (user string, known bool, err error) {
	a, err := b.do(ctx, http.MethodGet, src.Path, nil, http.Header{"Accept": {"application/json, text/html;q=0.9"}})
	if err != nil {
		return "", false, err
	}
	u, k := userFrom(src.IdentitySource, a)
	return u, k, nil
}

// userFrom mirrors the gateway's reading of a whoami or page answer.
func userFrom(s guard.IdentitySource, a *answer) (string, bool) {
	switch {
	case a.Status == http.StatusUnauthorized, a.Status == http.StatusForbidden, a.Status >= 300 && a.Status < 400:
		return "", true
	case a.Status != http.StatusOK:
		return "", false
	}
	if s.Kind == guard.FromPage {
		re, err := regexp.Compile(s.Match)
		if err != nil || re.NumSubexp() < 1 {
			return "", false
		}
		if m := re.FindSubmatch(a.Body); m != nil {
			return strings.TrimSpace(html.UnescapeString(string(m[1]))), true
		}
		return "", true
	}
	if !json.Valid(a.Body) {
		return "", false
	}
	if s.Nobody != "" {
		if v := jsonAt(a.Body, s.Nobody); v != nil && string(v) != "null" && string(v) != "false" {
			return "", true
		}
	}
	v, _ := jsonScalar(jsonAt(a.Body, s.Field))
	return strings.TrimSpace(v), true
}

func jsonAt(doc json.RawMessage, path string) json.RawMessage {
	for part := range strings.SplitSeq(path, ".") {
		var m map[string]json.RawMessage
		var arr []json.RawMessage
		switch {
		case json.Unmarshal(doc, &m) == nil:
			doc = m[part]
		case json.Unmarshal(doc, &arr) == nil:
			i := -1
			_, _ = fmt.Sscanf(part, "%d", &i)
			if i < 0 || i >= len(arr) {
				return nil
			}
			doc = arr[i]
		default:
			return nil
		}
		if doc == nil {
			return nil
		}
	}
	return doc
}

func jsonScalar(raw json.RawMessage) (string, bool) {
	var v any
	if raw == nil || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%f", x), ".000000"), true
	}
	return "", false
}

// describe is a sign-in's body for the report: the password and anything
// named like a token hidden.
func (d *run) describe(s sentRequest) string {
	show := func(k, v string) string {
		switch {
		case k == s.passField || v == d.opts.Password || v == d.opts.WrongPassword:
			return k + "=" + redacted
		case secretName(k):
			return k + "=…"
		}
		return k + "=" + v
	}
	var parts []string
	kind := "form"
	if s.json != nil {
		kind = "json"
		for k, v := range s.json {
			parts = append(parts, show(k, v))
		}
	} else {
		for k, vs := range s.form {
			for _, v := range vs {
				parts = append(parts, show(k, v))
			}
		}
	}
	slices.Sort(parts)
	return "(" + kind + ": " + strings.Join(parts, ", ") + ")"
}

// redact hides the passwords in any text for the report.
func (d *run) redact(s string) string {
	for _, p := range []string{d.opts.Password, d.opts.WrongPassword} {
		if p == "" {
			continue
		}
		s = strings.ReplaceAll(s, p, redacted)
		s = strings.ReplaceAll(s, url.QueryEscape(p), redacted)
	}
	return s
}

// notes describes the cookies an answer sets and deletes.
func (d *run) notes(a *answer) []CookieNote {
	var out []CookieNote
	for _, c := range a.Cookies {
		n := CookieNote{Name: c.Name, HTTPOnly: c.HttpOnly,
			Deleted:   c.MaxAge < 0 || c.Value == "" || (!c.Expires.IsZero() && c.Expires.Before(time.Now())),
			CoveredBy: d.coveredBy(c.Name)}
		n.SessionLike = sessionLike(c.Name) || c.HttpOnly
		out = append(out, n)
	}
	return out
}

// coveredBy lists the session_cookie patterns that cover name, as the
// gateway matches them.
func (d *run) coveredBy(name string) []string {
	var out []string
	for _, p := range d.cfg.Cookies {
		if j, err := cookies.NewJar("mfa_session", []string{p.Name}); err == nil && j.IsApp(name) {
			out = append(out, p.Name)
		}
	}
	return out
}

// sessionLike: a name that reads like a session cookie's.
func sessionLike(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "csrf") || strings.Contains(n, "xsrf") {
		return false
	}
	for _, w := range []string{"sess", "sid", "auth", "token", "remember", "jwt", "login", "logged", "userid", "user_id", "uid"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// setsCovered reports whether the answer sets (not deletes) a cookie the
// session_cookie patterns cover.
func (d *run) setsCovered(a *answer) bool {
	for _, n := range d.notes(a) {
		if !n.Deleted && len(n.CoveredBy) > 0 {
			return true
		}
	}
	return false
}

func containsFold(body []byte, s string) bool {
	return strings.Contains(strings.ToLower(string(body)), strings.ToLower(s))
}

func hasKind(srcs []Source, kind string) bool {
	for _, s := range srcs {
		if s.Kind == kind {
			return true
		}
	}
	return false
}

func hasFold(v url.Values, name string) bool {
	for k := range v {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func withQuery(target, k, v string) string {
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	return target + sep + url.QueryEscape(k) + "=" + url.QueryEscape(v)
}

// otherCase is name with its first letter in the other case, or "" when
// it has no letter to change.
func otherCase(name string) string {
	r, size := utf8.DecodeRuneInString(name)
	switch {
	case unicode.IsUpper(r):
		return string(unicode.ToLower(r)) + name[size:]
	case unicode.IsLower(r):
		return string(unicode.ToUpper(r)) + name[size:]
	}
	return ""
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
