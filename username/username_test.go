package username

import "testing"

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"alice": "alice", "ALICE": "alice", "Alice": "alice", "àlice": "alice", "ÀLICE": "alice",
		" alice ": "alice", "ａｌｉｃｅ": "alice", "Alice_Smith": "alice smith", "alice  smith": "alice smith",
		"Straße": "strasse", "ǅemal": "dzemal", "Ñandú": "nandu", "": "", "   ": "",
		"KELVIN": "kelvin", "Ωmega": "ωmega", "bob@Example.COM": "bob@example.com",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFold: folding is idempotent (a folded name folds to itself, so stored
// names stay put) and never panics.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"Alice", "àlice", "ａｌｉｃｅ", "\xff\xfe", "a_b c", "ǅ", "ﬀ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := Fold(s)
		if twice := Fold(once); twice != once {
			t.Fatalf("Fold(%q) = %q, but Fold of that = %q", s, once, twice)
		}
	})
}
