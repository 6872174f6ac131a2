package web

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mfagate/mfagate/challengeui"
)

// Widget identity verification on the admin page and API: the identity
// secret (shown once), the mode with its enforce gate, and production health.

// identityView is the admin page's section; nil when no widget traffic is configured.
func (site *Site) identityView(newSecret, gateErr string) *challengeui.IdentityView {
	if site.cfg.Widget == nil {
		return nil
	}
	st := site.svc.Identity.Status()
	v := &challengeui.IdentityView{
		Mode: string(st.Mode), HasSecret: st.HasSecret, NewSecret: newSecret, SecretCreated: st.SecretCreated,
		PrevUntil: st.PrevUntil, WidgetKey: st.WidgetKey, Health: st.Health.State, LastVerified: st.Health.LastVerified,
		Verified: st.Health.Verified, TopCauseWords: st.Health.TopCauseWords, GateError: gateErr,
		EnforceAllowed: st.EnforceAllowed, EnforceReason: st.EnforceReason, EnforceOpensAt: st.EnforceOpensAt,
		NeedsVerified: st.EnforceNeedsVerified, Examples: mintingExamples(site.cfg.Widget),
		Overlap: humanDuration(site.svc.IdentityOverlap()),
	}
	for cause, n := range st.Health.Failures {
		v.Failures = append(v.Failures, challengeui.CauseCount{Cause: string(cause), Words: cause.Words(), N: n})
	}
	sort.Slice(v.Failures, func(i, j int) bool {
		a, b := v.Failures[i], v.Failures[j]
		return a.N > b.N || (a.N == b.N && a.Cause < b.Cause)
	})
	return v
}

func (site *Site) postIdentitySecret(c *call) error {
	secret, err := site.svc.GenerateIdentitySecret(c.ctx(), site.actor(c))
	if err != nil {
		e := site.public(err, "identity secret")
		return site.showAdmin(c, e.Status, "", e.Message, "")
	}
	p, e := site.adminPage(c, "New identity secret generated. Verification is now in Monitor mode.", "", "")
	if e != nil {
		return site.WriteError(c.w, c.r, e)
	}
	p.Identity = site.identityView(secret, "")
	return site.render(c, http.StatusOK, p)
}

func (site *Site) postIdentityMode(c *call) error {
	if err := site.svc.SetIdentityMode(c.ctx(), site.actor(c), c.r.PostForm.Get("mode")); err != nil {
		e := site.public(err, "identity mode")
		p, pe := site.adminPage(c, "", "", "")
		if pe != nil {
			return site.WriteError(c.w, c.r, pe)
		}
		p.Identity = site.identityView("", e.Message)
		return site.render(c, e.Status, p)
	}
	return site.adminDone(c, adminNotice{Done: "identity"})
}

func (site *Site) apiIdentity(c *call, body map[string]json.RawMessage) error {
	if site.cfg.Widget == nil {
		return WriteJSONError(c.w, errNotFound.with("Widget identity verification is not configured."))
	}
	switch {
	case c.r.Method == http.MethodGet:
	case strings.HasSuffix(c.r.URL.Path, "/secret"):
		secret, err := site.svc.GenerateIdentitySecret(c.ctx(), site.actor(c))
		if err != nil {
			return site.fail(c, err, "identity secret")
		}
		WriteJSON(c.w, http.StatusOK, map[string]any{"secret": secret, "status": site.svc.Identity.Status()})
		return nil
	default:
		mode, e := stringField(body, "mode")
		if e != nil {
			return WriteJSONError(c.w, e)
		}
		if err := site.svc.SetIdentityMode(c.ctx(), site.actor(c), mode); err != nil {
			return site.fail(c, err, "identity mode")
		}
	}
	WriteJSON(c.w, http.StatusOK, site.svc.Identity.Status())
	return nil
}

// mintingExamples show a developer how their backend signs the token the
// widget sends: HS256, sub = the user id, a short exp.
func mintingExamples(wc *WidgetInfo) []challengeui.CodeExample {
	send := "Authorization: Bearer <token>"
	if !strings.EqualFold(wc.TokenHeader, "Authorization") && wc.TokenHeader != "" {
		send = wc.TokenHeader + ": <token>"
	}
	claim := wc.UserHeader
	if claim == "" {
		claim = "the user id field"
	}
	note := "// The widget sends " + send + " and " + claim + ": <user id>.\n"
	return []challengeui.CodeExample{
		{Lang: "Node.js", Code: note + `import jwt from "jsonwebtoken"; // npm install jsonwebtoken

const token = jwt.sign({ sub: user.id }, process.env.IDENTITY_SECRET, {
  algorithm: "HS256",
  expiresIn: "1h",
});`},
		{Lang: "Python", Code: strings.ReplaceAll(note, "//", "#") + `import jwt, os, time  # pip install pyjwt

token = jwt.encode(
    {"sub": str(user.id), "exp": int(time.time()) + 3600},
    os.environ["IDENTITY_SECRET"],
    algorithm="HS256",
)`},
		{Lang: "Go", Code: note + `import "github.com/golang-jwt/jwt/v5"

token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
	"sub": user.ID,
	"exp": time.Now().Add(time.Hour).Unix(),
}).SignedString([]byte(os.Getenv("IDENTITY_SECRET")))`},
		{Lang: "PHP", Code: note + `use Firebase\JWT\JWT; // composer require firebase/php-jwt

$token = JWT::encode(
    ['sub' => (string) $user->id, 'exp' => time() + 3600],
    getenv('IDENTITY_SECRET'),
    'HS256'
);`},
	}
}

// humanDuration says a duration the way the page speaks: "24 h", "90 min", "2 s".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "no time at all"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + " s"
}
