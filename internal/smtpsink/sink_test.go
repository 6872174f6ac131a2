package smtpsink

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func start(t *testing.T, o Options) *Sink {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Port() == 0 || s.Host() != "127.0.0.1" {
		t.Fatalf("Addr %q", s.Addr)
	}
	return s
}

const b64Msg = "From: a@example.com\r\n" +
	"To: b@example.com\r\n" +
	"Subject: =?utf-8?b?R3LDvMOfZQ==?= =?utf-8?q?_und_=F0=9F=94=90?=\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"LmRvdApsaW5lIHR3bwo=\r\n"

func TestPlainDecodes(t *testing.T) {
	s := start(t, Options{})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered without TLS")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered without users")
	}
	if err := c.SendMail("a@example.com", []string{"b@example.com", "c@example.com"}, strings.NewReader(b64Msg)); err != nil {
		t.Fatal(err)
	}
	qp := "Subject: plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n.starts with a dot=\r\n, soft break =C3=BC\r\n.\r\n"
	if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(qp)); err != nil {
		t.Fatal(err)
	}
	got, err := s.WaitFor(2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0]; r.From != "a@example.com" || len(r.To) != 2 || r.Subject != "Grüße und 🔐" || r.Text != ".dot\nline two\n" || r.TLS || r.Auth != "" {
		t.Errorf("first: %+v", r)
	}
	if r := got[1]; r.Subject != "plain" || r.Text != ".starts with a dot, soft break ü\n.\n" {
		t.Errorf("second: subject %q text %q", r.Subject, r.Text)
	}
	if s.TLSConfig() != nil || s.CertPEM() != nil {
		t.Error("TLS material without TLS")
	}
}

func TestStartTLSAndAuth(t *testing.T) {
	s := start(t, Options{TLS: true, Users: map[string]string{"relay": "s3cret"}})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.Mail("a@example.com", nil); err == nil {
		t.Error("MAIL accepted without AUTH")
	}
	c.Close()

	c, err = smtp.DialStartTLS(s.Addr, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "relay", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "relay", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	got, err := s.WaitFor(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0]; r.Auth != "relay" || !r.TLS || r.Text != "hi\n" {
		t.Errorf("got %+v", r)
	}
	if !strings.Contains(string(s.CertPEM()), "BEGIN CERTIFICATE") {
		t.Error("CertPEM")
	}
}

func TestImplicitTLS(t *testing.T) {
	s := start(t, Options{ImplicitTLS: true})
	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := s.TLSConfig()
		cfg.ServerName = name
		c, err := smtp.DialTLS(s.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Close()
	}
	if got, err := s.WaitFor(2, time.Second); err != nil || !got[0].TLS {
		t.Fatalf("%v %+v", err, got)
	}
	// The certificate is not trusted without the sink's roots.
	if c, err := smtp.DialTLS(s.Addr, &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		if err := c.Hello("localhost"); err == nil {
			t.Error("untrusted certificate accepted")
		}
		c.Close()
	}
}

func TestTempFailAndWaitTimeout(t *testing.T) {
	s := start(t, Options{TempFail: 1})
	send := func() error {
		c, err := smtp.Dial(s.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
	}
	err := send()
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 451 {
		t.Fatalf("first send: %v, want 451", err)
	}
	if got, err := s.WaitFor(1, 50*time.Millisecond); err == nil || len(got) != 0 {
		t.Fatalf("WaitFor = %v, %v; want a timeout", got, err)
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitFor(1, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := send(); err == nil {
		t.Error("send after Close succeeded")
	}
}
