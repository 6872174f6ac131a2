package recovery

import (
	"bytes"
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
)

var wellFormed = regexp.MustCompile(`^[abcdefghijkmnpqrstuvwxyz23456789]{6}-[abcdefghijkmnpqrstuvwxyz23456789]{6}$`)

func TestAlphabet(t *testing.T) {
	if len(Alphabet) != 32 {
		t.Fatalf("alphabet has %d characters", len(Alphabet))
	}
	seen := map[rune]bool{}
	for _, c := range Alphabet {
		if seen[c] || strings.ContainsRune("lo01", c) {
			t.Fatalf("alphabet: %q repeated or ambiguous", c)
		}
		seen[c] = true
	}
}

func TestGenerate(t *testing.T) {
	codes, err := Generate(rand.Reader, Count)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != Count {
		t.Fatalf("got %d codes", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !wellFormed.MatchString(c) {
			t.Errorf("malformed %q", c)
		}
		if seen[c] {
			t.Errorf("duplicate %q", c)
		}
		seen[c] = true
		if _, err := Normalize(c); err != nil {
			t.Errorf("Normalize(%q): %v", c, err)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	// Bytes 0..23: each byte picks Alphabet[b%32].
	src := make([]byte, 2*Length)
	for i := range src {
		src[i] = byte(i) + 32 // +32 checks the modulo
	}
	codes, err := Generate(bytes.NewReader(src), 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"abcdef-ghijkm", "npqrst-uvwxyz"}; codes[0] != want[0] || codes[1] != want[1] {
		t.Fatalf("codes = %q, want %q", codes, want)
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    func() *bytes.Reader
		n    int
	}{
		{"negative", func() *bytes.Reader { return bytes.NewReader(nil) }, -1},
		{"too many", func() *bytes.Reader { return bytes.NewReader(nil) }, maxCodes + 1},
		{"short reader", func() *bytes.Reader { return bytes.NewReader(make([]byte, Length*2-1)) }, 2},
		{"repeating reader", func() *bytes.Reader { return bytes.NewReader(make([]byte, 1000)) }, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if codes, err := Generate(tt.r(), tt.n); err == nil {
				t.Fatalf("Generate = %q, want error", codes)
			}
		})
	}
	if _, err := Generate(iotest.ErrReader(errors.New("boom")), 1); err == nil {
		t.Fatal("failing reader: no error")
	}
	if codes, err := Generate(rand.Reader, 0); err != nil || len(codes) != 0 {
		t.Fatalf("n=0: %q, %v", codes, err)
	}
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"canonical", "abcdef-ghijkm", "abcdefghijkm"},
		{"no dash", "abcdefghijkm", "abcdefghijkm"},
		{"upper case", "ABCDEF-GHIJKM", "abcdefghijkm"},
		{"spaces", "  abcd ef gh ijkm  ", "abcdefghijkm"},
		{"dashes", "abc-def-ghi-jkm", "abcdefghijkm"},
		{"newline pasted", "abcdef-ghijkm\r\n", "abcdefghijkm"},
		{"digits", "234567-89abcd", "23456789abcd"},
		{"empty", "", ""},
		{"short", "abcdef-ghijk", ""},
		{"long", "abcdef-ghijkmn", ""},
		{"ambiguous l", "abcdef-ghijkl", ""},
		{"ambiguous o", "abcdef-ghijko", ""},
		{"zero", "abcdef-ghijk0", ""},
		{"one", "abcdef-ghijk1", ""},
		{"punctuation", "abcdef_ghijkm", ""},
		{"unicode", "abcdef-ghijké", ""},
		{"kelvin sign", "abcdef-ghij\u212am", ""},
		{"nul", "abcdef\x00ghijkm", ""},
		{"too long input", strings.Repeat(" ", 60) + "abcdefghijkm", ""},
		{"exactly 64 bytes", strings.Repeat(" ", 52) + "abcdefghijkm", "abcdefghijkm"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Normalize(%q) = %q, %v; want ErrMalformed", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func hashAll(t *testing.T, key []byte, codes []string) [][]byte {
	t.Helper()
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		n, err := Normalize(c)
		if err != nil {
			t.Fatal(err)
		}
		hashes[i] = Hash(key, n)
	}
	return hashes
}

func TestMatch(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	codes, err := Generate(rand.Reader, Count)
	if err != nil {
		t.Fatal(err)
	}
	hashes := hashAll(t, key, codes)
	for i, c := range codes {
		for _, in := range []string{c, strings.ToUpper(c), strings.ReplaceAll(c, "-", " ")} {
			if got, err := Match(key, hashes, in); err != nil || got != i {
				t.Errorf("Match(%q) = %d, %v; want %d", in, got, err, i)
			}
		}
	}
	t.Run("wrong code", func(t *testing.T) {
		if got, err := Match(key, hashes, "zzzzzz-zzzzzz"); err != nil || got != -1 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("other key", func(t *testing.T) {
		if got, err := Match([]byte("another key"), hashes, codes[3]); err != nil || got != -1 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if got, err := Match(key, hashes, "not a code!"); !errors.Is(err, ErrMalformed) || got != -1 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		if got, err := Match(nil, hashes, codes[0]); !errors.Is(err, ErrNoKey) || got != -1 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("no hashes", func(t *testing.T) {
		if got, err := Match(key, nil, codes[0]); err != nil || got != -1 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("duplicate stored hash gives first", func(t *testing.T) {
		dup := append(append([][]byte{}, hashes...), hashes[2])
		if got, err := Match(key, dup, codes[2]); err != nil || got != 2 {
			t.Fatalf("Match = %d, %v", got, err)
		}
	})
	t.Run("used code removed", func(t *testing.T) {
		rest := Remove(hashes, 4)
		if got, err := Match(key, rest, codes[4]); err != nil || got != -1 {
			t.Fatalf("Match after Remove = %d, %v", got, err)
		}
		if got, err := Match(key, rest, codes[5]); err != nil || got != 4 {
			t.Fatalf("Match(codes[5]) after Remove = %d, %v", got, err)
		}
	})
}

func TestRemove(t *testing.T) {
	orig := [][]byte{{1}, {2}, {3}}
	in := [][]byte{{1}, {2}, {3}}
	out := Remove(in, 1)
	if len(out) != 2 || out[0][0] != 1 || out[1][0] != 3 {
		t.Fatalf("Remove = %v", out)
	}
	out[0][0] = 9
	out[1] = []byte{8}
	for i := range in {
		if !bytes.Equal(in[i], orig[i]) {
			t.Fatalf("input changed: %v", in)
		}
	}
	for _, i := range []int{-1, 3} {
		cp := Remove(in, i)
		if len(cp) != 3 {
			t.Errorf("Remove(%d) = %v", i, cp)
		}
		cp[0][0] = 9
		if in[0][0] != 1 {
			t.Errorf("Remove(%d) aliases input", i)
		}
	}
	if got := Remove(nil, 0); len(got) != 0 {
		t.Errorf("Remove(nil) = %v", got)
	}
}

func TestText(t *testing.T) {
	codes, err := Generate(rand.Reader, Count)
	if err != nil {
		t.Fatal(err)
	}
	txt := Text(codes, "Example Co", "alice@example.com")
	for _, want := range append([]string{"Example Co", "alice@example.com", "only once"}, codes...) {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	lines := strings.Split(txt, "\n")
	n := 0
	for _, l := range lines {
		if wellFormed.MatchString(l) {
			n++
		}
	}
	if n != Count {
		t.Errorf("%d code lines, want %d", n, Count)
	}
	// A newline in the account cannot forge a code line.
	txt = Text(nil, "Ex", "bob\nabcdef-ghijkm\r\u2028x")
	for _, l := range strings.Split(txt, "\n") {
		if wellFormed.MatchString(l) {
			t.Errorf("forged line %q", l)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add("abcdef-ghijkm")
	f.Add(" ABC DEF GHI JKM ")
	f.Add("abcdef-ghijkl")
	f.Add("\u212a")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || n != "" {
				t.Fatalf("Normalize(%q) = %q, %v", s, n, err)
			}
			return
		}
		if len(s) > maxInput || len(n) != Length {
			t.Fatalf("Normalize(%q) = %q", s, n)
		}
		for i := 0; i < len(n); i++ {
			if strings.IndexByte(Alphabet, n[i]) < 0 {
				t.Fatalf("Normalize(%q) = %q has %q", s, n, n[i])
			}
		}
		// Idempotent, and the display form normalises back.
		if again, err := Normalize(n); err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, %v", n, again, err)
		}
		if again, err := Normalize(n[:6] + "-" + n[6:]); err != nil || again != n {
			t.Fatalf("display form: %q, %v", again, err)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add([]byte("key"), "abcdef-ghijkm")
	f.Add([]byte("key"), "ABCDEFGHIJKM")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, key []byte, input string) {
		stored := []string{"abcdefghijkm", "npqrstuvwxyz", "234567892345"}
		hashes := make([][]byte, len(stored))
		for i, s := range stored {
			hashes[i] = Hash(key, s)
		}
		i, err := Match(key, hashes, input)
		norm, nerr := Normalize(input)
		switch {
		case len(key) == 0:
			if !errors.Is(err, ErrNoKey) || i != -1 {
				t.Fatalf("no key: %d, %v", i, err)
			}
		case nerr != nil:
			if !errors.Is(err, ErrMalformed) || i != -1 {
				t.Fatalf("malformed %q: %d, %v", input, i, err)
			}
		default:
			want := -1
			for j, s := range stored {
				if s == norm {
					want = j
					break
				}
			}
			if err != nil || i != want {
				t.Fatalf("Match(%q) = %d, %v; want %d", input, i, err, want)
			}
		}
	})
}
