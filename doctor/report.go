package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Severity ranks a finding.
type Severity int

const (
	OK   Severity = iota // as it should be
	Info                 // worth knowing, nothing to change
	Warn                 // works, but a case is not covered or a check could not be made
	Fail                 // the gateway as configured would let a sign-in past the second factor
)

func (s Severity) String() string {
	return [...]string{"ok", "info", "warn", "FAIL"}[s]
}

// Finding is one result, with the line to change when there is one.
type Finding struct {
	Severity Severity
	Topic    string // sign-in, cookies, identity, success, credentials, rotation, sign-out
	Text     string
	Ref      Ref    // the configuration line it concerns
	Fix      string // what to write there
}

// Exchange is one request the doctor sent and what the app answered,
// credentials redacted.
type Exchange struct {
	Label    string
	Request  string
	Status   int
	Location string
	Cookies  []CookieNote
}

// CookieNote is one cookie an answer set or deleted.
type CookieNote struct {
	Name        string
	Deleted     bool
	HTTPOnly    bool
	CoveredBy   []string // the session_cookie patterns that cover it
	SessionLike bool     // its name or HttpOnly says it may carry a session
}

// Verdict sums up a report.
type Verdict int

const (
	Safe         Verdict = iota // nothing to change
	SafeWarnings                // nothing fails open, but something is not covered or could not be checked
	Unsafe                      // a finding fails open
)

func (v Verdict) String() string {
	return [...]string{"safe", "safe with warnings", "unsafe"}[v]
}

// ExitCode is the verdict for scripts: 0 safe, 1 warnings, 2 unsafe.
func (v Verdict) ExitCode() int { return int(v) }

// Report is what a run found.
type Report struct {
	Upstream  string
	Exchanges []Exchange
	Findings  []Finding
	Requests  int // requests sent to the app
}

// Verdict is unsafe with any failure, safe with warnings with any warning.
func (r *Report) Verdict() Verdict {
	v := Safe
	for _, f := range r.Findings {
		switch f.Severity {
		case Fail:
			return Unsafe
		case Warn:
			v = SafeWarnings
		}
	}
	return v
}

// Has reports whether a finding of the topic, at least as severe as sev,
// mentions text: for tests and scripts.
func (r *Report) Has(sev Severity, topic, text string) bool {
	for _, f := range r.Findings {
		if f.Severity >= sev && f.Topic == topic && strings.Contains(f.Text, text) {
			return true
		}
	}
	return false
}

func (r *Report) add(sev Severity, topic string, ref Ref, fix, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Topic: topic, Text: fmt.Sprintf(format, args...), Ref: ref, Fix: fix})
}

// Write prints the report as text.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mfa doctor: the app at %s, asked directly (%d requests)\n\n", r.Upstream, r.Requests)
	b.WriteString("Requests\n")
	for _, x := range r.Exchanges {
		fmt.Fprintf(&b, "  %s: %s -> %d", x.Label, x.Request, x.Status)
		if x.Location != "" {
			fmt.Fprintf(&b, " (to %s)", x.Location)
		}
		b.WriteByte('\n')
		for _, c := range x.Cookies {
			fmt.Fprintf(&b, "      %s\n", c)
		}
	}
	b.WriteString("\nFindings\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  [%s] %s", f.Severity, f.Topic)
		if at := f.Ref.String(); at != "" {
			fmt.Fprintf(&b, ", %s", at)
		}
		fmt.Fprintf(&b, ": %s\n", f.Text)
		if f.Fix != "" {
			fmt.Fprintf(&b, "        fix: %s\n", f.Fix)
		}
	}
	v := r.Verdict()
	fmt.Fprintf(&b, "\nVerdict: %s (exit %d)\n", v, v.ExitCode())
	_, err := io.WriteString(w, b.String())
	return err
}

func (c CookieNote) String() string {
	var b strings.Builder
	if c.Deleted {
		fmt.Fprintf(&b, "deletes %s", c.Name)
	} else {
		fmt.Fprintf(&b, "sets %s", c.Name)
		if c.HTTPOnly {
			b.WriteString(" (HttpOnly)")
		}
	}
	switch {
	case len(c.CoveredBy) > 0:
		fmt.Fprintf(&b, ": session_cookie %s", strings.Join(c.CoveredBy, ", "))
	case c.SessionLike:
		b.WriteString(": looks like a session cookie, not covered by session_cookie")
	default:
		b.WriteString(": not a session cookie")
	}
	return b.String()
}
