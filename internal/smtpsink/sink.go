// Package smtpsink is a real SMTP server on loopback for this module's
// tests. It is built on github.com/emersion/go-smtp, speaks ESMTP with
// optional STARTTLS (RFC 3207), implicit TLS and AUTH PLAIN (RFC 4954,
// RFC 4616), and keeps every accepted message in memory, decoded for easy
// assertions.
package smtpsink

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Sink.
type Options struct {
	// TLS generates a self-signed certificate and offers STARTTLS. AUTH is
	// then only accepted after STARTTLS, as a real submission server does.
	TLS bool
	// ImplicitTLS speaks TLS from the first byte (port-465 style).
	ImplicitTLS bool
	// Users, if set, are the only AUTH PLAIN credentials accepted, and
	// authentication is required before MAIL. If empty, AUTH is not
	// offered.
	Users map[string]string
	// TempFail makes the sink answer the first TempFail messages' DATA with
	// 451 (a temporary failure), to exercise retries.
	TempFail int
}

// Received is one accepted message.
type Received struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO)
	Data []byte   // the message as received, dot-unstuffed, CRLF line ends

	Header  mail.Header // parsed header fields (nil if unparseable)
	Subject string      // Subject, RFC 2047 decoded
	Text    string      // body, transfer-decoded, "\n" line ends
	Auth    string      // AUTH PLAIN username, "" if none
	TLS     bool        // whether the session was encrypted
}

// Sink is a running SMTP server on 127.0.0.1.
type Sink struct {
	// Addr is "127.0.0.1:port".
	Addr string

	opts   Options
	srv    *smtp.Server
	ln     net.Listener
	leaf   *x509.Certificate
	served chan struct{}

	mu       sync.Mutex
	msgs     []Received
	changed  chan struct{} // closed and replaced on each new message
	tempFail int
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Sink, error) {
	s := &Sink{
		opts:     opts,
		served:   make(chan struct{}),
		changed:  make(chan struct{}),
		tempFail: opts.TempFail,
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 50
	srv.EnableSMTPUTF8 = true
	// Credentials in clear text only when no TLS is on offer at all.
	srv.AllowInsecureAuth = !opts.TLS && !opts.ImplicitTLS
	srv.ErrorLog = log.New(io.Discard, "", 0)

	var tlsCfg *tls.Config
	if opts.TLS || opts.ImplicitTLS {
		cert, leaf, err := selfSigned()
		if err != nil {
			return nil, err
		}
		s.leaf = leaf
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.TLSConfig = tlsCfg
	}
	s.srv = srv

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen: %w", err)
	}
	s.Addr = ln.Addr().String()
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	go func() {
		defer close(s.served)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Host is the listening address's host, "127.0.0.1".
func (s *Sink) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr)
	return h
}

// Port is the listening port.
func (s *Sink) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Messages returns a copy of what has been received so far, in order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitFor waits until at least n messages have arrived or timeout passes.
// On timeout it returns what has arrived and an error.
func (s *Sink) WaitFor(n int, timeout time.Duration) ([]Received, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Received(nil), s.msgs...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			got := s.Messages()
			return got, fmt.Errorf("smtpsink: %d of %d messages after %v", len(got), n, timeout)
		}
	}
}

// TLSConfig returns a client config that trusts the sink's certificate,
// with ServerName 127.0.0.1 (the certificate also names localhost and ::1).
// It is nil when the sink has no TLS.
func (s *Sink) TLSConfig() *tls.Config {
	if s.leaf == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.leaf)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// CertPEM is the sink's certificate in PEM, for clients configured by file;
// nil when the sink has no TLS.
func (s *Sink) CertPEM() []byte {
	if s.leaf == nil {
		return nil
	}
	return certPEM(s.leaf)
}

// Close stops the server, ends open sessions and waits for it to stop.
func (s *Sink) Close() error {
	err := s.srv.Close()
	// Serve registers its listener with the server only once it runs, so
	// a Close right after Start could miss it: close it here as well.
	s.ln.Close()
	<-s.served
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Sink) add(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) takeTempFail() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tempFail > 0 {
		s.tempFail--
		return true
	}
	return false
}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{sink: s, tls: isTLS}, nil
}

// session is one SMTP session; go-smtp starts a new one after STARTTLS.
type session struct {
	sink *Sink
	tls  bool
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if len(ss.sink.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if len(ss.sink.opts.Users) == 0 || !strings.EqualFold(mech, sasl.Plain) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		want, ok := ss.sink.opts.Users[username]
		if !ok {
			want = "\x00never" // same work for unknown users
		}
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		if subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 || !ok {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) authorized() error {
	if len(ss.sink.opts.Users) > 0 && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := ss.authorized(); err != nil {
		return err
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.authorized(); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := ss.authorized(); err != nil {
		return err
	}
	if ss.sink.takeTempFail() {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	}
	rec := Received{From: ss.from, To: append([]string(nil), ss.to...), Data: data, Auth: ss.user, TLS: ss.tls}
	decode(&rec)
	ss.sink.add(rec)
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// decode fills Header, Subject and Text from Data. A message it cannot
// parse is still kept, with those fields empty.
func decode(rec *Received) {
	m, err := mail.ReadMessage(bytes.NewReader(rec.Data))
	if err != nil {
		return
	}
	rec.Header = m.Header
	dec := new(mime.WordDecoder)
	if subj, err := dec.DecodeHeader(m.Header.Get("Subject")); err == nil {
		rec.Subject = subj
	} else {
		rec.Subject = m.Header.Get("Subject")
	}
	var body io.Reader = m.Body
	switch strings.ToLower(strings.TrimSpace(m.Header.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return
	}
	rec.Text = strings.ReplaceAll(string(b), "\r\n", "\n")
}

// newlineStripper drops CR and LF, which base64 bodies are wrapped with.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
