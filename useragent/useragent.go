// Package useragent summarises a User-Agent header for people ("Firefox on
// Windows"), for session lists, notices and alerts.
package useragent

import "strings"

// maxUAScan bounds the work Describe does: real user agents name the
// browser and the platform within their first few hundred bytes.
const maxUAScan = 512

// uaTool is a non-browser client recognised by the start of its user agent.
type uaTool struct{ prefix, name string }

var uaTools = [...]uaTool{
	{"curl/", "curl"},
	{"Wget/", "Wget"},
	{"HTTPie/", "HTTPie"},
	{"PostmanRuntime/", "Postman"},
	{"insomnia/", "Insomnia"},
	{"python-requests/", "Python requests"},
	{"python-httpx/", "Python httpx"},
	{"Python-urllib/", "Python"},
	{"aiohttp/", "Python aiohttp"},
	{"Go-http-client/", "Go HTTP client"},
	{"okhttp/", "OkHttp"},
	{"axios/", "axios"},
	{"node-fetch", "node-fetch"},
	{"Java/", "Java"},
	{"Apache-HttpClient/", "Apache HttpClient"},
	{"Dart/", "Dart"},
}

// uaMatch maps the first matching substring to a name; order matters (Edge
// and Opera also say "Chrome/", Chrome also says "Safari/", Android also
// says "Linux").
type uaMatch struct {
	names []string
	name  string
}

var uaBrowsers = [...]uaMatch{
	{[]string{"Edg/", "EdgA/", "EdgiOS/", "Edge/"}, "Edge"},
	{[]string{"OPR/", "OPT/", "Opera"}, "Opera"},
	{[]string{"SamsungBrowser/"}, "Samsung Internet"},
	{[]string{"YaBrowser/"}, "Yandex Browser"},
	{[]string{"Vivaldi/"}, "Vivaldi"},
	{[]string{"Firefox/", "FxiOS/"}, "Firefox"},
	{[]string{"CriOS/", "Chrome/"}, "Chrome"},
	{[]string{"Chromium/"}, "Chromium"},
	{[]string{"Trident/", "MSIE "}, "Internet Explorer"},
	{[]string{"Safari/", "Version/"}, "Safari"},
}

var uaPlatforms = [...]uaMatch{
	{[]string{"iPhone"}, "iPhone"},
	{[]string{"iPad"}, "iPad"},
	{[]string{"iPod"}, "iPod"},
	{[]string{"Android"}, "Android"},
	{[]string{"Windows"}, "Windows"},
	{[]string{"CrOS"}, "ChromeOS"},
	{[]string{"Macintosh", "Mac OS X"}, "macOS"},
	{[]string{"Linux", "X11"}, "Linux"},
}

// Describe summarises a User-Agent header for people: "Firefox on Windows",
// "Safari on iPhone", "curl", "Unknown device". It looks at no more than the
// first 512 bytes, so its work is bounded whatever a client sends, and it
// never returns the raw header: at most an unknown client's product name
// (letters, digits, ".", "-", "_"; 40 bytes or less).
func Describe(ua string) string {
	ua = strings.TrimSpace(ua)
	if len(ua) > maxUAScan {
		ua = ua[:maxUAScan]
	}
	if ua == "" {
		return "Unknown device"
	}
	for _, t := range uaTools {
		if strings.HasPrefix(ua, t.prefix) {
			return t.name
		}
	}
	browser, platform := firstMatch(ua, uaBrowsers[:]), firstMatch(ua, uaPlatforms[:])
	switch {
	case browser != "" && platform != "":
		return browser + " on " + platform
	case browser != "":
		return browser
	case platform != "":
		return "Browser on " + platform
	case strings.HasPrefix(ua, "Mozilla/"):
		return "Web browser"
	}
	if p := productName(ua); p != "" {
		return p
	}
	return "Unknown device"
}

func firstMatch(ua string, table []uaMatch) string {
	for _, m := range table {
		for _, s := range m.names {
			if strings.Contains(ua, s) {
				return m.name
			}
		}
	}
	return ""
}

// productName returns the leading product token of a user agent
// ("MyApp/1.2 (x)" -> "MyApp") when it is short and plain, else "".
func productName(ua string) string {
	end := strings.IndexAny(ua, "/ ;(")
	if end < 0 {
		end = len(ua)
	}
	p := ua[:end]
	if p == "" || len(p) > 40 {
		return ""
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_')) {
			return ""
		}
	}
	return p
}
