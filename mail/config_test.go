package mail

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Config{Host: "smtp.example.com", From: "security@example.com"}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr error  // checked with errors.Is when set
		wantMsg string // substring of the error when set
	}{
		{name: "minimal starttls", edit: func(*Config) {}},
		{name: "implicit tls with auth", edit: func(c *Config) { c.Security = "tls"; c.Username, c.Password = "u", "p" }},
		{name: "security case-insensitive", edit: func(c *Config) { c.Security = "STARTTLS" }},
		{name: "display-name from", edit: func(c *Config) { c.From = "Help desk security <security@example.com>" }},
		{name: "none to localhost", edit: func(c *Config) { c.Host, c.Security = "localhost", "none" }},
		{name: "none to 127.0.0.1", edit: func(c *Config) { c.Host, c.Security = "127.0.0.1", "none" }},
		{name: "none to ::1", edit: func(c *Config) { c.Host, c.Security = "::1", "none" }},
		{name: "none to [::1]", edit: func(c *Config) { c.Host, c.Security = "[::1]", "none" }},
		{name: "none to loopback with auth", edit: func(c *Config) {
			c.Host, c.Security, c.Username, c.Password = "127.0.0.2", "none", "u", "p"
		}},

		{name: "missing host", edit: func(c *Config) { c.Host = "" }, wantErr: ErrNoHost},
		{name: "blank host", edit: func(c *Config) { c.Host = "  " }, wantErr: ErrNoHost},
		{name: "host with port", edit: func(c *Config) { c.Host = "smtp.example.com:587" }, wantMsg: "port"},
		{name: "host with space", edit: func(c *Config) { c.Host = "smtp example" }, wantMsg: "host"},
		{name: "missing from", edit: func(c *Config) { c.From = "" }, wantErr: ErrNoFrom},
		{name: "bad from", edit: func(c *Config) { c.From = "not an address" }, wantMsg: "from"},
		{name: "from without domain", edit: func(c *Config) { c.From = "security@" }, wantMsg: "from"},
		{name: "from with line break", edit: func(c *Config) { c.From = "a@example.com\r\nBcc: x@example.com" }, wantErr: ErrHeaderInjection},
		{name: "none to remote host", edit: func(c *Config) { c.Security = "none" }, wantErr: ErrInsecureRemote},
		{name: "none to remote IP", edit: func(c *Config) { c.Host, c.Security = "192.0.2.1", "none" }, wantErr: ErrInsecureRemote},
		{name: "none to localhost look-alike", edit: func(c *Config) { c.Host, c.Security = "localhost.example.com", "none" }, wantErr: ErrInsecureRemote},
		{name: "unknown security", edit: func(c *Config) { c.Security = "ssl" }, wantErr: ErrBadSecurity},
		{name: "port out of range", edit: func(c *Config) { c.Port = 70000 }, wantMsg: "port"},
		{name: "negative port", edit: func(c *Config) { c.Port = -1 }, wantMsg: "port"},
		{name: "password without user", edit: func(c *Config) { c.Password = "p" }, wantErr: ErrPasswordNoUser},
		{name: "user without password", edit: func(c *Config) { c.Username = "u" }, wantErr: ErrUserNoPassword},
		{name: "negative timeout", edit: func(c *Config) { c.Timeout = -time.Second }, wantMsg: "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == nil && tc.wantMsg == "":
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
			case err == nil:
				t.Fatalf("Validate() = nil, want an error")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Validate() = %v, want %v", err, tc.wantErr)
			case tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg):
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.wantMsg)
			}
			if _, nerr := NewSMTP(c); (nerr == nil) != (err == nil) {
				t.Fatalf("NewSMTP error %v disagrees with Validate %v", nerr, err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		sec  string
		port int
	}{{"", 587}, {"starttls", 587}, {"tls", 465}, {"none", 25}} {
		c := Config{Host: "localhost", Security: tc.sec, From: "a@example.com"}.withDefaults()
		if c.Port != tc.port || c.Timeout != DefaultTimeout {
			t.Errorf("security %q: port %d timeout %v, want %d %v", tc.sec, c.Port, c.Timeout, tc.port, DefaultTimeout)
		}
	}
	c := Config{Host: "[::1]", Port: 2525, Timeout: time.Second, From: "a@example.com"}.withDefaults()
	if c.Port != 2525 || c.Timeout != time.Second || c.Host != "::1" {
		t.Errorf("explicit values changed: %+v", c)
	}
}
