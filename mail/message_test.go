package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var (
	testDate  = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("", 3600))
	testMsgID = "<ID@example.com>"
)

func mustParse(t testing.TB, s string) *mail.Address {
	t.Helper()
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCompose(t *testing.T) {
	from, to := mustParse(t, testFrom), mustParse(t, "Bøb <bob@example.com>")
	got, err := compose(from, to, Message{Subject: "Hello", Text: "one\ntwo=three\n"}, testDate, testMsgID)
	if err != nil {
		t.Fatal(err)
	}
	want := "From: \"Help desk security\" <security@example.com>\r\n" +
		"To: =?utf-8?q?B=C3=B8b?= <bob@example.com>\r\n" +
		"Subject: Hello\r\n" +
		"Date: Sat, 14 Mar 2026 15:09:26 +0100\r\n" +
		"Message-ID: <ID@example.com>\r\n" +
		"Auto-Submitted: auto-generated\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"one\r\ntwo=3Dthree\r\n"
	if string(got) != want {
		t.Errorf("compose:\n%s\nwant:\n%s", got, want)
	}
}

func TestFold(t *testing.T) {
	for _, s := range []string{
		"Subject: short",
		"Subject: " + strings.Repeat("word ", 40),
		"Subject: " + strings.Repeat("x", 100) + " y",
		"Subject: a  b" + strings.Repeat(" ", 100) + "c",
	} {
		f := fold(s)
		if strings.ReplaceAll(f, "\r\n", "") != s {
			t.Errorf("fold(%q) = %q does not unfold back", s, f)
		}
		for i, l := range strings.Split(f, "\r\n") {
			if strings.TrimSpace(l) == "" {
				t.Errorf("fold(%q): line %d is only white space", s, i)
			}
		}
	}
}

// FuzzCompose: whatever subject and text compose accepts comes back intact
// through a standard parser, and no value adds a header.
func FuzzCompose(f *testing.F) {
	f.Add("Two-factor authentication is now required", "Hello\n.\nbye")
	f.Add("Grüße — 🔐 二要素認証", "ünïcödé =?utf-8?q?x?=\r\n")
	f.Add("=?utf-8?q?hi?= x", strings.Repeat("a", 200))
	f.Add("a\r\nBcc: eve@evil.example", "")
	f.Fuzz(func(t *testing.T, subject, text string) {
		from, to := mustParse(t, testFrom), mustParse(t, "bob@example.com")
		data, err := compose(from, to, Message{Subject: subject, Text: text}, testDate, testMsgID)
		if err != nil {
			return
		}
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("unparseable: %v\n%q", err, data)
		}
		if len(m.Header) != 9 {
			t.Fatalf("%d header fields: %v", len(m.Header), m.Header)
		}
		raw := m.Header.Get("Subject")
		if strings.Contains(subject, "=?") {
			// An ASCII subject that looks like an encoded-word is sent as
			// is (mime.QEncoding only encodes what needs it); skip the
			// decode check.
			return
		}
		got, err := new(mime.WordDecoder).DecodeHeader(raw)
		if err != nil {
			t.Fatalf("subject %q: %v", raw, err)
		}
		if want := strings.Join(strings.Fields(subject), " "); strings.Join(strings.Fields(got), " ") != want {
			t.Fatalf("subject %q, want %q", got, want)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		wantText := strings.ReplaceAll(text, "\r\n", "\n")
		gotText := strings.ReplaceAll(string(body), "\r\n", "\n")
		if strings.TrimRight(gotText, "\n") != strings.TrimRight(strings.ReplaceAll(wantText, "\r", "\n"), "\n") {
			t.Fatalf("text %q, want %q", gotText, wantText)
		}
	})
}
