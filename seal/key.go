package seal

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ParseKey decodes a 32-byte key written as base64 (standard or URL alphabet,
// padded or not) or as 64 hex characters. Surrounding whitespace is ignored,
// as keys often come from files or environment variables with a trailing
// newline.
//
// Errors never contain the input: a key that is almost right is still a
// secret, and these errors end up in logs.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("seal: key is empty")
	}
	// 64 hex characters are also valid base64 (of 48 bytes), so hex is
	// tried first; no 32-byte base64 form is 64 characters long.
	if len(s) == 2*KeySize {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding,
		base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.DecodeString(s); err == nil && len(key) == KeySize {
			return key, nil
		}
	}
	return nil, fmt.Errorf("seal: key must be %d bytes encoded as base64 or %d hex characters (got %d characters that are neither)",
		KeySize, 2*KeySize, len(s))
}

// LoadOrCreateKeyFile reads the key in path (ParseKey format, trailing
// whitespace allowed) or, if the file does not exist, creates it with
// KeySize bytes from rand (nil means crypto/rand.Reader), base64-encoded,
// mode 0600, creating missing parent directories with mode 0700.
//
// Creation is atomic and exclusive: the key is written and synced to a
// temporary file, which is then hard-linked to path. Unlike rename, a link
// fails when path already exists, so when two processes start at once (say,
// two Caddy instances sharing a data directory) one wins and the other reads
// the winner's key instead of replacing it; and unlike writing path directly
// with O_EXCL, no reader ever sees a half-written key.
//
// An existing file that grants any access to group or others is refused with
// an error naming the path and mode, rather than used: whoever can read the
// master key can forge sessions and decrypt every TOTP secret.
func LoadOrCreateKeyFile(path string, rand io.Reader) ([]byte, error) {
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKeyFile(path, orCryptoRand(rand))
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err) // *PathError names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; Go reports 0666/0444 there.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("seal: key file %s has mode %#o, which lets group or others access it; run chmod 600 %s",
			path, perm, path)
	}
	// A key file is a few dozen bytes; refuse to read a huge file by mistake.
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("seal: read key file %s: %w", path, err)
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	return key, nil
}

func createKeyFile(path string, rand io.Reader) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seal: create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("seal: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after the link, path keeps the data

	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("seal: write key file %s: %w", tmpName, werr)
	}

	switch err := os.Link(tmpName, path); {
	case err == nil:
		syncDir(dir)
		return key, nil
	case errors.Is(err, fs.ErrExist):
		// Another process created the key first: use theirs.
		return readKeyFile(path)
	default:
		return nil, fmt.Errorf("seal: create key file: %w", err)
	}
}

// syncDir makes a new directory entry durable. It is best effort: some
// platforms and file systems cannot sync a directory, and the key file itself
// was already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
