// Package sms sends text messages with sign-in codes through an HTTP API
// the operator chooses: a generic webhook (a JSON POST signed with
// HMAC-SHA256, for any gateway behind a small adapter) or the Messages API
// of Twilio and the providers that copy it. Sending happens in the
// background (Outbox), so no request waits on the provider.
package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sender delivers one text message.
type Sender interface {
	Send(ctx context.Context, to, body string) error
}

// PermanentError is a refusal that trying again will not change (a 4xx).
type PermanentError struct{ Status int }

func (e *PermanentError) Error() string { return "sms: refused with HTTP " + strconv.Itoa(e.Status) }

// SignatureHeader carries the webhook's signature: "t=<unix seconds>,v1=<hex
// HMAC-SHA256 of secret over "<t>.<body>">". A receiver recomputes it and
// refuses old timestamps, so a captured request cannot be replayed later.
const SignatureHeader = "X-Mfagate-Signature"

// Webhook posts {"to", "body", "sent_at"} as JSON to URL.
type Webhook struct {
	URL    string
	Secret string
	Client *http.Client // nil: a client with a 10 s timeout
	Now    func() time.Time
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, to, body string) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	t := now().UTC()
	payload, err := json.Marshal(map[string]string{"to": to, "body": body, "sent_at": t.Format(time.RFC3339)})
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(t.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("sms: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, "t="+ts+",v1="+Sign(w.Secret, ts, payload))
	return do(client(w.Client), req)
}

// Sign is the webhook signature of body sent at ts.
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Twilio sends through a Twilio-compatible Messages API.
type Twilio struct {
	BaseURL    string // default https://api.twilio.com
	AccountSID string
	AuthToken  string
	From       string // the sending number, or a messaging service id (MG…)
	Client     *http.Client
}

// Send implements Sender.
func (tw *Twilio) Send(ctx context.Context, to, body string) error {
	base := strings.TrimRight(tw.BaseURL, "/")
	if base == "" {
		base = "https://api.twilio.com"
	}
	form := url.Values{"To": {to}, "Body": {body}}
	if strings.HasPrefix(tw.From, "MG") {
		form.Set("MessagingServiceSid", tw.From)
	} else {
		form.Set("From", tw.From)
	}
	u := base + "/2010-04-01/Accounts/" + url.PathEscape(tw.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sms: messages request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(tw.AccountSID, tw.AuthToken)
	return do(client(tw.Client), req)
}

func client(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// do sends req: 2xx is delivered, 4xx permanent, anything else may pass
// on a later try.
func do(c *http.Client, req *http.Request) error {
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("sms: %s: %w", req.URL.Host, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return nil
	case res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests:
		return &PermanentError{Status: res.StatusCode}
	}
	return fmt.Errorf("sms: %s answered HTTP %d", req.URL.Host, res.StatusCode)
}

// CheckURL refuses an endpoint that would carry codes in the clear: https,
// or http to a loopback address only.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("sms: %q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
		return errors.New("sms: plain http is allowed only to a loopback address; use https")
	}
	return fmt.Errorf("sms: URL scheme %q: want https", u.Scheme)
}
