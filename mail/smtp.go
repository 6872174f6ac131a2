package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTP sends each Message over its own SMTP connection. The gateway sends a
// handful of notices, so a pooled connection would only add idle-timeout
// handling for nothing.
type SMTP struct {
	cfg  Config
	addr string
	from *mail.Address
	now  func() time.Time
}

var _ Sender = (*SMTP)(nil)

// NewSMTP validates cfg and returns a Sender for it. It does no I/O.
func NewSMTP(cfg Config) (*SMTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	from, err := parseFrom(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", cfg.From, err)
	}
	return &SMTP{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from: from,
		now:  time.Now,
	}, nil
}

// Send delivers m. It returns once the server has accepted the message
// (250 after DATA), or with an error; it gives up at ctx's deadline or after
// Config.Timeout, whichever comes first. Errors the server gave as a 5xx
// reply satisfy IsPermanent.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, err := parseRecipient(m.To)
	if err != nil {
		return err
	}
	msgID := "<" + rand.Text() + "@" + domainOf(s.from.Address) + ">"
	data, err := compose(s.from, to, m, s.now(), msgID)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	err = s.deliver(ctx, to.Address, data)
	if err != nil && ctx.Err() != nil {
		// A closed connection is how a deadline shows up mid-session; say
		// why it was closed.
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.addr, err)
	}
	return nil
}

func (s *SMTP) deliver(ctx context.Context, rcpt string, data []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	// go-smtp sets and clears per-command deadlines itself, so a deadline
	// set here would be lost: closing the connection is what ends the
	// session at ctx's deadline, whatever step it is in.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var c *smtp.Client
	switch s.cfg.Security {
	case SecurityTLS:
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls: %w", err)
		}
		c = smtp.NewClient(tc)
	case SecurityStartTLS:
		// Fails when the server does not offer STARTTLS: no silent
		// downgrade to plain text (RFC 3207 §4).
		c, err = smtp.NewClientStartTLS(conn, s.tlsConfig())
		if err != nil {
			conn.Close()
			return fmt.Errorf("starttls: %w", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	// ctx ends the session (above); these only back it up, a little later,
	// so that a timeout reads as context.DeadlineExceeded.
	c.CommandTimeout = s.cfg.Timeout + time.Second
	c.SubmissionTimeout = s.cfg.Timeout + time.Second

	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("ehlo: %w", err)
	}
	if s.cfg.Security == SecurityStartTLS {
		if _, ok := c.TLSConnectionState(); !ok {
			return errors.New("starttls: connection is not encrypted")
		}
	}
	if s.cfg.Username != "" {
		if !c.SupportsAuth(sasl.Plain) {
			return errors.New("auth: server does not offer AUTH PLAIN")
		}
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.SendMail(s.from.Address, []string{rcpt}, bytes.NewReader(data)); err != nil {
		return err
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (s *SMTP) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if s.cfg.TLSConfig != nil {
		cfg = s.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.cfg.Host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// IsPermanent reports whether err carries a 5xx SMTP reply: retrying the
// same message (bad credentials, unknown mailbox) will not help.
func IsPermanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}
