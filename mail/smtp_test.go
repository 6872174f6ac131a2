package mail

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfagate/mfagate/internal/smtpsink"
)

const testFrom = "Help desk security <security@example.com>"

func startSink(t *testing.T, opts smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sinkConfig(s *smtpsink.Sink, security string) Config {
	return Config{
		Host:      s.Host(),
		Port:      s.Port(),
		Security:  security,
		From:      testFrom,
		Timeout:   5 * time.Second,
		TLSConfig: s.TLSConfig(),
	}
}

func mustSMTP(t *testing.T, cfg Config) *SMTP {
	t.Helper()
	s, err := NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sendOne(t *testing.T, sink *smtpsink.Sink, cfg Config, m Message) smtpsink.Received {
	t.Helper()
	if err := mustSMTP(t, cfg).Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got, err := sink.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return got[0]
}

func TestSendModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     smtpsink.Options
		security string
		user     string
		wantTLS  bool
	}{
		{name: "none to loopback", security: SecurityNone},
		{name: "none to loopback with auth", opts: smtpsink.Options{Users: map[string]string{"relay": "s3cret"}}, security: SecurityNone, user: "relay"},
		{name: "starttls with auth", opts: smtpsink.Options{TLS: true, Users: map[string]string{"relay": "s3cret"}}, security: SecurityStartTLS, user: "relay", wantTLS: true},
		{name: "starttls without auth", opts: smtpsink.Options{TLS: true}, security: SecurityStartTLS, wantTLS: true},
		{name: "implicit tls", opts: smtpsink.Options{ImplicitTLS: true}, security: SecurityTLS, wantTLS: true},
		{name: "implicit tls with auth", opts: smtpsink.Options{ImplicitTLS: true, Users: map[string]string{"relay": "s3cret"}}, security: SecurityTLS, user: "relay", wantTLS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := startSink(t, tc.opts)
			cfg := sinkConfig(sink, tc.security)
			if tc.user != "" {
				cfg.Username, cfg.Password = tc.user, tc.opts.Users[tc.user]
			}
			m := EnforcementNotice("Acme Help Desk", "bob", "https://desk.example.com/_mfa/security")
			m.To = "Bob <bob@example.com>"
			got := sendOne(t, sink, cfg, m)

			if got.From != "security@example.com" || len(got.To) != 1 || got.To[0] != "bob@example.com" {
				t.Errorf("envelope: from %q to %q", got.From, got.To)
			}
			if got.Auth != tc.user || got.TLS != tc.wantTLS {
				t.Errorf("auth %q tls %v, want %q %v", got.Auth, got.TLS, tc.user, tc.wantTLS)
			}
			if got.Subject != m.Subject || got.Text != m.Text {
				t.Errorf("round trip:\nsubject %q\ntext %q\nwant %q\n%q", got.Subject, got.Text, m.Subject, m.Text)
			}
			checkHeaders(t, got.Header)
		})
	}
}

func checkHeaders(t *testing.T, h mail.Header) {
	t.Helper()
	if h == nil {
		t.Fatal("message did not parse")
	}
	want := map[string]string{
		"From":                      `"Help desk security" <security@example.com>`,
		"To":                        `"Bob" <bob@example.com>`,
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	d, err := h.Date()
	if err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if id := h.Get("Message-Id"); !regexp.MustCompile(`^<[A-Z2-7]{26}@example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
}

func TestSendNonASCII(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	m := Message{
		To:      "bob@example.com",
		Subject: "Zwei-Faktor-Authentifizierung ist jetzt erforderlich für Ihr Konto bei Müller & Söhne — 🔐 ✓ 二要素認証",
		Text: "Grüße, Bob!\n" +
			".a line that starts with a dot\n" +
			".\n" +
			"a line with = and trailing space \n" +
			strings.Repeat("long line ", 30) + "\n" +
			"no final newline: ünïcödé",
	}
	got := sendOne(t, sink, sinkConfig(sink, SecurityNone), m)
	if got.Subject != m.Subject {
		t.Errorf("subject %q, want %q", got.Subject, m.Subject)
	}
	if want := m.Text + "\n"; got.Text != want {
		t.Errorf("text %q\nwant %q", got.Text, want)
	}
	for line := range strings.SplitSeq(string(got.Data), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line longer than 78 octets: %q", line)
		}
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 {
				t.Fatalf("8-bit octet on the wire: %q", line)
			}
		}
	}
}

func TestSendRefused(t *testing.T) {
	users := map[string]string{"relay": "s3cret"}
	for _, tc := range []struct {
		name      string
		opts      smtpsink.Options
		edit      func(*Config, *smtpsink.Sink)
		permanent bool
	}{
		{name: "wrong password", opts: smtpsink.Options{TLS: true, Users: users}, permanent: true,
			edit: func(c *Config, _ *smtpsink.Sink) { c.Username, c.Password = "relay", "wrong" }},
		{name: "unknown user", opts: smtpsink.Options{TLS: true, Users: users}, permanent: true,
			edit: func(c *Config, _ *smtpsink.Sink) { c.Username, c.Password = "nobody", "s3cret" }},
		{name: "auth required, none given", opts: smtpsink.Options{TLS: true, Users: users}, permanent: true,
			edit: func(*Config, *smtpsink.Sink) {}},
		{name: "auth not offered", opts: smtpsink.Options{},
			edit: func(c *Config, _ *smtpsink.Sink) {
				c.Security, c.Username, c.Password = SecurityNone, "relay", "s3cret"
			}},
		{name: "starttls not offered: no downgrade", opts: smtpsink.Options{},
			edit: func(c *Config, _ *smtpsink.Sink) { c.Security = SecurityStartTLS }},
		{name: "untrusted certificate", opts: smtpsink.Options{TLS: true},
			edit: func(c *Config, _ *smtpsink.Sink) { c.TLSConfig = nil }},
		{name: "wrong server name", opts: smtpsink.Options{ImplicitTLS: true},
			edit: func(c *Config, s *smtpsink.Sink) {
				c.TLSConfig = s.TLSConfig()
				c.TLSConfig.ServerName = "mail.example.com"
			}},
		{name: "implicit tls to plain server", opts: smtpsink.Options{},
			edit: func(c *Config, _ *smtpsink.Sink) { c.Security = SecurityTLS }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := startSink(t, tc.opts)
			sec := SecurityStartTLS
			if tc.opts.ImplicitTLS {
				sec = SecurityTLS
			}
			cfg := sinkConfig(sink, sec)
			tc.edit(&cfg, sink)
			err := mustSMTP(t, cfg).Send(context.Background(), Message{To: "bob@example.com", Subject: "s", Text: "t"})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, !tc.permanent, tc.permanent)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Errorf("sink received %d messages", n)
			}
		})
	}
}

func TestSendHeaderInjection(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := mustSMTP(t, sinkConfig(sink, SecurityNone))
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{name: "CRLF in To", m: Message{To: "bob@example.com\r\nBcc: eve@evil.example", Subject: "s"}, want: ErrHeaderInjection},
		{name: "LF in To", m: Message{To: "bob@example.com\nBcc: eve@evil.example", Subject: "s"}, want: ErrHeaderInjection},
		{name: "CRLF in Subject", m: Message{To: "bob@example.com", Subject: "hi\r\nBcc: eve@evil.example"}, want: ErrHeaderInjection},
		{name: "CR in Subject", m: Message{To: "bob@example.com", Subject: "hi\rBcc: eve@evil.example"}, want: ErrHeaderInjection},
		{name: "LF in Subject", m: Message{To: "bob@example.com", Subject: "hi\n\nbody"}, want: ErrHeaderInjection},
		{name: "NUL in Subject", m: Message{To: "bob@example.com", Subject: "hi\x00"}},
		{name: "two recipients", m: Message{To: "bob@example.com, eve@evil.example", Subject: "s"}},
		{name: "no recipient", m: Message{Subject: "s"}},
		{name: "recipient without domain", m: Message{To: "bob", Subject: "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Send(context.Background(), tc.m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Send = %v, want %v", err, tc.want)
			}
		})
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink received %d messages", n)
	}
}

// TestSendDeadline: a server that accepts the connection and never greets
// must not hold Send past ctx's deadline.
func TestSendDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	for _, tc := range []struct {
		name   string
		ctxTO  time.Duration
		cfgTO  time.Duration
		wantIs error
	}{
		{name: "ctx deadline", ctxTO: 200 * time.Millisecond, cfgTO: time.Minute, wantIs: context.DeadlineExceeded},
		{name: "config timeout", ctxTO: time.Minute, cfgTO: 200 * time.Millisecond, wantIs: context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSMTP(t, Config{Host: "127.0.0.1", Port: addr.Port, Security: SecurityNone, From: testFrom, Timeout: tc.cfgTO})
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctxTO)
			defer cancel()
			start := time.Now()
			err := s.Send(ctx, Message{To: "bob@example.com", Subject: "s", Text: "t"})
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("Send = %v, want %v", err, tc.wantIs)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Send took %v", d)
			}
		})
	}
}
