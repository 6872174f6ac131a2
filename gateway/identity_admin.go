package gateway

import (
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/identity"
)

// Widget identity verification on the admin page and API: the identity
// secret (shown once), the mode with its enforce gate, and production health.

var (
	errEnforceGate = &apiError{Status: http.StatusConflict, Code: "enforce_gate", Message: "Enforce is not allowed yet."}
	errNoSecret    = &apiError{Status: http.StatusConflict, Code: "no_secret", Message: "Generate an identity secret first."}
	errBadMode     = &apiError{Status: http.StatusBadRequest, Code: "bad_mode", Message: "The mode must be off, monitor or enforce."}
)

// setIdentityMode switches the mode; Enforce passes the gate or is refused
// with its reason.
func (g *Gateway) setIdentityMode(c *call, raw string) *apiError {
	m, err := identity.ParseMode(strings.TrimSpace(raw))
	if err != nil {
		return errBadMode
	}
	before := g.rt.Identity.Mode()
	err = g.rt.Identity.SetMode(c.ctx(), m)
	var gate *identity.GateError
	switch {
	case errors.As(err, &gate):
		g.logDecision(c.r, "enforce refused by the gate", zap.String("reason", gate.Reason))
		return errEnforceGate.with("Enforce is not allowed yet: " + gate.Reason + ".")
	case errors.Is(err, identity.ErrNoSecret):
		return errNoSecret
	case err != nil:
		return g.asAPIError(err, "identity mode")
	}
	if before != m {
		g.logDecision(c.r, "identity mode changed", zap.String("from", string(before)), zap.String("to", string(m)), zap.String("admin", c.sess().User))
		g.audit(c.r, audit.TypeIdentityModeChanged, c.sess().User, "", map[string]string{"from": string(before), "to": string(m)})
	}
	return nil
}

// generateIdentitySecret makes a new secret (the old one keeps working for
// the overlap window) and returns it: the only time it is ever shown.
func (g *Gateway) generateIdentitySecret(c *call) (string, *apiError) {
	secret, err := g.rt.Identity.GenerateSecret(c.ctx())
	if err != nil {
		return "", g.asAPIError(err, "identity secret")
	}
	g.logDecision(c.r, "identity secret generated", zap.String("admin", c.sess().User))
	g.audit(c.r, audit.TypeIdentitySecretGenerated, c.sess().User, "", map[string]string{"mode": string(g.rt.Identity.Mode())})
	return secret, nil
}

// identityView is the admin page's section; nil when no widget traffic is configured.
func (g *Gateway) identityView(newSecret, gateErr string) *challengeui.IdentityView {
	if g.cfg.Widget == nil {
		return nil
	}
	st := g.rt.Identity.Status()
	v := &challengeui.IdentityView{
		Mode: string(st.Mode), HasSecret: st.HasSecret, NewSecret: newSecret, SecretCreated: st.SecretCreated,
		PrevUntil: st.PrevUntil, WidgetKey: st.WidgetKey, Health: st.Health.State, LastVerified: st.Health.LastVerified,
		Verified: st.Health.Verified, TopCauseWords: st.Health.TopCauseWords, GateError: gateErr,
		EnforceAllowed: st.EnforceAllowed, EnforceReason: st.EnforceReason, Examples: mintingExamples(g.cfg.Widget),
		Overlap: humanDuration(g.rt.identityOverlap),
	}
	for cause, n := range st.Health.Failures {
		v.Failures = append(v.Failures, challengeui.CauseCount{Cause: string(cause), Words: cause.Words(), N: n})
	}
	sort.Slice(v.Failures, func(i, j int) bool { return v.Failures[i].N > v.Failures[j].N })
	return v
}

func (g *Gateway) postIdentitySecret(c *call) error {
	secret, e := g.generateIdentitySecret(c)
	if e != nil {
		return g.showAdmin(c, e.Status, "", e.Message, "")
	}
	p, e := g.adminPage(c, "New identity secret generated. Verification is now in Monitor mode.", "", "")
	if e != nil {
		return g.writeError(c.w, c.r, e)
	}
	p.Identity = g.identityView(secret, "")
	return g.render(c, http.StatusOK, p)
}

func (g *Gateway) postIdentityMode(c *call) error {
	if e := g.setIdentityMode(c, c.r.PostForm.Get("mode")); e != nil {
		p, pe := g.adminPage(c, "", "", "")
		if pe != nil {
			return g.writeError(c.w, c.r, pe)
		}
		p.Identity = g.identityView("", e.Message)
		return g.render(c, e.Status, p)
	}
	return g.adminDone(c, "identity", "identity")
}

func (g *Gateway) apiIdentity(c *call, body map[string]jsonRaw) error {
	if g.cfg.Widget == nil {
		return g.writeJSONError(c.w, errNotFound.with("Widget identity verification is not configured."))
	}
	switch {
	case c.r.Method == http.MethodGet:
	case strings.HasSuffix(c.r.URL.Path, "/secret"):
		secret, e := g.generateIdentitySecret(c)
		if e != nil {
			return g.writeJSONError(c.w, e)
		}
		writeJSON(c.w, http.StatusOK, map[string]any{"secret": secret, "status": g.rt.Identity.Status()})
		return nil
	default:
		mode, e := stringField(body, "mode")
		if e == nil {
			e = g.setIdentityMode(c, mode)
		}
		if e != nil {
			return g.writeJSONError(c.w, e)
		}
	}
	writeJSON(c.w, http.StatusOK, g.rt.Identity.Status())
	return nil
}

// mintingExamples show a developer how their backend signs the token the
// widget sends: HS256, sub = the user id, a short exp.
func mintingExamples(wc *WidgetConfig) []challengeui.CodeExample {
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
