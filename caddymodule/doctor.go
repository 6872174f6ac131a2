package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mfagate/mfagate/doctor"
	"github.com/mfagate/mfagate/guard"
)

// doctorConfig reads a Caddyfile and describes, for package doctor, the
// mfa_gateway block of one site and the reverse_proxy upstream it guards,
// each item with its line. site "" picks the only site with a gateway.
func doctorConfig(file string, body []byte, site string) (doctor.Config, error) {
	var cfg doctor.Config
	// The whole file must adapt as Caddy would load it: the doctor checks
	// a configuration that runs, and Caddy's errors name the line.
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filepath": file}); err != nil {
		return cfg, fmt.Errorf("the Caddyfile does not load: %w", err)
	}
	blocks, err := caddyfile.Parse(file, body)
	if err != nil {
		return cfg, fmt.Errorf("the Caddyfile does not parse: %w", err)
	}
	if len(blocks) > 0 && len(blocks[0].Keys) == 0 {
		blocks = blocks[1:] // global options
	}
	var names, withGateway []string
	var gw, rp caddyfile.Segment
	for _, sb := range blocks {
		keys := sb.GetKeysText()
		names = append(names, strings.Join(keys, " "))
		g := findDirective(sb.Segments, "mfa_gateway")
		if g != nil {
			withGateway = append(withGateway, strings.Join(keys, " "))
		}
		if site != "" && !slices.Contains(keys, site) {
			continue
		}
		if site == "" && g == nil {
			continue
		}
		if site != "" && g == nil {
			return cfg, fmt.Errorf("site %s has no mfa_gateway", site)
		}
		if gw != nil {
			return cfg, fmt.Errorf("more than one site has an mfa_gateway (%s): choose one with --site", strings.Join(withGateway, "; "))
		}
		gw, rp = g, findDirective(sb.Segments, "reverse_proxy")
	}
	switch {
	case gw == nil && site != "":
		return cfg, fmt.Errorf("no site %q in %s (its sites: %s)", site, file, strings.Join(names, "; "))
	case gw == nil:
		return cfg, fmt.Errorf("no site in %s has an mfa_gateway", file)
	case rp == nil:
		return cfg, fmt.Errorf("%s:%d: the site with this mfa_gateway has no reverse_proxy: the doctor asks the app through its upstream", file, gw[0].Line)
	}
	cfg.BlockRef = refOf(gw[0])
	if cfg.Upstream, err = upstreamOf(rp); err != nil {
		return cfg, fmt.Errorf("%s:%d: reverse_proxy: %w", file, rp[0].Line, err)
	}
	cfg.UpstreamRef = refOf(rp[0])
	return cfg, describeGateway(&cfg, gw)
}

func refOf(t caddyfile.Token) doctor.Ref { return doctor.Ref{File: t.File, Line: t.Line} }

// findDirective finds a directive in a site's segments, also inside route
// and handle blocks: its tokens up to the end of its block.
func findDirective(segs []caddyfile.Segment, name string) caddyfile.Segment {
	for _, seg := range segs {
		for i, t := range seg {
			if t.Text != name || (i > 0 && seg[i-1].Line == t.Line) {
				continue
			}
			d := caddyfile.NewDispenser(seg[i:])
			d.Next()
			return d.NextSegment()
		}
	}
	return nil
}

// upstreamOf is the first upstream of a reverse_proxy, as a base URL.
func upstreamOf(seg caddyfile.Segment) (string, error) {
	var ups []string
	d := caddyfile.NewDispenser(seg)
	d.Next()
	for d.NextArg() {
		if v := d.Val(); !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "@") && v != "*" {
			ups = append(ups, v)
		}
	}
	for d.NextBlock(0) {
		if d.Val() == "to" {
			ups = append(ups, d.RemainingArgs()...)
		}
	}
	if len(ups) == 0 {
		return "", errors.New("no upstream address")
	}
	u := ups[0]
	if strings.Contains(u, "{") || strings.HasPrefix(u, "unix/") {
		return "", fmt.Errorf("upstream %q: the doctor needs a host:port (give --upstream)", u)
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "", fmt.Errorf("upstream %q: not a host:port", ups[0])
	}
	if p.Scheme == "h2c" {
		p.Scheme = "http"
	}
	if _, _, err := net.SplitHostPort(p.Host); err != nil {
		port := "80"
		if p.Scheme == "https" {
			port = "443"
		}
		p.Host = net.JoinHostPort(p.Host, port)
	}
	return p.Scheme + "://" + p.Host, nil
}

// describeGateway parses each subdirective of the mfa_gateway block on its
// own, with the directive's real parser, so that each item keeps its line.
func describeGateway(cfg *doctor.Config, seg caddyfile.Segment) error {
	var whole Gateway
	if err := whole.UnmarshalCaddyfile(caddyfile.NewDispenser(seg)); err != nil {
		return err
	}
	cfg.NormalizeFold = whole.NormalizeUsers == guard.NormalizeFold
	cfg.SignOutOnReq = whole.SignOutOnRequest
	var blockSuccess guard.Success
	var blockField *guard.Field
	var signIns []doctor.SignIn
	var fieldRef, successRef doctor.Ref
	d := caddyfile.NewDispenser(seg)
	d.Next()
	for d.NextBlock(0) {
		sub := d.NextSegment()
		var one Gateway
		if err := one.UnmarshalCaddyfile(caddyfile.NewDispenser(wrap(seg[0], sub))); err != nil {
			return err
		}
		at := refOf(sub[0])
		switch sub[0].Text {
		case "sign_in":
			si, err := signInOf(&one, sub)
			if err != nil {
				return err
			}
			signIns = append(signIns, si)
		case "sign_out":
			m, err := matchOf(one.SignOutRaw[0], at)
			if err != nil {
				return err
			}
			cfg.SignOuts = append(cfg.SignOuts, m)
		case "session_cookie":
			for _, n := range one.SessionCookies {
				cfg.Cookies = append(cfg.Cookies, doctor.Pattern{Name: n, Ref: at})
			}
		case "user_from":
			cfg.Identity = append(cfg.Identity, doctor.Source{IdentitySource: one.UserFrom[0], Ref: at})
		case "success":
			blockSuccess = guard.Success{Kind: one.Success, Statuses: one.SuccessStatus, Cookies: one.SuccessCookies}
			successRef = at
		case "sign_in_field":
			blockField, fieldRef = one.SignInField, at
		case "strip_header":
			for _, h := range one.StripHeaders {
				cfg.StripHeaders = append(cfg.StripHeaders, doctor.Param{Name: h, Ref: at})
			}
		case "strip_param":
			for _, p := range one.StripParams {
				cfg.StripParams = append(cfg.StripParams, doctor.Param{Name: p, Ref: at})
			}
		case "normalize_users":
			cfg.NormalizeRef = at
		}
	}
	fillSignIns(cfg, signIns, blockField, fieldRef, blockSuccess, successRef)
	return nil
}

// fillSignIns adds the sign-ins to cfg: a sign-in's own rules win; what it
// leaves out is the block's, as the gateway fills them in (guard.Rules).
func fillSignIns(cfg *doctor.Config, signIns []doctor.SignIn, blockField *guard.Field, fieldRef doctor.Ref, blockSuccess guard.Success, successRef doctor.Ref) {
	for _, si := range signIns {
		if si.Field == nil {
			si.Field, si.FieldRef = blockField, fieldRef
		}
		if len(si.Identity) == 0 {
			si.Identity = cfg.Identity
		}
		if si.Success.Kind == "" && !asksApp(si.Identity) && blockSuccess.Kind != guard.SuccessWhoami {
			si.Success, si.SuccessRef = blockSuccess, successRef
		}
		cfg.SignIns = append(cfg.SignIns, si)
	}
}

func asksApp(srcs []doctor.Source) bool {
	return slices.ContainsFunc(srcs, func(s doctor.Source) bool {
		return s.Kind == guard.FromWhoami || s.Kind == guard.FromPage
	})
}

// wrap puts one subdirective back in an mfa_gateway block of its own.
func wrap(name caddyfile.Token, sub caddyfile.Segment) []caddyfile.Token {
	open, end := name, name
	open.Text = "{"
	end.Text, end.Line = "}", sub[len(sub)-1].Line+1
	toks := append([]caddyfile.Token{name, open}, sub...)
	return append(toks, end)
}

// signInOf describes a sign_in parsed alone: its matchers, and its own
// rules with their lines.
func signInOf(one *Gateway, sub caddyfile.Segment) (doctor.SignIn, error) {
	at := refOf(sub[0])
	var si doctor.SignIn
	set := caddy.ModuleMap(nil)
	if len(one.SignInRaw) > 0 {
		set = one.SignInRaw[0]
	} else {
		rt := one.SignInRoutes[0]
		set = rt.MatchRaw[0]
		si.Field = rt.SignInField
		si.Success = guard.Success{Kind: rt.Success, Statuses: rt.SuccessStatus, Cookies: rt.SuccessCookies}
		users := 0
		for _, t := range sub[1:] {
			switch {
			case t.Text == "user_from" && users < len(rt.UserFrom):
				si.Identity = append(si.Identity, doctor.Source{IdentitySource: rt.UserFrom[users], Ref: refOf(t)})
				users++
			case t.Text == "success":
				si.SuccessRef = refOf(t)
			case t.Text == "sign_in_field":
				si.FieldRef = refOf(t)
			}
		}
	}
	m, err := matchOf(set, at)
	si.Match = m
	return si, err
}

// matchOf reduces a Caddy matcher set to what the doctor can send.
func matchOf(set caddy.ModuleMap, at doctor.Ref) (doctor.Match, error) {
	m := doctor.Match{Ref: at}
	for name, raw := range set {
		var err error
		switch name {
		case "method":
			err = json.Unmarshal(raw, &m.Methods)
		case "path":
			err = json.Unmarshal(raw, &m.Paths)
		case "query":
			err = json.Unmarshal(raw, &m.Query)
		default:
			m.Other = append(m.Other, name)
		}
		if err != nil {
			return m, fmt.Errorf("%s: %s matcher: %w", at, name, err)
		}
	}
	slices.Sort(m.Other)
	return m, nil
}
