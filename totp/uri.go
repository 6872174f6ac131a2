package totp

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"

	"github.com/pquerna/otp"
)

// QR code size limits in pixels. The lower bound is what the version of
// QR code an otpauth URI needs can be drawn in at one pixel per module; the
// upper bound keeps a caller mistake from allocating hundreds of megabytes.
const (
	MinQRSize = 64
	MaxQRSize = 2048
)

// KeyURI returns the otpauth URI authenticator apps enrol from, in Google's
// Key Uri Format (github.com/google/google-authenticator/wiki/Key-Uri-Format):
//
//	otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
//
// Issuer and account are percent-encoded separately, colons included, so the
// single literal ':' in the label is the separator; spaces become %20, not
// '+', which some apps show literally. The issuer is repeated as a parameter,
// which apps prefer over the label prefix.
func KeyURI(issuer, account string, secret []byte) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	b.WriteString(escape(issuer))
	b.WriteByte(':')
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(secret))
	b.WriteString("&issuer=")
	b.WriteString(escape(issuer))
	b.WriteString("&algorithm=SHA1&digits=")
	b.WriteString(strconv.Itoa(Digits))
	b.WriteString("&period=")
	b.WriteString(strconv.Itoa(Period))
	return b.String()
}

// escape percent-encodes everything but unreserved characters, with %20 for
// a space.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// QRCodePNG returns a size×size PNG of a QR code (error correction level M)
// encoding uri.
func QRCodePNG(uri string, size int) ([]byte, error) {
	if size < MinQRSize || size > MaxQRSize {
		return nil, fmt.Errorf("totp: qr code size %d outside %d..%d", size, MinQRSize, MaxQRSize)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return nil, fmt.Errorf("totp: qr code uri: %w", err)
	}
	img, err := key.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("totp: qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp: qr code png: %w", err)
	}
	return buf.Bytes(), nil
}

// QRCodeDataURI returns QRCodePNG as a data: URI for an <img src>, so the
// enrolment page needs no second request carrying the secret.
func QRCodeDataURI(uri string, size int) (string, error) {
	p, err := QRCodePNG(uri, size)
	if err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(p), nil
}
