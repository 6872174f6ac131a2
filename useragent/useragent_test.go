package useragent

import (
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	uaChromeLinux  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefoxWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

func TestDescribe(t *testing.T) {
	junk := strings.Repeat("\x00\xff<script>\u202e ", 700) // ~10 KB, invalid UTF-8, markup, bidi
	tests := []struct{ ua, want string }{
		{uaChromeLinux, "Chrome on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on macOS"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iPhone"},
		{uaFirefoxWin, "Firefox on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on macOS"},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Firefox on Android"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15", "Firefox on iPhone"},
		{uaSafariIPhone, "Safari on iPhone"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPad"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on macOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Linux"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", "Edge on Android"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15", "Edge on iPhone"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera on Windows"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"curl/8.5.0", "curl"},
		{"Wget/1.21.4", "Wget"},
		{"python-requests/2.32.3", "Python requests"},
		{"Go-http-client/1.1", "Go HTTP client"},
		{"HelpdeskMobile/4.2 (build 77)", "HelpdeskMobile"},
		{"Mozilla/5.0", "Web browser"},
		{"", "Unknown device"},
		{"   ", "Unknown device"},
		{"<script>alert(1)</script>", "Unknown device"},
		{strings.Repeat("A", 10240), "Unknown device"},
		{junk, "Unknown device"},
		{strings.Repeat("\xffChrome/\x00", 1000), "Chrome"},
		{strings.Repeat("x", 600) + " Chrome/131 (Windows)", "Unknown device"}, // beyond the scan bound
	}
	for _, tc := range tests {
		name := tc.ua
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			got := Describe(tc.ua)
			if got != tc.want {
				t.Errorf("Describe(%.80q) = %q, want %q", tc.ua, got, tc.want)
			}
			if len(got) > 80 || !utf8.ValidString(got) || strings.ContainsAny(got, "<>\"'&\x00") {
				t.Errorf("Describe returned an unsafe or long name %q", got)
			}
		})
	}
}

// FuzzDescribe: whatever a client sends, the summary is short, valid UTF-8,
// and free of markup and of the header's own syntax.
func FuzzDescribe(f *testing.F) {
	for _, ua := range []string{uaChromeLinux, uaFirefoxWin, uaSafariIPhone, "curl/8.5.0", "HelpdeskMobile/4.2 (build 77)", "", "<script>", "\xff\x00Chrome/"} {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := Describe(ua)
		if got == "" || len(got) > 80 || !utf8.ValidString(got) || strings.ContainsAny(got, "<>\"'&\x00\r\n/;()") {
			t.Fatalf("Describe(%q) = %q", ua, got)
		}
	})
}
