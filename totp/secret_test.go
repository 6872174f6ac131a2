package totp

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeFormatDecode(t *testing.T) {
	secret := []byte("12345678901234567890")
	enc := EncodeSecret(secret)
	if enc != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Fatalf("EncodeSecret = %q", enc)
	}
	if got := FormatSecret(secret); got != "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ" {
		t.Fatalf("FormatSecret = %q", got)
	}
	if got := FormatSecret([]byte{1, 2, 3}); got != "AEBA G" {
		t.Fatalf("FormatSecret(3 bytes) = %q", got)
	}
	for _, in := range []string{
		enc,
		FormatSecret(secret),
		strings.ToLower(FormatSecret(secret)),
		" " + strings.ToLower(enc) + " ",
		enc + "====",
	} {
		got, err := DecodeSecret(in)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("DecodeSecret(%q) = %q, %v", in, got, err)
		}
	}
	got, err := DecodeSecret("aeba g===")
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("padded short secret = %x, %v", got, err)
	}
}

func TestDecodeSecretErrors(t *testing.T) {
	for _, in := range []string{
		"", "   ", "====", "GEZDGNB1", "GEZD-GNBV", "GEZDGNBVÉ", "A", "ABC", "ABCDEF", "GEZDGNBVA",
		strings.Repeat("A", maxSecretText+1),
	} {
		if got, err := DecodeSecret(in); err == nil {
			t.Errorf("DecodeSecret(%q) = %x, want error", in, got)
		}
	}
}

func FuzzDecodeSecret(f *testing.F) {
	f.Add("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ")
	f.Add("gezdgnbvgy3tqojq====")
	f.Add("=A=")
	f.Fuzz(func(t *testing.T, s string) {
		secret, err := DecodeSecret(s)
		if err != nil {
			return
		}
		// Round trip: what we print decodes to the same bytes (unless the
		// spaces FormatSecret adds push it past the input bound).
		for _, enc := range []string{EncodeSecret(secret), FormatSecret(secret)} {
			if len(enc) > maxSecretText {
				continue
			}
			again, err := DecodeSecret(enc)
			if err != nil || !bytes.Equal(again, secret) {
				t.Fatalf("%q -> %x -> %q -> %x, %v", s, secret, enc, again, err)
			}
		}
	})
}
