package contact

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"  Alice.B@Example.COM ", "Alice.B@example.com"},
		{"a+tag@sub.example.org", "a+tag@sub.example.org"},
		{"", ""},
		{"alice", ""},
		{"alice@localhost", ""},
		{"Alice <alice@example.com>", ""},
		{"alice@example.com, bob@example.com", ""},
		{"alice@example.com\r\nBcc: x@example.com", ""},
		{"@example.com", ""},
		{"alice@.example.com", ""},
		{"alice@example.com.", ""},
		{strings.Repeat("a", 250) + "@example.com", ""},
	} {
		got, err := Email(tc.in)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrEmail) {
			t.Errorf("Email(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+44 7700 900123", "+447700900123"},
		{"+1 (415) 555-0100", "+14155550100"},
		{"+61.412.345.678", "+61412345678"},
		{"07700 900123", ""},      // no country code
		{"+0 123 4567", ""},       // country codes do not start with 0
		{"+44", ""},               // too short
		{"+1234567890123456", ""}, // 16 digits: too long
		{"+44 7700 9001x3", ""},   // a letter
		{"+44 7700+900123", ""},   // a second +
		{"+٤٤٧٧٠٠٩٠٠١٢٣", ""},     // other digits
		{"", ""},
	} {
		got, err := Phone(tc.in)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrPhone) {
			t.Errorf("Phone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{MaskEmail("alice@example.com"), "a•••@example.com"},
		{MaskEmail("élise@example.com"), "é•••@example.com"},
		{MaskEmail("broken"), "•••"},
		{MaskPhone("+447700900123"), "+44 •••• ••23"},
		{MaskPhone("+14155550100"), "+14 •••• ••00"},
		{MaskPhone("123"), "•••"},
	} {
		if tc.got != tc.want {
			t.Errorf("mask = %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzDestinations: whatever is typed, a destination that is accepted is
// normal (accepting it again changes nothing) and its mask never shows the
// whole of it.
func FuzzDestinations(f *testing.F) {
	for _, s := range []string{"alice@example.com", "+44 7700 900123", "a@b.co", "+1 (415) 555-0100", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if e, err := Email(s); err == nil {
			if again, err := Email(e); err != nil || again != e {
				t.Fatalf("Email(%q) = %q, not stable: %q %v", s, e, again, err)
			}
			if m := MaskEmail(e); strings.Contains(m, e) || !utf8.ValidString(m) {
				t.Fatalf("MaskEmail(%q) = %q", e, m)
			}
		}
		if p, err := Phone(s); err == nil {
			if again, err := Phone(p); err != nil || again != p {
				t.Fatalf("Phone(%q) = %q, not stable: %q %v", s, p, again, err)
			}
			if m := MaskPhone(p); strings.Contains(m, p[3:len(p)-2]) {
				t.Fatalf("MaskPhone(%q) = %q shows the middle", p, m)
			}
		}
	})
}
