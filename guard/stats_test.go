package guard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/mfa"
)

// series reads one counter of a stats snapshot by family and labels.
func series(s mfa.StatsSnapshot, family string, labels ...string) uint64 {
	var cs []mfa.Count
	switch family {
	case "sign_in":
		cs = s.SignIns
	case "widget":
		cs = s.Widget
	}
	for _, c := range cs {
		if strings.Join(c.Labels, "/") == strings.Join(labels, "/") {
			return c.N
		}
	}
	panic(fmt.Sprintf("no series %s %v", family, labels))
}

// TestWidgetChecksCounted: each widget request through the guard is
// counted once, under its verdict or cause and the mode.
func TestWidgetChecksCounted(t *testing.T) {
	f := newWidgetFixture(t) // enforce
	w := newDiscardWriter()
	next := &widgetNext{}
	r, hdr := f.widgetRequest(benchWidgetToken(t, f.secret, "a"))
	for range 3 {
		f.serveWidget(t, r, w, next)
	}
	hdr[0] = "Bearer " + benchMintHS256(t, f.secret, map[string]any{"sub": "someone-else", "exp": time.Now().Add(time.Hour).Unix()})
	f.serveWidget(t, r, w, next)
	delete(r.Header, "Authorization")
	f.serveWidget(t, r, w, next)
	delete(r.Header, "X-Widget-User-Id")
	f.serveWidget(t, r, w, next)
	s := f.rt.Stats().Snapshot()
	for _, tc := range []struct {
		result string
		want   uint64
	}{{"verified", 3}, {"user_mismatch", 1}, {"missing_token", 1}, {"anonymous", 1}, {"unchecked", 0}} {
		if got := series(s, "widget", "enforce", tc.result); got != tc.want {
			t.Errorf("enforce/%s = %d, want %d", tc.result, got, tc.want)
		}
	}
}

// TestSignInRejectedCounted: a sign-in the app turns down is counted as
// rejected, and nothing else is.
func TestSignInRejectedCounted(t *testing.T) {
	g := newTestGateway(t, nil)
	app := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	})
	r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {"x"}}.Encode()))
	r.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, r, app); err != nil {
		t.Fatal(err)
	}
	s := g.svc.Stats().Snapshot()
	for _, c := range s.SignIns {
		want := uint64(0)
		if c.Labels[0] == "rejected" {
			want = 1
		}
		if c.N != want {
			t.Errorf("sign_in/%s = %d, want %d", c.Labels[0], c.N, want)
		}
	}
}
