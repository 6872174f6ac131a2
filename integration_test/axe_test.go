package integration_test

// Accessibility checks in the browser tests: tab.axe runs axe-core in the
// page the tab shows and fails the test with every violation of the WCAG
// 2.0, 2.1 and 2.2 level A and AA rules and of axe-core's best practices.
// axe-core comes from the npm registry, pinned, into
// integration_test/testdata/node_modules (git-ignored; see the README's
// "Running the tests" and .ci/run). Without it the checks are skipped with a
// log line, except under CI=true, where the test fails.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core release the tests expect (.ci/run installs it).
const axeVersion = "4.14.1"

// axeScript is where `npm install --prefix integration_test/testdata
// axe-core@<axeVersion>` puts the script.
var axeScript = filepath.Join("testdata", "node_modules", "axe-core", "axe.min.js")

// axeTags are the rule sets run: WCAG 2.0, 2.1 and 2.2, levels A and AA, and
// axe-core's best practices (landmarks, headings).
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"}

var axeLoad = sync.OnceValues(func() (string, error) {
	src, err := os.ReadFile(axeScript)
	if err != nil {
		return "", err
	}
	if v := axeScriptVersion(src); v != axeVersion {
		return "", fmt.Errorf("%s is axe-core %q, want %s", axeScript, v, axeVersion)
	}
	return string(src), nil
})

// axeScriptVersion reads the version from the script's banner
// ("/*! axe v4.14.1 …").
func axeScriptVersion(src []byte) string {
	head := string(src[:min(len(src), 200)])
	_, rest, ok := strings.Cut(head, "axe v")
	if !ok {
		return ""
	}
	return strings.Fields(rest)[0]
}

// axeSource returns the script, or "" when it is missing outside CI (logged
// once per test). Under CI=true a missing or wrong script fails the test.
func axeSource(t *testing.T) string {
	t.Helper()
	src, err := axeLoad()
	if err == nil {
		return src
	}
	msg := fmt.Sprintf("axe-core %s for the accessibility checks (npm install --prefix integration_test/testdata --no-save axe-core@%s): %v", axeVersion, axeVersion, err)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI must have " + msg)
	}
	t.Log("accessibility checks skipped, no " + msg)
	return ""
}

// axeViolation is one failed rule, as axe.run reports it (trimmed).
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axe checks the page as it is now; state names it in the failure ("security
// page, setup dialog open"). The script is injected when the page does not
// have it yet (every new page).
func (b *tab) axe(state string) {
	b.t.Helper()
	vs, ok := b.axeRun(state)
	if !ok || len(vs) == 0 {
		return
	}
	var out strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&out, "\n  %s (%s): %s", v.ID, v.Impact, v.Help)
		for _, n := range v.Nodes {
			target, _ := json.Marshal(n.Target)
			fmt.Fprintf(&out, "\n    at %s: %s", target, strings.ReplaceAll(n.Summary, "\n", " "))
		}
	}
	b.t.Errorf("accessibility: %d axe-core violation(s) on %q (at %s):%s", len(vs), state, b.location(), out.String())
}

// axeRun runs axe-core on the page and returns its violations; false when
// axe-core is not installed (outside CI).
func (b *tab) axeRun(state string) ([]axeViolation, bool) {
	b.t.Helper()
	if b.axeMissing {
		return nil, false
	}
	src := axeSource(b.t)
	if src == "" {
		b.axeMissing = true
		return nil, false
	}
	if loaded := b.eval(`typeof window.axe === "object"`); loaded != true {
		b.do("inject axe-core", chromedp.Evaluate[chromedp.Void](src+"\n;undefined"))
	}
	tags, _ := json.Marshal(axeTags)
	ctx, cancel := b.stepCtx()
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: `+string(tags)+`},
		resultTypes: ["violations"],
	}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe-core on %q: %v (at %s)", state, err, b.location())
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		b.t.Fatalf("axe-core's answer on %q: %v", state, err)
	}
	return vs, true
}

// TestAxeFindsViolations: the check sees what it is there to see. A page
// with an unlabelled field, grey-on-white text and no language is reported
// by rule; a clean page passes.
func TestAxeFindsViolations(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Bad</title></head><body><main>
<p style="color:#bbb;background:#fff">Faint words</p><input type="text" name="code">
</main></body></html>`)
	})
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>Good</title></head><body><main>
<h1>Good</h1><label for="code">Code</label><input type="text" id="code" name="code">
</main></body></html>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := newTab(t, srv.URL)

	b.navigate("/bad")
	vs, ok := b.axeRun("bad page")
	if !ok {
		t.Skip("axe-core is not installed")
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
		if len(v.Nodes) == 0 || len(v.Nodes[0].Target) == 0 {
			t.Errorf("violation %s names no element", v.ID)
		}
	}
	for _, want := range []string{"color-contrast", "html-has-lang", "label"} {
		if !slices.Contains(ids, want) {
			t.Errorf("axe-core did not report %s on the bad page; it reported %q", want, ids)
		}
	}

	b.navigate("/good")
	b.axe("good page")
}
