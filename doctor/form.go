package doctor

import (
	"html"
	"net/url"
	"regexp"
	"strings"
)

// A small reader of the app's HTML forms: enough to find the sign-in form
// and post it back with its hidden fields (CSRF and login tokens), as a
// browser would.

var (
	formRe  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`(?is)<(input|button)\b[^>]*>`)
	attrRe  = regexp.MustCompile(`(?is)([a-z_:][-a-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
)

// form is an HTML form as a browser submits it.
type form struct {
	Action   string
	Method   string
	Fields   url.Values
	User     string // the text field for the user name
	Password string // the password field
}

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(tag, -1) {
		v := a[2] + a[3] + a[4]
		m[strings.ToLower(a[1])] = html.UnescapeString(v)
	}
	return m
}

// forms reads every form of an HTML page.
func forms(page []byte) []form {
	var out []form
	for _, f := range formRe.FindAllStringSubmatch(string(page), -1) {
		fa := attrs("<form " + f[1] + ">")
		fm := form{Action: fa["action"], Method: strings.ToUpper(fa["method"]), Fields: url.Values{}}
		if fm.Method == "" {
			fm.Method = "GET"
		}
		submitted := false
		for _, m := range inputRe.FindAllStringSubmatch(f[2], -1) {
			a := attrs(m[0])
			name, typ := a["name"], strings.ToLower(a["type"])
			if name == "" {
				continue
			}
			if m[1] == "button" || strings.EqualFold(m[1], "button") {
				typ = "submit"
				if t := strings.ToLower(a["type"]); t != "" {
					typ = t
				}
			}
			switch typ {
			case "password":
				if fm.Password == "" {
					fm.Password = name
				}
				fm.Fields.Set(name, "")
			case "checkbox", "radio":
				if _, on := a["checked"]; on || strings.Contains(strings.ToLower(m[0]), " checked") {
					fm.Fields.Add(name, valueOr(a, "on"))
				}
			case "submit", "image":
				// Only the button pressed is sent: the first.
				if !submitted {
					submitted = true
					fm.Fields.Add(name, a["value"])
				}
			case "button", "reset", "file":
			case "hidden":
				fm.Fields.Add(name, a["value"])
			default: // text, email, and untyped inputs
				if fm.User == "" && fm.Password == "" {
					fm.User = name
				}
				fm.Fields.Add(name, a["value"])
			}
		}
		out = append(out, fm)
	}
	return out
}

func valueOr(a map[string]string, def string) string {
	if v, ok := a["value"]; ok {
		return v
	}
	return def
}

// signInForm is the page's first form with a password field.
func signInForm(page []byte) (form, bool) {
	for _, f := range forms(page) {
		if f.Password != "" && f.User != "" {
			return f, true
		}
	}
	return form{}, false
}
