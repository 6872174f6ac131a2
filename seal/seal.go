// Package seal encrypts small secrets at rest (TOTP secrets, held cookies,
// pending recovery codes) and handles the gateway's master key.
//
// Everything here takes its randomness as an io.Reader so that tests are
// deterministic; production code passes crypto/rand.Reader.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrDecrypt is returned (wrapped) by Open for every failure: a wrong key, a
// tampered or truncated value, or an unknown format version. The causes are
// deliberately not told apart to the caller, who should treat them all alike
// (fail closed) and only log that decryption failed.
var ErrDecrypt = errors.New("seal: cannot decrypt")

const (
	// KeySize is the size of every key this package handles: AES-256
	// (FIPS 197) and HMAC-SHA256 subkeys (RFC 2104) both use 32 bytes.
	KeySize = 32

	// version1 marks AES-256-GCM with a 96-bit random nonce. A leading
	// version byte lets the format change later (a new algorithm, key
	// rotation with a key ID) without guessing from the length.
	version1 byte = 0x01

	nonceSize = 12 // the standard GCM nonce size (NIST SP 800-38D, 8.2)
	tagSize   = 16
	overhead  = 1 + nonceSize + tagSize
)

// Box encrypts small values at rest with AES-256-GCM. Safe for concurrent use.
//
// Nonces are 96 random bits per message. NIST SP 800-38D (8.3) limits random
// nonces to 2^32 messages per key; the gateway seals a handful of values per
// user or sign-in, far below that.
type Box struct {
	aead cipher.AEAD

	// randMu serialises reads from rand: crypto/rand.Reader is safe for
	// concurrent use, but readers injected by tests often are not.
	randMu sync.Mutex
	rand   io.Reader
}

// New returns a Box using key, which must be KeySize (32) bytes, so that the
// cipher is always AES-256 rather than silently AES-128 on a short key. rand
// supplies nonces; nil means crypto/rand.Reader.
func New(key []byte, rand io.Reader) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key) // copies the key schedule; the caller may wipe key
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Box{aead: aead, rand: orCryptoRand(rand)}, nil
}

// Seal encrypts and authenticates plaintext, also authenticating
// additionalData, which is not stored. Callers pass context such as
// "totp:"+userID as additionalData so that a sealed value copied into another
// record or field fails to open instead of being accepted there.
//
// The output is a fresh slice: version byte 0x01 || 12-byte nonce ||
// ciphertext || 16-byte tag.
func (b *Box) Seal(plaintext, additionalData []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, overhead+len(plaintext))
	out[0] = version1
	nonce := out[1 : 1+nonceSize]
	b.randMu.Lock()
	_, err := io.ReadFull(b.rand, nonce)
	b.randMu.Unlock()
	if err != nil {
		// Never fall back to a fixed or counter nonce: reusing a GCM nonce
		// under one key leaks the authentication key.
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	return b.aead.Seal(out, nonce, plaintext, additionalData), nil
}

// Open checks and decrypts a value made by Seal with the same key and
// additionalData. Every failure returns an error wrapping ErrDecrypt; Open
// never panics, whatever sealed holds, since values come back from storage
// that an attacker may have written to.
func (b *Box) Open(sealed, additionalData []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("%w: input too short", ErrDecrypt)
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrDecrypt, sealed[0])
	}
	nonce := sealed[1 : 1+nonceSize]
	plaintext, err := b.aead.Open(nil, nonce, sealed[1+nonceSize:], additionalData)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrDecrypt)
	}
	return plaintext, nil
}

// DeriveKey returns the 32-byte subkey HMAC-SHA256(master, "mfagate/v1/"+label).
//
// One operator-supplied master key serves several purposes (cookie signing,
// CSRF tokens, recovery-code hashing, the Box key). Using it directly for all
// of them would let a value produced for one purpose be replayed as another;
// a PRF keyed by the master over a per-purpose label separates the domains
// (RFC 2104; the same construction as HKDF-Expand's first block, RFC 5869).
// The "v1" lets a future scheme derive different keys from the same master.
func DeriveKey(master []byte, label string) []byte {
	mac := hmac.New(sha256.New, master)
	mac.Write([]byte("mfagate/v1/" + label))
	return mac.Sum(nil)
}

func orCryptoRand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
