package sms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebhookSigned(t *testing.T) {
	var got struct {
		body []byte
		sig  string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.body, _ = io.ReadAll(r.Body)
		got.sig = r.Header.Get(SignatureHeader)
	}))
	defer srv.Close()
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	w := &Webhook{URL: srv.URL, Secret: "s3cret", Now: func() time.Time { return at }}
	if err := w.Send(context.Background(), "+447700900123", "123456 is your code"); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(got.body, &m); err != nil || m["to"] != "+447700900123" || m["body"] != "123456 is your code" || m["sent_at"] != "2026-12-07T09:00:00Z" {
		t.Fatalf("payload %s (%v)", got.body, err)
	}
	ts := "1796634000"
	if want := "t=" + ts + ",v1=" + Sign("s3cret", ts, got.body); got.sig != want {
		t.Fatalf("signature %q, want %q", got.sig, want)
	}
	if Sign("other", ts, got.body) == Sign("s3cret", ts, got.body) {
		t.Fatal("the signature does not depend on the secret")
	}
}

func TestTwilio(t *testing.T) {
	var form, path, user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		user, pass, _ = r.BasicAuth()
		_ = r.ParseForm()
		form = r.PostForm.Encode()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	for _, tc := range []struct{ from, want string }{
		{"+15005550006", "Body=hi&From=%2B15005550006&To=%2B14155550100"},
		{"MG0123", "Body=hi&MessagingServiceSid=MG0123&To=%2B14155550100"},
	} {
		tw := &Twilio{BaseURL: srv.URL + "/", AccountSID: "AC42", AuthToken: "tok", From: tc.from}
		if err := tw.Send(context.Background(), "+14155550100", "hi"); err != nil {
			t.Fatal(err)
		}
		if path != "/2010-04-01/Accounts/AC42/Messages.json" || user != "AC42" || pass != "tok" || form != tc.want {
			t.Fatalf("path %q auth %q:%q form %q", path, user, pass, form)
		}
	}
}

// TestOutboxRetries: a 5xx is tried three times, a 4xx once; a full queue
// drops rather than blocks; Close waits for what is queued.
func TestOutboxRetries(t *testing.T) {
	var calls atomic.Int32
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		status int
		calls  int32
	}{{503, 3}, {400, 1}, {200, 1}} {
		calls.Store(0)
		status.Store(int32(tc.status))
		o := newOutbox(&Webhook{URL: srv.URL, Secret: "x"}, nil, 4, time.Millisecond)
		if !o.Queue("+14155550100", "hi") {
			t.Fatal("not queued")
		}
		if err := o.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != tc.calls {
			t.Errorf("HTTP %d: %d calls, want %d", tc.status, calls.Load(), tc.calls)
		}
		if o.Queue("+14155550100", "late") {
			t.Error("queued after Close")
		}
	}
}

type blocked struct {
	once sync.Once
	in   chan struct{}
}

func (b *blocked) Send(ctx context.Context, to, body string) error {
	b.once.Do(func() { close(b.in) })
	<-ctx.Done()
	return ctx.Err()
}

func TestOutboxFullDropsAndCloseGivesUp(t *testing.T) {
	b := &blocked{in: make(chan struct{})}
	o := newOutbox(b, nil, 1, time.Millisecond)
	o.Queue("+14155550100", "1")
	<-b.in // the worker holds the first
	if !o.Queue("+14155550100", "2") {
		t.Fatal("the queue's one place was refused")
	}
	if o.Queue("+14155550100", "3") {
		t.Fatal("a full queue took another message")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := o.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close on a stuck sender: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://sms.example.com/send", true},
		{"http://127.0.0.1:9000/hook", true},
		{"http://[::1]:9000/hook", true},
		{"http://localhost/hook", true},
		{"http://sms.example.com/send", false},
		{"ftp://sms.example.com", false},
		{"not a url", false},
		{"https://", false},
	} {
		if err := CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
	if err := CheckURL("http://sms.example.com"); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("the refusal does not say what to use: %v", err)
	}
}
