package totp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pquerna/otp/hotp"
)

// rfcSecret is the SHA1 seed of RFC 6238 Appendix B.
var rfcSecret = []byte("12345678901234567890")

func TestCodeRFC6238Vectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA1 column, last 6 of the 8 digits (the 8-digit
	// value mod 10^6 is the 6-digit value of the same truncation).
	tests := []struct {
		unix int64
		want string
	}{
		{59, "287082"},          // 94287082
		{1111111109, "081804"},  // 07081804
		{1111111111, "050471"},  // 14050471
		{1234567890, "005924"},  // 89005924
		{2000000000, "279037"},  // 69279037
		{20000000000, "353130"}, // 65353130
	}
	for _, tt := range tests {
		t.Run(time.Unix(tt.unix, 0).UTC().Format(time.RFC3339), func(t *testing.T) {
			if got := Code(rfcSecret, time.Unix(tt.unix, 0)); got != tt.want {
				t.Errorf("Code = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCodeMatchesPquerna(t *testing.T) {
	secret := bytes.Repeat([]byte{0xa5, 0x17, 0x3c}, 7)[:SecretSize]
	for _, unix := range []int64{0, 29, 30, 1700000000, 1<<33 + 7} {
		now := time.Unix(unix, 0)
		want, err := hotp.GenerateCode(EncodeSecret(secret), uint64(Step(now)))
		if err != nil {
			t.Fatal(err)
		}
		if got := Code(secret, now); got != want {
			t.Errorf("t=%d: Code = %q, pquerna = %q", unix, got, want)
		}
	}
}

func TestStep(t *testing.T) {
	for unix, want := range map[int64]int64{0: 0, 29: 0, 30: 1, 59: 1, 1111111109: 37037036} {
		if got := Step(time.Unix(unix, 999)); got != want {
			t.Errorf("Step(%d) = %d, want %d", unix, got, want)
		}
	}
}

func TestValidateSkew(t *testing.T) {
	now := time.Unix(1700000015, 0)
	cur := Step(now)
	for _, tt := range []struct {
		name  string
		delta int64
		ok    bool
	}{
		{"minus 2", -2, false},
		{"minus 1", -1, true},
		{"current", 0, true},
		{"plus 1", 1, true},
		{"plus 2", 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code := Code(rfcSecret, time.Unix((cur+tt.delta)*Period, 0))
			step, err := Validate(rfcSecret, code, now, 0)
			if !tt.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Validate = %d, %v; want ErrInvalid", step, err)
				}
				return
			}
			if err != nil || step != cur+tt.delta {
				t.Fatalf("Validate = %d, %v; want %d, nil", step, err, cur+tt.delta)
			}
		})
	}
}

func TestValidateReplay(t *testing.T) {
	now := time.Unix(1700000015, 0)
	cur := Step(now)
	code := Code(rfcSecret, now)

	step, err := Validate(rfcSecret, code, now, 0)
	if err != nil || step != cur {
		t.Fatalf("first use: %d, %v", step, err)
	}
	t.Run("same code twice", func(t *testing.T) {
		if _, err := Validate(rfcSecret, code, now, step); !errors.Is(err, ErrReplayed) {
			t.Fatalf("err = %v, want ErrReplayed", err)
		}
		// Still refused 30 s later, while the step is within the skew window.
		if _, err := Validate(rfcSecret, code, now.Add(Period*time.Second), step); !errors.Is(err, ErrReplayed) {
			t.Fatalf("err = %v, want ErrReplayed", err)
		}
	})
	t.Run("older step after newer", func(t *testing.T) {
		older := Code(rfcSecret, now.Add(-Period*time.Second))
		if _, err := Validate(rfcSecret, older, now, step); !errors.Is(err, ErrReplayed) {
			t.Fatalf("err = %v, want ErrReplayed", err)
		}
	})
	t.Run("newer step after older", func(t *testing.T) {
		newer := Code(rfcSecret, now.Add(Period*time.Second))
		got, err := Validate(rfcSecret, newer, now, step)
		if err != nil || got != cur+1 {
			t.Fatalf("Validate = %d, %v; want %d", got, err, cur+1)
		}
		// And once the next step is used, the current one is gone too.
		if _, err := Validate(rfcSecret, code, now, got); !errors.Is(err, ErrReplayed) {
			t.Fatalf("err = %v, want ErrReplayed", err)
		}
	})
	t.Run("wrong code is invalid not replayed", func(t *testing.T) {
		wrong := []byte(code)
		wrong[0] = '0' + (wrong[0]-'0'+1)%10
		if _, err := Validate(rfcSecret, string(wrong), now, step); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
}

func TestValidateInput(t *testing.T) {
	now := time.Unix(1234567890, 0) // code 005924
	for _, tt := range []struct {
		name, code string
		err        error
	}{
		{"plain", "005924", nil},
		{"space", "005 924", nil},
		{"dash", "005-924", nil},
		{"surrounding spaces", "  005924 ", nil},
		{"empty", "", ErrMalformed},
		{"five digits", "00592", ErrMalformed},
		{"seven digits", "0059240", ErrMalformed},
		{"letter", "00a924", ErrMalformed},
		{"arabic-indic digits", "٠٠٥٩٢٤", ErrMalformed},
		{"fullwidth digits", "００５９２４", ErrMalformed},
		{"dash off centre", "0059-24", ErrMalformed},
		{"two dashes", "005--924", ErrMalformed},
		{"leading dash", "-005924", ErrMalformed},
		{"tab", "005\t924", ErrMalformed},
		{"sign", "+05924", ErrMalformed},
		{"long", strings.Repeat(" ", 100) + "005924", ErrMalformed},
		{"wrong", "123456", ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(rfcSecret, tt.code, now, 0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Validate(%q) err = %v, want %v", tt.code, err, tt.err)
			}
		})
	}
}

func TestValidateShortSecret(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, secret := range [][]byte{nil, {}, make([]byte, MinSecretSize-1)} {
		if _, err := Validate(secret, Code(secret, now), now, 0); !errors.Is(err, ErrSecret) {
			t.Errorf("len %d: err = %v, want ErrSecret", len(secret), err)
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	r := bytes.NewReader(bytes.Repeat([]byte{7}, 64))
	s, err := GenerateSecret(r)
	if err != nil || len(s) != SecretSize || s[0] != 7 {
		t.Fatalf("GenerateSecret = %x, %v", s, err)
	}
	if _, err := GenerateSecret(bytes.NewReader(make([]byte, SecretSize-1))); err == nil {
		t.Fatal("short reader: no error")
	}
	if _, err := GenerateSecret(iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Fatal("failing reader: no error")
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(rfcSecret, "005924", int64(1234567890), int64(0))
	f.Add(rfcSecret, "005 924", int64(1234567890), Step(time.Unix(1234567890, 0)))
	f.Add(rfcSecret, "005-924", int64(1234567890), Step(time.Unix(1234567890, 0))-1)
	f.Add([]byte{}, "١٢٣٤٥٦", int64(-1), int64(-9))
	f.Fuzz(func(t *testing.T, secret []byte, code string, unix, lastStep int64) {
		now := time.Unix(unix, 0)
		step, err := Validate(secret, code, now, lastStep)
		if err != nil {
			if step != 0 {
				t.Fatalf("error %v with step %d", err, step)
			}
			return
		}
		if step <= lastStep {
			t.Fatalf("accepted step %d <= lastStep %d", step, lastStep)
		}
		if cur := Step(now); step < cur-Skew || step > cur+Skew {
			t.Fatalf("accepted step %d outside window around %d", step, cur)
		}
		want := Code(secret, time.Unix(step*Period, 0))
		norm := strings.NewReplacer(" ", "", "-", "").Replace(code)
		if norm != want {
			t.Fatalf("accepted %q for step %d whose code is %s", code, step, want)
		}
		// Replaying with the returned step must never succeed.
		if s2, err := Validate(secret, code, now, step); err == nil {
			t.Fatalf("replay accepted at step %d after %d", s2, step)
		}
	})
}
