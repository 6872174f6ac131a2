package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one plain-text email to one recipient.
type Message struct {
	// To is the recipient, a bare address or "Name <addr>".
	To string
	// Subject is plain text; non-ASCII is encoded per RFC 2047.
	Subject string
	// Text is the UTF-8 body; "\n" line ends become CRLF on the wire.
	Text string
}

// Sender delivers a Message. Implementations honour ctx's deadline.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// maxLine is the longest line RFC 5322 §2.1.1 allows, without CRLF.
const maxLine = 998

// checkHeader refuses what would let a value start a new header or break
// the header block: CR and LF (header injection), and other C0 controls.
func checkHeader(name, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("%s: %w", name, ErrHeaderInjection)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not valid UTF-8", name)
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("%s: contains control character %U", name, r)
		}
	}
	return nil
}

// parseRecipient checks m.To and returns it parsed.
func parseRecipient(to string) (*mail.Address, error) {
	if err := checkHeader("to", to); err != nil {
		return nil, err
	}
	if strings.TrimSpace(to) == "" {
		return nil, errors.New("to: no recipient")
	}
	a, err := mail.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	if domainOf(a.Address) == "" {
		return nil, errors.New("to: no domain")
	}
	return a, nil
}

// compose renders m as an RFC 5322 message with CRLF line ends. It is pure:
// the caller supplies the date and the Message-ID, so tests pin both.
func compose(from, to *mail.Address, m Message, date time.Time, msgID string) ([]byte, error) {
	if err := checkHeader("subject", m.Subject); err != nil {
		return nil, err
	}
	if !utf8.ValidString(m.Text) {
		return nil, errors.New("text: not valid UTF-8")
	}
	var b bytes.Buffer
	hdr := func(name, value string) error {
		line := fold(name + ": " + value)
		for l := range strings.SplitSeq(line, "\r\n") {
			if len(l) > maxLine {
				return fmt.Errorf("%s: header line longer than %d octets", strings.ToLower(name), maxLine)
			}
		}
		b.WriteString(line)
		b.WriteString("\r\n")
		return nil
	}
	// mail.Address.String encodes a non-ASCII display name per RFC 2047.
	for _, h := range [][2]string{
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
		{"Date", date.Format(time.RFC1123Z)},
		{"Message-ID", msgID},
		// RFC 3834 §5: a notice written by a program, so vacation responders
		// and the like do not answer it.
		{"Auto-Submitted", "auto-generated"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
	} {
		if err := hdr(h[0], h[1]); err != nil {
			return nil, err
		}
	}
	b.WriteString("\r\n")
	// Quoted-printable keeps the body 7-bit and its lines short whatever the
	// text, so no relay needs 8BITMIME; the writer emits CRLF line ends.
	qp := quotedprintable.NewWriter(&b)
	text := strings.ReplaceAll(m.Text, "\r\n", "\n")
	if _, err := qp.Write([]byte(text)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// fold breaks a header line at spaces so that lines stay near 78 octets
// (RFC 5322 §2.2.3). Encoded-words from mime.QEncoding are separated by
// spaces, so a long non-ASCII subject folds between them.
func fold(line string) string {
	const soft = 78
	if len(line) <= soft {
		return line
	}
	var out strings.Builder
	cur := 0
	for i, w := range strings.Split(line, " ") {
		if i > 0 {
			// Never fold onto a line that would hold only white space.
			// Folding right after the field name is allowed: RFC 2047 §2
			// wants lines with encoded-words within 76 characters, and a
			// full encoded-word is 75 on its own.
			if w != "" && cur+1+len(w) > soft {
				out.WriteString("\r\n")
				cur = 0
			}
			out.WriteByte(' ')
			cur++
		}
		out.WriteString(w)
		cur += len(w)
	}
	return out.String()
}
