package caddymodule

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/doctor"
	"github.com/mfagate/mfagate/guard"
	"github.com/mfagate/mfagate/web"
)

// The doctor from the admin page: the same checks as `caddy mfa doctor`,
// on this handler's own live configuration, sent through the rest of the
// Caddy route after the handler (its next handler, usually the
// reverse_proxy), so they reach the app exactly as configured without
// passing the gateway and without anyone's cookies.

// liveDoctorConfig describes the handler's settings for package doctor. It
// must run before the matchers are loaded: loading clears the raw matcher
// fields. A running handler has no Caddyfile lines: each item names its
// directive instead. The upstream is filled in per run.
func liveDoctorConfig(m *Gateway) (doctor.Config, error) {
	cfg := doctor.Config{
		BlockRef:      doctor.Ref{Directive: "mfa_gateway"},
		UpstreamRef:   doctor.Ref{Directive: "the handler after mfa_gateway (reverse_proxy)"},
		SignOutOnReq:  m.SignOutOnRequest,
		NormalizeFold: m.NormalizeUsers == guard.NormalizeFold,
	}
	if m.NormalizeUsers != "" {
		cfg.NormalizeRef = doctor.Ref{Directive: "normalize_users " + m.NormalizeUsers}
	}
	for _, src := range m.UserFrom {
		cfg.Identity = append(cfg.Identity, doctor.Source{IdentitySource: src, Ref: doctor.Ref{Directive: sourceWords(src)}})
	}
	if len(m.SessionCookies) > 0 {
		at := doctor.Ref{Directive: "session_cookie " + strings.Join(m.SessionCookies, " ")}
		for _, n := range m.SessionCookies {
			cfg.Cookies = append(cfg.Cookies, doctor.Pattern{Name: n, Ref: at})
		}
	}
	if len(m.StripHeaders) > 0 {
		at := doctor.Ref{Directive: "strip_header " + strings.Join(m.StripHeaders, " ")}
		for _, h := range m.StripHeaders {
			cfg.StripHeaders = append(cfg.StripHeaders, doctor.Param{Name: h, Ref: at})
		}
	}
	if len(m.StripParams) > 0 {
		at := doctor.Ref{Directive: "strip_param " + strings.Join(m.StripParams, " ")}
		for _, p := range m.StripParams {
			cfg.StripParams = append(cfg.StripParams, doctor.Param{Name: p, Ref: at})
		}
	}
	for _, set := range m.SignOutRaw {
		sm, err := matchOf(set, doctor.Ref{})
		if err != nil {
			return cfg, fmt.Errorf("sign_out: %w", err)
		}
		sm.Ref.Directive = "sign_out " + matchWords(sm)
		cfg.SignOuts = append(cfg.SignOuts, sm)
	}
	var signIns []doctor.SignIn
	for _, set := range m.SignInRaw {
		sm, err := matchOf(set, doctor.Ref{})
		if err != nil {
			return cfg, fmt.Errorf("sign_in: %w", err)
		}
		sm.Ref.Directive = "sign_in " + matchWords(sm)
		signIns = append(signIns, doctor.SignIn{Match: sm})
	}
	for i := range m.SignInRoutes {
		rt := &m.SignInRoutes[i]
		for _, set := range rt.MatchRaw {
			sm, err := matchOf(set, doctor.Ref{})
			if err != nil {
				return cfg, fmt.Errorf("sign_in: %w", err)
			}
			sm.Ref.Directive = "sign_in " + matchWords(sm)
			in := " in " + sm.Ref.Directive
			si := doctor.SignIn{Match: sm, Field: rt.SignInField,
				Success: guard.Success{Kind: rt.Success, Statuses: rt.SuccessStatus, Cookies: rt.SuccessCookies}}
			if rt.SignInField != nil {
				si.FieldRef = doctor.Ref{Directive: fieldWords(rt.SignInField) + in}
			}
			if rt.Success != "" {
				si.SuccessRef = doctor.Ref{Directive: successWords(si.Success) + in}
			}
			for _, src := range rt.UserFrom {
				si.Identity = append(si.Identity, doctor.Source{IdentitySource: src, Ref: doctor.Ref{Directive: sourceWords(src) + in}})
			}
			signIns = append(signIns, si)
		}
	}
	blockSuccess := guard.Success{Kind: m.Success, Statuses: m.SuccessStatus, Cookies: m.SuccessCookies}
	var fieldRef, successRef doctor.Ref
	if m.SignInField != nil {
		fieldRef = doctor.Ref{Directive: fieldWords(m.SignInField)}
	}
	if m.Success != "" {
		successRef = doctor.Ref{Directive: successWords(blockSuccess)}
	}
	fillSignIns(&cfg, signIns, m.SignInField, fieldRef, blockSuccess, successRef)
	return cfg, nil
}

// matchWords is a matcher as a sign_in or sign_out line would say it.
func matchWords(m doctor.Match) string {
	var w []string
	w = append(w, m.Methods...)
	w = append(w, m.Paths...)
	for k, vs := range m.Query {
		for _, v := range vs {
			w = append(w, "query "+k+"="+v)
		}
	}
	w = append(w, m.Other...)
	if len(w) == 0 {
		return "(any request)"
	}
	return strings.Join(w, " ")
}

func sourceWords(s guard.IdentitySource) string {
	w := []string{"user_from", s.Kind}
	switch s.Kind {
	case guard.FromWhoami:
		w = append(w, s.Path, s.Field)
		if s.Nobody != "" {
			w = append(w, "nobody_if", s.Nobody)
		}
	case guard.FromPage:
		w = append(w, s.Path, strconv.Quote(s.Match))
	case guard.FromBasic:
	default:
		w = append(w, s.Name)
	}
	return strings.Join(w, " ")
}

func successWords(s guard.Success) string {
	w := []string{"success", s.Kind}
	for _, c := range s.Statuses {
		w = append(w, strconv.Itoa(c))
	}
	w = append(w, s.Cookies...)
	return strings.Join(w, " ")
}

func fieldWords(f *guard.Field) string {
	return strings.TrimSpace("sign_in_field " + f.Name + " " + f.Value)
}

// doctorCtxKey carries, on a POST to the handler's own pages, what a
// doctor run started by that request needs to reach the app: the request
// is over when the run is.
type doctorCtxKey struct{}

// doctorRoute is the rest of the Caddy route after this handler, as seen
// by one request.
type doctorRoute struct {
	next   caddyhttp.Handler
	server *caddyhttp.Server
	host   string
	remote string
	tls    *tls.ConnectionState // nil: plain HTTP
	local  any                  // http.LocalAddrContextKey's value: the server's own address
}

// withDoctorRoute returns r carrying its route for a doctor run, when r may
// start one (a POST under the prefix); other requests are left as they
// are, at no cost.
func (m *Gateway) withDoctorRoute(r *http.Request, next caddyhttp.Handler) *http.Request {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, m.cfg.Prefix) {
		return r
	}
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	rt := &doctorRoute{next: next, server: srv, host: r.Host, remote: r.RemoteAddr, local: r.Context().Value(http.LocalAddrContextKey)}
	if r.TLS != nil {
		// Only that the connection was TLS: never the admin's client certificate.
		rt.tls = &tls.ConnectionState{HandshakeComplete: true, Version: r.TLS.Version, ServerName: r.TLS.ServerName}
	}
	return r.WithContext(context.WithValue(r.Context(), doctorCtxKey{}, rt))
}

// errDebugLog: at DEBUG the reverse proxy logs each round trip with its
// URL, and the doctor sends the password in a query string on purpose (to
// see whether the app accepts it there).
var errDebugLog = fmt.Errorf("%w: Caddy logs at DEBUG, and the reverse proxy's debug lines show each request's URL, which would put the test password in the log (the check also sends it in a query string). Run the check with the log at INFO or above, or use caddy mfa doctor", web.ErrDoctorInput)

// errNoRoute: the run was not started by a request through this handler.
var errNoRoute = fmt.Errorf("%w: it runs only from a request to this gateway's pages", web.ErrDoctorInput)

// runDoctor is the admin page's doctor (web.Doctor): the checks of `caddy
// mfa doctor` on this handler's live configuration, through its route.
func (m *Gateway) runDoctor(ctx context.Context, user, password, wrong string) (*web.DoctorReport, error) {
	rt, ok := ctx.Value(doctorCtxKey{}).(*doctorRoute)
	if !ok || rt.server == nil || rt.next == nil {
		return nil, errNoRoute
	}
	if m.doctorErr != nil {
		return nil, fmt.Errorf("%w: %w", web.ErrDoctorInput, m.doctorErr)
	}
	if m.debugLog {
		return nil, errDebugLog
	}
	cfg := m.doctorCfg
	scheme := "http"
	if rt.tls != nil {
		scheme = "https"
	}
	// The doctor's URLs carry the site's own host, as a browser's would; the
	// transport never dials it.
	cfg.Upstream = (&url.URL{Scheme: scheme, Host: rt.host}).String()
	rep, err := doctor.Run(ctx, cfg, doctor.Options{User: user, Password: password, WrongPassword: wrong, Transport: rt})
	if errors.Is(err, doctor.ErrBadInput) {
		err = fmt.Errorf("%w: %w", web.ErrDoctorInput, err)
	}
	if err != nil {
		return nil, err
	}
	return webReport(rep), nil
}

// webReport is the report as the admin page shows it.
func webReport(rep *doctor.Report) *web.DoctorReport {
	v := rep.Verdict()
	out := &web.DoctorReport{Verdict: v.String(), Level: v.ExitCode(), Requests: rep.Requests,
		Findings: []web.DoctorFinding{}, Exchanges: []web.DoctorExchange{}}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, web.DoctorFinding{Severity: strings.ToLower(f.Severity.String()), Topic: f.Topic,
			Text: f.Text, Where: f.Ref.String(), Fix: f.Fix})
	}
	for _, x := range rep.Exchanges {
		e := web.DoctorExchange{Label: x.Label, Request: x.Request, Status: x.Status, Location: x.Location, Cookies: []string{}}
		for _, c := range x.Cookies {
			e.Cookies = append(e.Cookies, c.String())
		}
		out.Exchanges = append(out.Exchanges, e)
	}
	return out
}

// maxRouteAnswer bounds what the transport keeps of an answer: the doctor
// reads 1 MiB of one.
const maxRouteAnswer = 2 << 20

// RoundTrip hands one of the doctor's requests to the route after this
// handler, as a request of its own: a fresh context (no value of the
// admin's request, only its cancellation), a fresh replacer and variables,
// and nothing of the admin's request but the site's host and the client
// address.
func (rt *doctorRoute) RoundTrip(req *http.Request) (res *http.Response, err error) {
	defer func() {
		// A proxy that loses the app mid-answer aborts with a panic (as
		// net/http's own does); here that is one failed request, not the
		// admin's page.
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("the handler after mfa_gateway aborted the answer: %v", p)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	if dl, ok := req.Context().Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl)
	}
	defer cancel()
	stop := context.AfterFunc(req.Context(), cancel)
	defer stop()
	if rt.local != nil {
		ctx = context.WithValue(ctx, http.LocalAddrContextKey, rt.local)
	}
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	u := &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	sub := (&http.Request{
		Method: req.Method, URL: u, RequestURI: u.RequestURI(),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: req.Header.Clone(), Body: body, ContentLength: req.ContentLength,
		Host: rt.host, RemoteAddr: rt.remote, TLS: rt.tls,
	}).WithContext(ctx)
	if sub.Header == nil {
		sub.Header = http.Header{}
	}
	rec := &routeRecorder{header: http.Header{}}
	sub = caddyhttp.PrepareRequest(sub, caddy.NewReplacer(), rec, rt.server)
	if err := rt.next.ServeHTTP(rec, sub); err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.Err != nil {
			return nil, fmt.Errorf("the handler after mfa_gateway failed (%d): %w", he.StatusCode, he.Err)
		}
		return nil, fmt.Errorf("the handler after mfa_gateway failed: %w", err)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

// routeRecorder is the answer of the route, in memory and bounded: what is
// past the bound is dropped (the doctor reads less than that).
type routeRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *routeRecorder) Header() http.Header { return r.header }

func (r *routeRecorder) WriteHeader(status int) {
	if r.status == 0 && status >= 200 {
		r.status = status
	}
}

func (r *routeRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := maxRouteAnswer - r.body.Len(); room > 0 {
		r.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// debugLogging reports whether this handler or a reverse proxy logs at
// DEBUG: the handlers after the gateway log requests, URL and all, there.
func debugLogging(ctx caddy.Context, own *zap.Logger) bool {
	return own.Core().Enabled(zapcore.DebugLevel) || ctx.Logger(reverseproxy.Handler{}).Core().Enabled(zapcore.DebugLevel)
}

// logDoctorSetup logs, at provision, why the admin page cannot check this
// configuration (the page says so too when asked).
func (m *Gateway) logDoctorSetup() {
	if m.doctorErr != nil {
		m.logger.Warn("the admin page's configuration check is unavailable", zap.Error(m.doctorErr))
	}
}
