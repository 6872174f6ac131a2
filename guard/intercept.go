package guard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/cookies"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/web"
)

// decider is what the response writer asks of the guard: the writer only
// watches the app's answer and holds it back when told to; every decision
// is the guard's.
type decider interface {
	// mustCapture reports whether the response must be held back: the app
	// sets a new value of its session cookie.
	mustCapture(iw *interceptWriter) bool
	// passThrough edits the headers of a response that streams through.
	passThrough(iw *interceptWriter)
	// decide answers a captured response once the app is done with it.
	decide(ctx context.Context, iw *interceptWriter, next Handler) error
	// tooLarge answers a captured response whose body overflowed the limit.
	tooLarge(iw *interceptWriter) error
}

// interceptWriter watches the app's response headers. Most responses stream
// straight through; a sign-in, or any response that sets the app's session
// cookie for a browser without an active gateway session, is captured so the
// gateway can decide what the browser gets.
type interceptWriter struct {
	d       decider
	limit   int64 // the most of a captured body that is kept
	w       http.ResponseWriter
	r       *http.Request
	cur     mfa.Current
	scan    cookies.Scan
	signin  *signinReq
	signout bool
	confirm bool // the app may have signed the forwarded session in: ask it
	now     time.Time

	// shared is the pre-sign-in session whose cookies went with the
	// request, and epoch its epoch then: if a sign-in goes to the app
	// before the response is out, the response is not released.
	shared *session.Session
	epoch  uint32
	stale  bool // it moved before the headers: the response is withheld

	bodyPassword   bool // the body holds a field named like a password (signed-in sessions)
	forwardsActive bool // the app cookies of the active session cur.Session went with the request

	identity  [2]string       // backs the user and AAL header values sent upstream
	forwarded [1]cookies.Pair // backs scan.Forwarded: one bound app cookie (the usual) needs no allocation

	wroteHeader bool
	capture     bool
	status      int
	body        bytes.Buffer
	overflow    bool
	answers     map[string]*answer // the app's answers about the new session, by path
}

func (iw *interceptWriter) Header() http.Header { return iw.w.Header() }

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (iw *interceptWriter) Unwrap() http.ResponseWriter { return iw.w }

// Flush passes through unless the response is held back.
func (iw *interceptWriter) Flush() {
	if !iw.capture {
		_ = http.NewResponseController(iw.w).Flush()
	}
}

func (iw *interceptWriter) WriteHeader(status int) {
	if iw.wroteHeader {
		return
	}
	if status < 200 && status != http.StatusSwitchingProtocols {
		// 1xx informational: not the final headers, and never the app's
		// cookies (they would reach the browser before any decision).
		h := iw.w.Header()
		sc := h["Set-Cookie"]
		delete(h, "Set-Cookie")
		iw.w.WriteHeader(status)
		if sc != nil {
			h["Set-Cookie"] = sc
		}
		return
	}
	iw.wroteHeader = true
	iw.status = status
	if iw.moved() {
		iw.stale, iw.capture = true, true // decided in finish: withheld
		return
	}
	if iw.signin != nil || iw.confirm || iw.signout || iw.d.mustCapture(iw) {
		iw.capture = true
		return
	}
	iw.d.passThrough(iw)
	iw.w.WriteHeader(status)
}

// ReadFrom keeps io.Copy's fast path (sendfile for file_server) for a
// response that streams through; a captured body is read through Write.
func (iw *interceptWriter) ReadFrom(src io.Reader) (int64, error) {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if !iw.capture && iw.shared == nil {
		if rf, ok := iw.w.(io.ReaderFrom); ok {
			return rf.ReadFrom(src)
		}
		return io.Copy(writerOnly{iw.w}, src)
	}
	return io.Copy(writerOnly{iw}, src)
}

// Hijack hands the client's connection to an upgrade (a WebSocket) and
// tracks it on the session whose app cookies went with the request: from
// here its bytes pass no check of the gateway's, so it is closed when a
// sign-in goes ahead for that session or the session ends.
func (iw *interceptWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(iw.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	s := iw.shared
	if s == nil && iw.forwardsActive {
		s = iw.cur.Session
	}
	if s == nil {
		return conn, brw, nil
	}
	tc := &trackedConn{Conn: conn}
	untrack, ok := s.Track(tc, iw.epoch)
	if !ok {
		return nil, nil, errSignInStarted
	}
	tc.untrack = untrack
	return tc, brw, nil
}

// trackedConn is a hijacked connection tracked on a session.
type trackedConn struct {
	net.Conn
	once    sync.Once
	untrack func()
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		if c.untrack != nil {
			c.untrack()
		}
	})
	return c.Conn.Close()
}

// moved reports whether a sign-in went to the app after the request's
// pre-sign-in cookies did: its answer may be the new user's.
func (iw *interceptWriter) moved() bool {
	return iw.shared != nil && iw.shared.MovedSince(iw.epoch)
}

// errSignInStarted ends a pre-sign-in request's body or streamed response
// once a sign-in has gone to the app for the same browser.
var errSignInStarted = errors.New("a sign-in started for this browser while the request was at the app")

// sharedBody is the body of a request that forwards a pre-sign-in
// session's cookies: it stops once a sign-in goes to the app, so the app
// never finishes reading it, and never acts on it, as the new user.
type sharedBody struct {
	io.ReadCloser
	s     *session.Session
	epoch uint32
}

func (b *sharedBody) Read(p []byte) (int, error) {
	if b.s.MovedSince(b.epoch) {
		return 0, errSignInStarted
	}
	return b.ReadCloser.Read(p)
}

// writerOnly hides a writer's ReadFrom, so io.Copy does not loop back.
type writerOnly struct{ io.Writer }

func (iw *interceptWriter) Write(b []byte) (int, error) {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if !iw.capture {
		if iw.moved() {
			return 0, errSignInStarted // streaming: cut off
		}
		return iw.w.Write(b)
	}
	if room := iw.limit - int64(iw.body.Len()); int64(len(b)) > room {
		iw.overflow = true
		if room > 0 {
			iw.body.Write(b[:room])
		}
		return len(b), nil
	}
	return iw.body.Write(b)
}

// mustCapture: the app sets a new value of its session cookie, so this may
// be a sign-in from any URL, or a switch to another user inside a session.
// A value already bound (rolling refresh) or a deletion streams through.
func (g *Guard) mustCapture(iw *interceptWriter) bool {
	h := iw.w.Header()
	if len(h["Set-Cookie"]) == 0 {
		return false
	}
	s := iw.cur.Session
	if s != nil && s.State != session.Active {
		s = nil
	}
	return g.jar.SetsNew(h, s, iw.now)
}

// passThrough edits the headers of a response that streams through: the
// binding follows an app cookie refreshed during an active session (and the
// session ends when the app deletes its cookies), an ended session's cookies
// are cleared, and the gateway cookie's idle deadline is re-stamped when due.
func (g *Guard) passThrough(iw *interceptWriter) {
	h := iw.w.Header()
	cur := iw.cur
	switch {
	case cur.Session == nil && cur.Reason != session.Valid:
		g.jar.Clear(h, iw.r, iw.scan.Stripped)
		return
	case cur.Session == nil || cur.Session.State != session.Active:
		return
	}
	if len(h["Set-Cookie"]) > 0 {
		if g.follow(iw.r.Context(), iw, g.jar.AppSetCookies(h, iw.now)) {
			return
		}
	}
	if cur.Stale {
		g.jar.Set(h, iw.r, g.realm.CookieValue(cur.ID, cur.Session, iw.now))
	}
}

// tooLarge refuses a captured response the gateway did not see whole: it
// cannot vouch for it.
func (g *Guard) tooLarge(iw *interceptWriter) error {
	g.log.Warn("captured response too large", zap.String("path", iw.r.URL.Path), zap.Int64("limit", g.cfg.MaxBodyBytes))
	h := iw.w.Header()
	for k := range h {
		delete(h, k)
	}
	return g.site.WriteError(iw.w, iw.r, web.ErrUnavailable.With("The app's response was too large for the gateway to check."))
}

// finish decides a captured response once the app is done with it. It reads
// r's context only for a captured response: after the upstream's round trip
// r is usually out of the CPU's caches, and a streamed response needs
// nothing of it.
func (iw *interceptWriter) finish(r *http.Request, next Handler) error {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK) // the app wrote nothing: an implicit 200
	}
	if !iw.capture {
		return nil
	}
	return iw.d.decide(r.Context(), iw, next)
}

// release writes the captured response as the app sent it (with whatever
// header edits were made).
func (iw *interceptWriter) release() error {
	if iw.overflow {
		return iw.d.tooLarge(iw)
	}
	iw.w.WriteHeader(iw.status)
	_, err := iw.w.Write(iw.body.Bytes())
	return err
}
