package integration_test

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
)

// flood runs n requests from workers goroutines; each gets a fresh
// browser (cookie jar) and does what visit says. It returns how many
// requests failed at the transport.
func flood(n, workers int, visit func(c *http.Client) error) int64 {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				if visit(c) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

func get(c *http.Client, u string) error {
	res, err := c.Get(u)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode >= 500 {
		return fmt.Errorf("GET %s: %d", u, res.StatusCode)
	}
	return nil
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestGrowthBounds floods the gateway with traffic that never signs in, and
// checks what it costs against the bounds the README states:
//   - anonymous visitors (the app sets a pre-sign-in cookie on its login
//     page): no store write at all, and at most session.MaxAnonymous kept
//     in memory, oldest dropped first;
//   - abandoned sign-ins (a valid password, the challenge never answered,
//     from one address): at most mfa.MaxPendingPerUser kept, and one audit
//     record per minute instead of one per attempt.
func TestGrowthBounds(t *testing.T) {
	const visitors, abandoned = session.MaxAnonymous + 5_000, 2_000
	opts := optsWith(manyUsers())
	opts.Rotate = false // the login page starts an app session: each visitor is an anonymous gateway session
	e := start(t, opts, defaultGateway)
	e.extra = metricsSite
	e.load(e.gateway)
	e.enrolled("carol")
	m0, db0, heap0 := scrape(t, e), fileSize(t, e.DBPath), heapInUse()

	if failed := flood(visitors, 8, func(c *http.Client) error { return get(c, e.Base+"/login") }); failed != 0 {
		t.Fatalf("%d of %d anonymous visits failed", failed, visitors)
	}
	m1, db1, heap1 := scrape(t, e), fileSize(t, e.DBPath), heapInUse()
	anon := present(t, m1, `mfagate_sessions{state="anonymous"}`)
	t.Logf("%d anonymous visitors: %.0f anonymous sessions kept, store %d → %d bytes, heap +%.1f MiB",
		visitors, anon, db0, db1, float64(int64(heap1)-int64(heap0))/(1<<20))
	if anon > session.MaxAnonymous || anon < session.MaxAnonymous*9/10 {
		t.Fatalf("%.0f anonymous sessions after %d visitors, want at most %d (and near it)", anon, visitors, session.MaxAnonymous)
	}
	if db1 != db0 {
		t.Fatalf("anonymous visitors wrote to the store: %d → %d bytes", db0, db1)
	}
	if grew := int64(heap1) - int64(heap0); grew > 96<<20 {
		t.Fatalf("heap grew %d MiB for %d anonymous visitors, want under 96", grew>>20, visitors)
	}

	form := url.Values{"username": {"carol"}, "password": {"carol-password"}}.Encode()
	failed := flood(abandoned, 4, func(c *http.Client) error {
		if err := get(c, e.Base+"/login"); err != nil {
			return err
		}
		res, err := c.Post(e.Base+"/login", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			return err
		}
		res.Body.Close()
		if !strings.HasPrefix(res.Header.Get("Location"), "/_mfa/challenge") {
			return fmt.Errorf("sign-in: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		return nil
	})
	if failed != 0 {
		t.Fatalf("%d of %d abandoned sign-ins failed", failed, abandoned)
	}
	m2, db2 := scrape(t, e), fileSize(t, e.DBPath)
	pending := present(t, m2, `mfagate_sessions{state="pending"}`)
	written := present(t, m2, "mfagate_audit_events_written_total") - present(t, m1, "mfagate_audit_events_written_total")
	folded := present(t, m2, "mfagate_audit_events_folded_total") - present(t, m0, "mfagate_audit_events_folded_total")
	t.Logf("%d abandoned sign-ins: %.0f pending kept, %.0f audit records written, %.0f folded, store %d → %d bytes",
		abandoned, pending, written, folded, db1, db2)
	if pending > mfa.MaxPendingPerUser {
		t.Fatalf("%.0f pending sign-ins kept, want at most %d", pending, mfa.MaxPendingPerUser)
	}
	if written > 5 || folded < abandoned-5 {
		t.Fatalf("%.0f audit records written and %.0f folded for %d abandoned sign-ins from one address", written, folded, abandoned)
	}
	if grew := db2 - db1; grew > 1<<20 {
		t.Fatalf("the store grew %d KiB for %d abandoned sign-ins, want under 1 MiB", grew>>10, abandoned)
	}
}
