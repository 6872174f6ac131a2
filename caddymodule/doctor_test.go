package caddymodule

import (
	"strings"
	"testing"

	"github.com/mfagate/mfagate/doctor"
	"github.com/mfagate/mfagate/guard"
)

// TestDoctorConfig: the site's gateway block and upstream become the
// doctor's input, each item with its line; a sign-in's own rules win and
// the block's fill in the rest.
func TestDoctorConfig(t *testing.T) {
	const cf = `{
	admin off
}

http://a.example {
	reverse_proxy 127.0.0.1:1
}

http://wiki.example {
	route {
		mfa_gateway {
			sign_in {
				method POST
				path /index.php /index.php/*
			}
			sign_in POST /api/login {
				user_from json login
				success status 200
			}
			sign_in_field title Special:UserLogin
			sign_out /logout
			session_cookie wikidb_session
			session_cookie wikidbUserID
			user_from whoami /api.php?action=query&meta=userinfo&format=json query.userinfo.name
			strip_param auth_pass
			normalize_users fold
		}
		reverse_proxy {
			to localhost:9080
		}
	}
}
`
	cfg, err := doctorConfig("Caddyfile", []byte(cf), "")
	if err != nil {
		t.Fatal(err)
	}
	at := func(n int) doctor.Ref { return doctor.Ref{File: "Caddyfile", Line: n} }
	if cfg.Upstream != "http://localhost:9080" || cfg.UpstreamRef != at(28) || cfg.BlockRef != at(11) {
		t.Errorf("upstream %q at %v, block at %v", cfg.Upstream, cfg.UpstreamRef, cfg.BlockRef)
	}
	if len(cfg.SignIns) != 2 {
		t.Fatalf("sign-ins: %+v", cfg.SignIns)
	}
	form, api := cfg.SignIns[0], cfg.SignIns[1]
	if form.Match.Ref != at(12) || strings.Join(form.Match.Paths, " ") != "/index.php /index.php/*" || form.Match.Methods[0] != "POST" {
		t.Errorf("form sign-in: %+v", form.Match)
	}
	if form.Field == nil || form.Field.Value != "Special:UserLogin" || form.FieldRef != at(20) {
		t.Errorf("form sign-in field: %+v at %v", form.Field, form.FieldRef)
	}
	if len(form.Identity) != 1 || form.Identity[0].Kind != guard.FromWhoami || form.Identity[0].Ref != at(24) {
		t.Errorf("form sign-in identity: %+v", form.Identity)
	}
	if api.Match.Ref != at(16) || len(api.Identity) != 1 || api.Identity[0].Kind != guard.FromJSON || api.Identity[0].Ref != at(17) ||
		api.Success.Kind != guard.SuccessStatus || api.SuccessRef != at(18) {
		t.Errorf("api sign-in: %+v", api)
	}
	if len(cfg.Cookies) != 2 || cfg.Cookies[1].Name != "wikidbUserID" || cfg.Cookies[1].Ref != at(23) {
		t.Errorf("cookies: %+v", cfg.Cookies)
	}
	if len(cfg.SignOuts) != 1 || cfg.SignOuts[0].Ref != at(21) || len(cfg.StripParams) != 1 || cfg.StripParams[0].Ref != at(25) ||
		!cfg.NormalizeFold || cfg.NormalizeRef != at(26) {
		t.Errorf("sign-out %+v, strip %+v, fold %v at %v", cfg.SignOuts, cfg.StripParams, cfg.NormalizeFold, cfg.NormalizeRef)
	}
}

func TestDoctorConfigErrors(t *testing.T) {
	good := "http://a.example {\n\tmfa_gateway {\n\t\tsign_in POST /login\n\t\tsession_cookie sid\n\t}\n\treverse_proxy 127.0.0.1:1\n}\n"
	for _, tc := range []struct{ name, cf, site, want string }{
		{"does not parse", strings.Replace(good, "session_cookie sid", "session_cookie", 1), "", "does not load"},
		{"unknown site", good, "b.example", `no site "b.example"`},
		{"no gateway at the site", good + "http://b.example {\n\treverse_proxy 127.0.0.1:2\n}\n", "http://b.example", "has no mfa_gateway"},
		{"no gateway anywhere", "http://a.example {\n\treverse_proxy 127.0.0.1:1\n}\n", "", "no site in Caddyfile has an mfa_gateway"},
		{"two gateways", good + strings.Replace(good, "a.example", "b.example", 1), "", "choose one with --site"},
		{"no reverse_proxy", strings.Replace(good, "reverse_proxy 127.0.0.1:1", "respond ok", 1), "", "has no reverse_proxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := doctorConfig("Caddyfile", []byte(tc.cf), tc.site)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
