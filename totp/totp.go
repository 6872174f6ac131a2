// Package totp implements RFC 6238 time-based one-time passwords with the
// parameters every authenticator app supports (SHA1, 6 digits, 30 s period)
// and replay protection: a code accepted once is never accepted again
// (RFC 6238 §5.2).
//
// The package keeps no state. Callers pass the current time and the last
// accepted time step, and store the step Validate returns atomically with
// whatever the successful check creates (a session, a confirmed enrolment).
package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Fixed parameters. Anything else (SHA256, 8 digits, 60 s) is silently
// ignored by some popular authenticator apps, which then show wrong codes.
const (
	// Digits is the length of a code.
	Digits = 6
	// Period is the length of a time step in seconds.
	Period = 30
	// Skew is how many steps before and after the current one are accepted,
	// for clock drift and typing time (RFC 6238 §5.2 recommends at most one).
	Skew = 1
	// SecretSize is the size of generated secrets in bytes: 160 bits, the
	// length RFC 4226 §4 (R6) recommends and the size of an SHA1 block key.
	SecretSize = 20
	// MinSecretSize is the shortest secret Validate accepts: RFC 4226 §4 (R6)
	// requires at least 128 bits.
	MinSecretSize = 16

	// maxCodeInput bounds the raw input before normalisation.
	maxCodeInput = 32
)

var (
	ErrMalformed = errors.New("totp: code must be 6 digits")
	ErrInvalid   = errors.New("totp: wrong code")
	ErrReplayed  = errors.New("totp: code already used")
	// ErrSecret means the stored secret is unusable (shorter than
	// MinSecretSize): a storage or configuration fault, never a user error.
	ErrSecret = errors.New("totp: secret too short")
)

// GenerateSecret returns SecretSize bytes read from rand (crypto/rand.Reader
// in production).
func GenerateSecret(rand io.Reader) ([]byte, error) {
	secret := make([]byte, SecretSize)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, fmt.Errorf("totp: reading random secret: %w", err)
	}
	return secret, nil
}

// Step returns the RFC 6238 time step of t: t.Unix()/30.
func Step(t time.Time) int64 {
	return t.Unix() / Period
}

// Code returns the code an authenticator app shows at t.
func Code(secret []byte, t time.Time) string {
	var out [Digits]byte
	hotpDigits(secret, Step(t), &out)
	return string(out[:])
}

// hotpDigits writes the RFC 4226 value of secret at counter step as Digits ASCII
// digits into out (HMAC-SHA1, dynamic truncation, RFC 4226 §5.3-5.4).
func hotpDigits(secret []byte, step int64, out *[Digits]byte) {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	var sum [sha1.Size]byte
	mac.Sum(sum[:0])
	offset := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	v %= 1_000_000
	for i := Digits - 1; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
}

// normalize strips spaces and one dash between the two halves ("123 456",
// "123-456"), then requires exactly Digits ASCII digits. Unicode digits and
// everything else are refused, so there is a single spelling of each code.
func normalize(code string) ([Digits]byte, error) {
	var out [Digits]byte
	if len(code) > maxCodeInput {
		return out, ErrMalformed
	}
	var buf [maxCodeInput]byte
	n := 0
	for i := 0; i < len(code); i++ {
		if c := code[i]; c != ' ' {
			buf[n] = c
			n++
		}
	}
	b := buf[:n]
	if len(b) == Digits+1 && b[Digits/2] == '-' {
		copy(b[Digits/2:], b[Digits/2+1:])
		b = b[:Digits]
	}
	if len(b) != Digits {
		return out, ErrMalformed
	}
	for i, c := range b {
		if c < '0' || c > '9' {
			return out, ErrMalformed
		}
		out[i] = c
	}
	return out, nil
}

// Validate checks code against the steps Step(now)-Skew..Step(now)+Skew and
// returns the matched step, which the caller must store as the new lastStep.
//
// A code is never accepted for a step at or before lastStep (RFC 6238 §5.2:
// "the verifier MUST NOT accept the second attempt of the OTP after the
// successful validation has been issued for the first OTP"). Pass 0 when no
// code was accepted yet. A code that matches only such a step gives
// ErrReplayed; no match gives ErrInvalid; input that is not 6 digits after
// removing spaces and a middle dash gives ErrMalformed.
//
// Every candidate step is computed and compared in constant time, whether or
// not an earlier one matched. If the code matches several allowed steps (a
// 1-in-a-million collision), the latest is returned, so the same digits can
// not be accepted a second time for the later step.
func Validate(secret []byte, code string, now time.Time, lastStep int64) (step int64, err error) {
	want, err := normalize(code)
	if err != nil {
		return 0, err
	}
	if len(secret) < MinSecretSize {
		return 0, ErrSecret
	}
	cur := Step(now)
	var matched int64
	found, replayed := false, false
	for s := cur - Skew; s <= cur+Skew; s++ {
		var got [Digits]byte
		hotpDigits(secret, s, &got)
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			if s > lastStep {
				matched, found = s, true
			} else {
				replayed = true
			}
		}
	}
	switch {
	case found:
		return matched, nil
	case replayed:
		return 0, ErrReplayed
	default:
		return 0, ErrInvalid
	}
}
