package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/challengeui"
)

// "Check this configuration" on the admin page: an admin at AAL2 gives a
// test account of the app, and the gateway runs the doctor (the checks of
// `caddy mfa doctor`) on its own configuration. The password is used for
// the run only: it is never stored, logged, audited or shown again.

// Doctor runs the checks as user with password (and wrong, a password that
// must fail; "" for a random one). An error wrapping ErrDoctorInput means
// the checks could not be made with this input or configuration; any other
// error, that the app could not be reached. The Caddy glue supplies it.
type Doctor func(ctx context.Context, user, password, wrong string) (*DoctorReport, error)

// ErrDoctorInput is wrapped by a Doctor's errors that mean the checks
// could not be made (credentials that do not sign in, no sign-in to check).
var ErrDoctorInput = errors.New("the configuration could not be checked")

// DoctorReport is a run's report, as the page and the API show it.
type DoctorReport struct {
	Verdict   string           `json:"verdict"` // "safe", "safe with warnings" or "unsafe"
	Level     int              `json:"level"`   // 0 safe, 1 safe with warnings, 2 unsafe (the CLI's exit status)
	Requests  int              `json:"requests"`
	Findings  []DoctorFinding  `json:"findings"`
	Exchanges []DoctorExchange `json:"exchanges"`
}

// DoctorFinding is one finding: what to change, and where.
type DoctorFinding struct {
	Severity string `json:"severity"` // ok, info, warn or fail
	Topic    string `json:"topic"`
	Text     string `json:"text"`
	Where    string `json:"where,omitempty"` // the configuration line or directive to change
	Fix      string `json:"fix,omitempty"`
}

// DoctorExchange is one request the doctor sent, credentials hidden.
type DoctorExchange struct {
	Label    string   `json:"label"`
	Request  string   `json:"request"`
	Status   int      `json:"status"`
	Location string   `json:"location,omitempty"`
	Cookies  []string `json:"cookies"`
}

// Bounds on runs: each signs in to the app several times with a real
// account, so one at a time per gateway, and a few a minute.
const (
	doctorPerWindow = 4
	doctorWindow    = time.Minute
	doctorTimeout   = 2 * time.Minute // the doctor's own request budget ends it well before
)

var (
	errDoctorBusy        = &Error{Status: http.StatusTooManyRequests, Code: "check_running", Message: "A configuration check is already running. Wait for it to finish, then try again."}
	errDoctorLimited     = &Error{Status: http.StatusTooManyRequests, Code: "check_limited", Message: "Too many configuration checks in the last minute. Wait a minute, then try again."}
	errDoctorNoUser      = &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "Enter the user name of a test account of the app."}
	errDoctorNoPassword  = &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "Enter the test account's password."}
	errDoctorSame        = &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "The wrong password must differ from the password."}
	errDoctorCannot      = &Error{Status: http.StatusUnprocessableEntity, Code: "check_failed", Message: "The configuration could not be checked."}
	errDoctorUnreachable = &Error{Status: http.StatusBadGateway, Code: "app_unreachable", Message: "The app could not be reached."}
	errDoctorOff         = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "The configuration check is not available on this gateway."}
)

// doctorGate admits one run at a time and doctorPerWindow a window.
type doctorGate struct {
	mu      sync.Mutex
	running bool
	starts  []time.Time
}

// enter admits a run at now, or says why not; leave ends it.
func (g *doctorGate) enter(now time.Time) *Error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running {
		return errDoctorBusy
	}
	kept := g.starts[:0]
	for _, t := range g.starts {
		if now.Sub(t) < doctorWindow {
			kept = append(kept, t)
		}
	}
	g.starts = kept
	if len(g.starts) >= doctorPerWindow {
		e := *errDoctorLimited
		e.RetryAfter = doctorWindow - now.Sub(g.starts[0])
		return &e
	}
	g.running = true
	g.starts = append(g.starts, now)
	return nil
}

func (g *doctorGate) leave() {
	g.mu.Lock()
	g.running = false
	g.mu.Unlock()
}

// doctorInput is what the form or the JSON body gave.
type doctorInput struct{ user, password, wrong string }

func (in doctorInput) check() *Error {
	switch {
	case in.user == "":
		return errDoctorNoUser
	case in.password == "":
		return errDoctorNoPassword
	case in.wrong != "" && in.wrong == in.password:
		return errDoctorSame
	}
	return nil
}

// runDoctor checks the input, admits the run, runs it, and audits and
// logs it. The error is the public one; the report is nil with it.
func (site *Site) runDoctor(c *call, in doctorInput) (*DoctorReport, *Error) {
	if site.cfg.Doctor == nil {
		return nil, errDoctorOff
	}
	if e := in.check(); e != nil {
		return nil, e
	}
	if e := site.doctorGate.enter(c.now); e != nil {
		site.logDecision(c.r, "configuration check refused", zap.String("admin", c.sess().User), zap.String("reason", e.Code))
		return nil, e
	}
	defer site.doctorGate.leave()
	ctx, cancel := context.WithTimeout(c.ctx(), doctorTimeout)
	defer cancel()
	start := time.Now()
	rep, err := site.cfg.Doctor(ctx, in.user, in.password, in.wrong)
	result, requests := "", 0
	var pub *Error
	switch {
	case err == nil:
		result, requests = rep.Verdict, rep.Requests
	case errors.Is(err, ErrDoctorInput):
		result, pub = "cannot_check", errDoctorCannot.with("The configuration could not be checked: "+doctorWords(err, in)+".")
	default:
		result, pub = "app_unreachable", errDoctorUnreachable.with("The app could not be reached through this gateway's route: "+doctorWords(err, in)+". Check that the app is running and that the handler after mfa_gateway reaches it.")
	}
	site.realm.DoctorRun(site.actor(c), in.user, result, requests)
	fields := []zap.Field{zap.String("admin", c.sess().User), zap.String("test_user", in.user), zap.String("result", result),
		zap.Int("requests", requests), zap.Duration("took", time.Since(start))}
	if err != nil {
		fields = append(fields, zap.String("error", doctorWords(err, in)))
	}
	site.log.Info("configuration check", fields...)
	return rep, pub
}

// doctorWords is a run's error for people, without the error's prefix and
// with any password hidden (the doctor never puts one in an error; this
// holds even if a handler after the gateway did).
func doctorWords(err error, in doctorInput) string {
	msg := strings.TrimPrefix(err.Error(), ErrDoctorInput.Error()+": ")
	msg = strings.TrimPrefix(msg, "cannot check: ")
	for _, p := range []string{in.password, in.wrong} {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "****")
			msg = strings.ReplaceAll(msg, url.QueryEscape(p), "****")
		}
	}
	return msg
}

// postAdminDoctor runs the check from the admin page's form and shows the
// report in its section.
func (site *Site) postAdminDoctor(c *call) error {
	f := c.r.PostForm
	in := doctorInput{user: strings.TrimSpace(f.Get("user")), password: f.Get("password"), wrong: f.Get("wrong_password")}
	rep, e := site.runDoctor(c, in)
	p, pe := site.adminPage(c, "", "", "")
	if pe != nil {
		return site.WriteError(c.w, c.r, pe)
	}
	// The user name goes back into the form; the passwords never do.
	p.Doctor = &challengeui.DoctorView{User: in.user}
	status := http.StatusOK
	if e != nil {
		status = e.Status
		setRetryAfter(c.w, e)
		p.Doctor.Error = e.Message
	} else {
		p.Doctor.Result = doctorResultView(rep)
	}
	return site.render(c, status, p)
}

// apiAdminDoctor is the JSON twin: {user, password, wrong_password?}.
func (site *Site) apiAdminDoctor(c *call, body map[string]json.RawMessage) error {
	var in doctorInput
	var e *Error
	if in.user, e = optionalString(body, "user"); e != nil {
		return WriteJSONError(c.w, e)
	}
	if in.password, e = optionalString(body, "password"); e != nil {
		return WriteJSONError(c.w, e)
	}
	if in.wrong, e = optionalString(body, "wrong_password"); e != nil {
		return WriteJSONError(c.w, e)
	}
	in.user = strings.TrimSpace(in.user)
	rep, e := site.runDoctor(c, in)
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	WriteJSON(c.w, http.StatusOK, rep)
	return nil
}

// doctorResultView is the report for the page's template.
func doctorResultView(rep *DoctorReport) *challengeui.DoctorResult {
	v := &challengeui.DoctorResult{Verdict: rep.Verdict, Level: rep.Level, Requests: rep.Requests}
	for _, f := range rep.Findings {
		v.Findings = append(v.Findings, challengeui.DoctorFinding{Severity: f.Severity, Topic: f.Topic, Text: f.Text, Where: f.Where, Fix: f.Fix})
	}
	for _, x := range rep.Exchanges {
		v.Exchanges = append(v.Exchanges, challengeui.DoctorExchange{Label: x.Label, Request: x.Request, Status: x.Status, Location: x.Location, Cookies: x.Cookies})
	}
	return v
}
