// Package mail sends the gateway's own email: the notices a team admin's
// policy changes trigger (2FA now required, 2FA reset by an administrator,
// sessions ended after the enforcement grace period). It holds a small SMTP
// client (Config, SMTP), the address resolution the gateway uses to find a
// user's mailbox (Address), the message texts, and an Outbox that keeps
// sending off the request path.
//
// Nothing here imports Caddy; caddymodule builds a Config from the Caddyfile.
package mail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"
)

// Security modes for Config.Security.
const (
	// SecurityStartTLS connects in plain text and upgrades with STARTTLS
	// (RFC 3207) before anything else is sent; a server that does not offer
	// STARTTLS is an error, never a silent downgrade. Default port 587.
	SecurityStartTLS = "starttls"
	// SecurityTLS is implicit TLS from the first byte (RFC 8314 §3.3).
	// Default port 465.
	SecurityTLS = "tls"
	// SecurityNone is plain text. Allowed only to a loopback host, e.g. a
	// local relay on the same machine. Default port 25.
	SecurityNone = "none"
)

// DefaultTimeout bounds the dial and the whole SMTP session of one Send.
const DefaultTimeout = 10 * time.Second

// Errors returned by Validate, for errors.Is.
var (
	ErrNoHost          = errors.New("host is required")
	ErrNoFrom          = errors.New("from is required")
	ErrInsecureRemote  = errors.New(`security "none" is only allowed to a loopback host`)
	ErrBadSecurity     = errors.New(`security must be "starttls", "tls" or "none"`)
	ErrPasswordNoUser  = errors.New("password given without username")
	ErrUserNoPassword  = errors.New("username given without password")
	ErrHeaderInjection = errors.New("line break in header value")
)

// Config is how to reach the outgoing mail server.
type Config struct {
	// Host is the SMTP server's host name or IP address, without port.
	// Required.
	Host string
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int
	// Security is "starttls" (default), "tls" (implicit TLS) or "none"
	// (loopback hosts only).
	Security string
	// Username and Password, if set, authenticate with AUTH PLAIN
	// (RFC 4616). Credentials only ever travel over TLS or to loopback.
	Username, Password string
	// From is the sender, an RFC 5322 address such as
	// "Help desk security <security@example.com>". Required.
	From string
	// Timeout bounds the dial and the SMTP session of one Send. Default 10s.
	Timeout time.Duration
	// TLSConfig is used for STARTTLS and implicit TLS. When nil, or when its
	// ServerName is empty, the server name is Host.
	TLSConfig *tls.Config
}

// Validate checks c without any I/O and names the bad item.
func (c *Config) Validate() error {
	host := strings.TrimSpace(c.Host)
	switch {
	case host == "":
		return ErrNoHost
	case strings.ContainsAny(host, " \t\r\n/@"):
		return fmt.Errorf("host %q: not a host name or IP address", c.Host)
	case strings.Contains(strings.Trim(host, "[]"), ":") && net.ParseIP(strings.Trim(host, "[]")) == nil:
		return fmt.Errorf("host %q: give the port in port, not in host", c.Host)
	}
	sec, err := normSecurity(c.Security)
	if err != nil {
		return fmt.Errorf("security %q: %w", c.Security, err)
	}
	if sec == SecurityNone && !isLoopbackHost(host) {
		// Credentials and the notices themselves would cross the network in
		// clear text (RFC 8314 asks for TLS for all mail submission).
		return fmt.Errorf("host %q: %w", c.Host, ErrInsecureRemote)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d: out of range 1-65535", c.Port)
	}
	if c.Password != "" && c.Username == "" {
		return ErrPasswordNoUser
	}
	if c.Username != "" && c.Password == "" {
		return ErrUserNoPassword
	}
	if strings.ContainsAny(c.Username, "\x00\r\n") {
		return errors.New("username: contains a control character")
	}
	if strings.TrimSpace(c.From) == "" {
		return ErrNoFrom
	}
	if _, err := parseFrom(c.From); err != nil {
		return fmt.Errorf("from %q: %w", c.From, err)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %v: must not be negative", c.Timeout)
	}
	return nil
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	c.Host = strings.Trim(strings.TrimSpace(c.Host), "[]")
	c.Security, _ = normSecurity(c.Security)
	if c.Port == 0 {
		switch c.Security {
		case SecurityTLS:
			c.Port = 465
		case SecurityNone:
			c.Port = 25
		default:
			c.Port = 587
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

func normSecurity(s string) (string, error) {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "":
		return SecurityStartTLS, nil
	case SecurityStartTLS, SecurityTLS, SecurityNone:
		return s, nil
	}
	return "", ErrBadSecurity
}

// isLoopbackHost reports whether host names this machine without a lookup:
// "localhost" (RFC 6761 §6.3 says it resolves to loopback), or a loopback IP.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseFrom parses a single RFC 5322 mailbox with a domain.
func parseFrom(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, ErrHeaderInjection
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	if domainOf(a.Address) == "" {
		return nil, errors.New("no domain")
	}
	return a, nil
}

// domainOf returns the part after the last '@', or "" when there is none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	return addr[i+1:]
}
