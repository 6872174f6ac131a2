package totp

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/url"
	"strings"
	"testing"

	"github.com/pquerna/otp"
)

func TestKeyURI(t *testing.T) {
	secret := []byte("12345678901234567890")
	got := KeyURI("ACME Co", "john.doe@email.com", secret)
	want := "otpauth://totp/ACME%20Co:john.doe%40email.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Fatalf("KeyURI =\n%s\nwant\n%s", got, want)
	}
}

func TestKeyURIEscaping(t *testing.T) {
	secret := bytes.Repeat([]byte{0x42}, SecretSize)
	for _, tt := range []struct{ name, issuer, account string }{
		{"spaces", "My Company", "jane doe"},
		{"at", "Example", "alice@example.com"},
		{"colon in account", "Example", "corp:alice"},
		{"colon in issuer", "Ex:ample", "alice"},
		{"query chars", "A&B=C?D#E+F/G%", "x&issuer=evil"},
		{"unicode", "Société Générale", "jürgen@exämple.de 🔑"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uri := KeyURI(tt.issuer, tt.account, secret)
			if strings.Contains(uri, "+") || strings.Contains(uri, " ") {
				t.Errorf("uri has '+' or space: %s", uri)
			}
			key, err := otp.NewKeyFromURL(uri)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeSecret(key.Secret())
			if err != nil || !bytes.Equal(dec, secret) {
				t.Errorf("secret = %q (%x, %v)", key.Secret(), dec, err)
			}
			if key.Issuer() != tt.issuer {
				t.Errorf("Issuer = %q, want %q", key.Issuer(), tt.issuer)
			}
			if key.Type() != "totp" || key.Algorithm() != otp.AlgorithmSHA1 ||
				key.Digits() != otp.DigitsSix || key.Period() != Period {
				t.Errorf("parameters: %s %v %v %d", key.Type(), key.Algorithm(), key.Digits(), key.Period())
			}
			// The label has exactly one literal ':', between the escaped parts.
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			label := strings.TrimPrefix(u.EscapedPath(), "/")
			iss, acc, ok := strings.Cut(label, ":")
			if !ok || strings.Contains(acc, ":") {
				t.Fatalf("label %q", label)
			}
			if i, _ := url.PathUnescape(iss); i != tt.issuer {
				t.Errorf("label issuer = %q", i)
			}
			if a, _ := url.PathUnescape(acc); a != tt.account {
				t.Errorf("label account = %q", a)
			}
			if !strings.Contains(tt.issuer, ":") && key.AccountName() != tt.account {
				t.Errorf("AccountName = %q, want %q", key.AccountName(), tt.account)
			}
			if q := u.Query(); len(q) != 5 {
				t.Errorf("query has %d parameters: %v", len(q), q)
			}
		})
	}
}

func TestQRCode(t *testing.T) {
	uri := KeyURI("Example Co", "alice@example.com", bytes.Repeat([]byte{1}, SecretSize))
	for _, size := range []int{MinQRSize, 200, 256, MaxQRSize} {
		p, err := QRCodePNG(uri, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		img, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Errorf("size %d: bounds %v", size, b)
		}
	}
	for _, size := range []int{-1, 0, MinQRSize - 1, MaxQRSize + 1} {
		if _, err := QRCodePNG(uri, size); err == nil {
			t.Errorf("size %d: no error", size)
		}
	}
	d, err := QRCodeDataURI(uri, 128)
	if err != nil {
		t.Fatal(err)
	}
	b64, ok := strings.CutPrefix(d, "data:image/png;base64,")
	if !ok {
		t.Fatalf("data uri prefix: %.40s", d)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
}
