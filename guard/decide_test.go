package guard

import "testing"

func TestJSONAt(t *testing.T) {
	doc := []byte(`{"user":"alice","query":{"userinfo":{"id":7,"name":"Alice"}},"items":[{"login":"a"},{"login":"b"}],"n":null}`)
	for path, want := range map[string]string{
		"user": `"alice"`, "query.userinfo.name": `"Alice"`, "query.userinfo.id": `7`,
		"items.1.login": `"b"`, "items.2.login": ``, "items.x": ``, "user.x": ``, "missing": ``, "n": `null`,
	} {
		if got := string(jsonAt(doc, path)); got != want {
			t.Errorf("jsonAt(%q) = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{``, `   `, `[`, `{"a":`} {
		if got := jsonAt([]byte(bad), "a"); got != nil {
			t.Errorf("jsonAt(%q) = %q, want nil", bad, got)
		}
	}
}

func TestWhoamiSourceValidation(t *testing.T) {
	for _, tc := range []struct {
		path, field string
		ok          bool
	}{
		{"/api/me", "user", true},
		{"/api.php?action=query&meta=userinfo&format=json", "query.userinfo.name", true},
		{"api/me", "user", false},
		{"//evil.example/me", "user", false},
		{"/api/me", "", false},
		{"/api/me", "a..b", false},
		{"/api/me", ".a", false},
	} {
		err := IdentitySource{Kind: FromWhoami, Path: tc.path, Field: tc.field}.validate()
		if (err == nil) != tc.ok {
			t.Errorf("whoami %q %q: err %v, want ok %v", tc.path, tc.field, err, tc.ok)
		}
	}
}
