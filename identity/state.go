package identity

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Settings keys in the store.
const (
	SettingState  = "identity/state"
	SettingHealth = "identity/health"
)

// Prefixes of the two credentials (seed 000, "Widget key vs identity
// secret").
const (
	SecretPrefix    = "ha_secret_"
	WidgetKeyPrefix = "ab_live_"
)

const (
	stateVersion = 1

	// secretBytes of randomness in a secret: 256 bits, the HS256 key size
	// RFC 7518 3.2 asks for at least.
	secretBytes = 32
	// widgetKeyBytes: the widget key is public, so it only has to be
	// unique and unguessable enough not to collide: 144 bits.
	widgetKeyBytes = 18

	// Additional data for sealing, so a sealed secret copied from one field
	// to the other fails to open instead of, say, reviving a retired secret
	// as the current one.
	adSecret   = "mfagate/identity/secret"
	adPrevious = "mfagate/identity/previous"
)

// persisted is the setting SettingState.
type persisted struct {
	Version          int       `json:"v"`
	Mode             Mode      `json:"mode"`
	Secret           []byte    `json:"secret,omitempty"` // sealed; the secret string's bytes
	SecretCreated    time.Time `json:"secret_created,omitzero"`
	Previous         []byte    `json:"previous,omitempty"` // sealed
	PrevUntil        time.Time `json:"prev_until,omitzero"`
	WidgetKey        string    `json:"widget_key,omitempty"`
	WidgetKeyCreated time.Time `json:"widget_key_created,omitzero"`
	UpdatedAt        time.Time `json:"updated_at,omitzero"`
}

func decodeState(data []byte) (persisted, error) {
	var st persisted
	if err := json.Unmarshal(data, &st); err != nil {
		return persisted{}, fmt.Errorf("identity: stored state: %w", err)
	}
	if st.Version != stateVersion {
		return persisted{}, fmt.Errorf("identity: stored state: %w %d", errUnknownVersion, st.Version)
	}
	if !st.Mode.Valid() {
		return persisted{}, fmt.Errorf("identity: stored state: unknown mode %q", st.Mode)
	}
	return st, nil
}

func jsonMarshal(st persisted) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("identity: encode state: %w", err)
	}
	return b, nil
}

// randomToken returns prefix + base64url(n random bytes).
func randomToken(rand io.Reader, prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("identity: read random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}
