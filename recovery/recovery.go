// Package recovery generates single-use recovery codes and checks them
// against keyed hashes, so a stolen database alone does not reveal them.
//
// Codes are 12 characters from a 32-letter alphabet (60 bits of entropy),
// shown as "xxxxxx-xxxxxx". The alphabet is the lower-case letters and the
// digits 2-9, without 'l', 'o', '0' and '1', which are easily mistaken for
// each other in print and handwriting:
//
//	abcdefghijkmnpqrstuvwxyz23456789
//
// Thirty-two symbols make each character exactly 5 bits, so drawing one from
// a random byte (b % 32) has no modulo bias.
package recovery

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// Count is how many codes a user gets at a time.
	Count = 10

	// Alphabet is the set of characters codes are made of.
	Alphabet = "abcdefghijkmnpqrstuvwxyz23456789"

	// Length is the number of alphabet characters in a code (60 bits).
	Length = 12

	// maxInput bounds Normalize's input before any work.
	maxInput = 64
	// maxCodes bounds Generate's n; anything larger is a caller bug.
	maxCodes = 1000
	// drawAttempts bounds redraws when a new code duplicates an earlier one
	// (2^-60 per pair with a real random source; a broken one fails here).
	drawAttempts = 8
)

var (
	ErrMalformed = errors.New("recovery: malformed code")
	// ErrNoKey means Match was called without a hashing key: a configuration
	// fault, never a user error.
	ErrNoKey = errors.New("recovery: empty hash key")
)

// Generate returns n distinct codes drawn from rand (crypto/rand.Reader in
// production), formatted "xxxxxx-xxxxxx".
func Generate(rand io.Reader, n int) ([]string, error) {
	if n < 0 || n > maxCodes {
		return nil, fmt.Errorf("recovery: cannot generate %d codes", n)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	var raw [Length]byte
	for len(codes) < n {
		var code string
		for attempt := 0; ; attempt++ {
			if attempt == drawAttempts {
				return nil, errors.New("recovery: random source keeps repeating")
			}
			if _, err := io.ReadFull(rand, raw[:]); err != nil {
				return nil, fmt.Errorf("recovery: reading randomness: %w", err)
			}
			var b [Length + 1]byte
			for i, r := range raw {
				j := i
				if i >= Length/2 {
					j++
				}
				b[j] = Alphabet[r%32]
			}
			b[Length/2] = '-'
			code = string(b[:])
			if !seen[code] {
				break
			}
		}
		seen[code] = true
		codes = append(codes, code)
	}
	return codes, nil
}

// Normalize returns the canonical form of a code as typed: surrounding
// space trimmed, ASCII letters lower-cased, spaces and dashes removed. The
// result must be exactly Length characters of Alphabet, else ErrMalformed.
// Input longer than 64 bytes is refused before any work.
func Normalize(code string) (string, error) {
	if len(code) > maxInput {
		return "", ErrMalformed
	}
	var b [maxInput]byte
	n := 0
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == ' ' || c == '-' || c == '\t' || c == '\r' || c == '\n':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(Alphabet, c) < 0 {
			return "", ErrMalformed
		}
		b[n] = c
		n++
	}
	if n != Length {
		return "", ErrMalformed
	}
	return string(b[:n]), nil
}

// Hash returns HMAC-SHA256(key, normalized), the form codes are stored in.
// A keyed hash rather than a password hash: 60 random bits need no
// stretching, and without the key (kept outside the database) stored hashes
// cannot be tested offline at all.
func Hash(key []byte, normalized string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(normalized))
	return mac.Sum(nil)
}

// Match normalises input and returns the index of the stored hash it
// matches, or -1. Every stored hash is compared in constant time, with no
// early exit, so timing says neither whether nor where a code matched.
// Garbage input gives ErrMalformed.
func Match(key []byte, hashes [][]byte, input string) (int, error) {
	if len(key) == 0 {
		return -1, ErrNoKey
	}
	norm, err := Normalize(input)
	if err != nil {
		return -1, err
	}
	h := Hash(key, norm)
	idx := -1
	for i, stored := range hashes {
		eq := subtle.ConstantTimeCompare(h, stored)
		first := subtle.ConstantTimeEq(int32(idx), -1)
		idx = subtle.ConstantTimeSelect(eq&first, i, idx)
	}
	return idx, nil
}

// Remove returns a new slice of hashes without index i, sharing no memory
// with the input (the caller may keep or wipe the old one). An i out of
// range returns an unchanged copy.
func Remove(hashes [][]byte, i int) [][]byte {
	out := make([][]byte, 0, len(hashes))
	for j, h := range hashes {
		if j != i {
			out = append(out, append([]byte(nil), h...))
		}
	}
	return out
}
