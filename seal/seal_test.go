package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newBox(t testing.TB, key []byte) *Box {
	t.Helper()
	b, err := New(key, rand.Reader)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNewKeySize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"empty", 0, true},
		{"aes128", 16, true},
		{"aes192", 24, true},
		{"aes256", 32, false},
		{"too long", 33, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(make([]byte, tc.size), rand.Reader)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New(%d bytes) err = %v, want error %v", tc.size, err, tc.wantErr)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	box := newBox(t, testKey(1))
	other := newBox(t, testKey(2))
	aad := []byte("totp:alice")
	sealed, err := box.Seal([]byte("JBSWY3DPEHPK3PXP"), aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if sealed[0] != 0x01 || len(sealed) != 1+12+16+16 {
		t.Fatalf("sealed format: version %#x len %d", sealed[0], len(sealed))
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x80
		return c
	}

	for _, tc := range []struct {
		name   string
		box    *Box
		sealed []byte
		aad    []byte
		ok     bool
	}{
		{"round trip", box, sealed, aad, true},
		{"aad mismatch", box, sealed, []byte("totp:bob"), false},
		{"aad missing", box, sealed, nil, false},
		{"wrong key", other, sealed, aad, false},
		{"tampered version", box, flip(0), aad, false},
		{"tampered nonce", box, flip(5), aad, false},
		{"tampered ciphertext", box, flip(14), aad, false},
		{"tampered tag", box, flip(len(sealed) - 1), aad, false},
		{"truncated tag", box, sealed[:len(sealed)-1], aad, false},
		{"truncated to overhead", box, sealed[:overhead], aad, false},
		{"truncated to nonce", box, sealed[:13], aad, false},
		{"empty", box, nil, aad, false},
		{"one byte", box, []byte{1}, aad, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Open(tc.sealed, tc.aad)
			if tc.ok {
				if err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
					t.Fatalf("Open = %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrDecrypt", got, err)
			}
		})
	}
}

func TestSealEmptyPlaintext(t *testing.T) {
	box := newBox(t, testKey(1))
	sealed, err := box.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := box.Open(sealed, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	box := newBox(t, testKey(1))
	a, _ := box.Seal([]byte("x"), nil)
	b, _ := box.Seal([]byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal; nonce not random")
	}
}

func TestSealRandFailure(t *testing.T) {
	box, err := New(testKey(1), bytes.NewReader(make([]byte, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.Seal([]byte("x"), nil); err == nil {
		t.Fatal("Seal with exhausted rand succeeded")
	}
}

func TestSealConcurrent(t *testing.T) {
	box := newBox(t, testKey(1))
	done := make(chan error)
	for range 8 {
		go func() {
			for range 100 {
				s, err := box.Seal([]byte("v"), []byte("a"))
				if err == nil {
					_, err = box.Open(s, []byte("a"))
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	master := testKey(7)
	labels := []string{"cookie", "csrf", "recovery", "seal", ""}
	seen := map[string]string{}
	for _, l := range labels {
		k := DeriveKey(master, l)
		if len(k) != KeySize {
			t.Fatalf("DeriveKey(%q) len = %d", l, len(k))
		}
		if prev, dup := seen[string(k)]; dup {
			t.Fatalf("labels %q and %q derive the same key", prev, l)
		}
		seen[string(k)] = l
		if !bytes.Equal(k, DeriveKey(master, l)) {
			t.Fatalf("DeriveKey(%q) not deterministic", l)
		}
		if bytes.Equal(k, DeriveKey(testKey(8), l)) {
			t.Fatalf("DeriveKey(%q) ignores the master key", l)
		}
	}
}

func FuzzOpen(f *testing.F) {
	box := newBox(f, testKey(1))
	good, _ := box.Seal([]byte("secret"), []byte("aad"))
	f.Add(good, []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1}, []byte("aad"))
	f.Add(good[:overhead], []byte("aad"))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := box.Open(sealed, aad)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open error %v does not wrap ErrDecrypt", err)
			}
			return
		}
		// Only a genuine seal opens; resealing it must round-trip.
		again, err := box.Seal(pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if pt2, err := box.Open(again, aad); err != nil || !bytes.Equal(pt, pt2) {
			t.Fatalf("round trip: %q, %v", pt2, err)
		}
	})
}
