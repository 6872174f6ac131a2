package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Remembered browsers: after a passed challenge a user may tick "Remember
// this browser", and signing in there again skips the second factor until
// RememberFor has passed. The browser keeps a random token (a cookie); the
// store keeps only its keyed hash, bound to the user and the scope. The
// token is replaced at every use, so a copied cookie works once at most, and
// every remembered browser of a user is forgotten when their second factor
// changes (a method added or removed, the authenticator changed, 2FA reset
// or turned off).

// maxDevices bounds the browsers remembered per user; the least recently
// used goes first.
const maxDevices = 10

// ErrRememberOff is "remember this browser" asked for where it is not
// offered (the block's remember_days is 0, or the team forbids it).
var ErrRememberOff = errors.New("remembering browsers is off")

// RememberAllowed reports whether this block offers "remember this browser".
func (r *Realm) RememberAllowed() bool {
	return r.cfg.RememberFor > 0 && !r.Policy().NoRemember
}

// RememberFor is how long a remembered browser skips the second factor.
func (r *Realm) RememberFor() time.Duration { return r.cfg.RememberFor }

func (svc *Service) deviceHash(token string) []byte {
	m := hmac.New(sha256.New, svc.deviceKey)
	m.Write([]byte(token))
	return m.Sum(nil)
}

// newDevice makes a token and the record of its browser.
func (svc *Service) newDevice(scope string, a Actor, now, expires time.Time) (string, storage.Device, error) {
	var b [32]byte
	if _, err := io.ReadFull(svc.rand, b[:]); err != nil {
		return "", storage.Device{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	h := svc.deviceHash(token)
	return token, storage.Device{ID: hex.EncodeToString(h[:8]), Hash: h, Scope: scope, Agent: truncate(a.Agent, 256),
		Address: a.Address, Created: now, LastUsed: now, Expires: expires}, nil
}

// keepDevices drops expired records and, past maxDevices, the least
// recently used.
func keepDevices(ds []storage.Device, now time.Time) []storage.Device {
	ds = slices.DeleteFunc(ds, func(d storage.Device) bool { return !now.Before(d.Expires) })
	if len(ds) > maxDevices {
		slices.SortFunc(ds, func(a, b storage.Device) int { return b.LastUsed.Compare(a.LastUsed) })
		ds = ds[:maxDevices]
	}
	return ds
}

// Remember remembers the browser of s, a session that just passed its
// second factor, and returns the token for its cookie.
func (r *Realm) Remember(ctx context.Context, a Actor, s *session.Session) (string, error) {
	if !r.RememberAllowed() {
		return "", ErrRememberOff
	}
	if s.State != session.Active || s.AAL < 2 {
		return "", ErrAAL2Required
	}
	now := r.svc.now()
	token, d, err := r.svc.newDevice(r.cfg.Scope, a, now, now.Add(r.cfg.RememberFor))
	if err != nil {
		return "", fmt.Errorf("mfa: device token: %w", err)
	}
	err = r.commit(ctx, s.User, func(u *storage.User) error {
		u.Devices = keepDevices(append(u.Devices, d), now)
		return nil
	}, nil, nil)
	if err != nil {
		return "", err
	}
	r.decision(a, "browser remembered", zap.String("user", s.User), zap.Time("until", d.Expires))
	r.record(a, audit.TypeDeviceRemembered, s.User, map[string]string{"device": d.ID, "days": fmt.Sprint(int(r.cfg.RememberFor.Hours() / 24))})
	return token, nil
}

// signInRemembered tries a remembered browser's token for a sign-in of a
// user with a second factor: when it names a live record of this user and
// scope, the session starts active at AAL2 (stored with the token's
// rotation, in one transaction) and ch carries the new token. ok is false
// when the token does not work (the caller asks for the second factor).
func (r *Realm) signInRemembered(ctx context.Context, a Actor, in SignIn, s *session.Session) (ch Changed, ok bool, err error) {
	now := r.svc.now()
	want := r.svc.deviceHash(in.Device)
	id, err := session.NewID(r.svc.rand)
	if err != nil {
		return Changed{}, false, err
	}
	s.Key, s.Scope = id.Key(), r.cfg.Scope
	s.SetLastSeen(now)
	rec, err := r.svc.toRecord(s)
	if err != nil {
		return Changed{}, false, err
	}
	var token string
	var expires time.Time
	err = r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		ok = false
		u, err := tx.User(in.User)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(u.Devices, func(d storage.Device) bool {
			return hmac.Equal(d.Hash, want) && d.Scope == r.cfg.Scope && now.Before(d.Expires)
		})
		if i < 0 {
			return nil
		}
		var next storage.Device
		expires = u.Devices[i].Expires
		if token, next, err = r.svc.newDevice(r.cfg.Scope, a, now, expires); err != nil {
			return err
		}
		next.ID, next.Created = u.Devices[i].ID, u.Devices[i].Created // the same browser, a new token
		u.Devices[i] = next
		u.LastSignInAt, u.UpdatedAt = now, now
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if in.Old != nil && in.Old.State != session.Anonymous {
			if err := tx.DeleteSession(in.Old.Key.String()); err != nil {
				return err
			}
		}
		ok = true
		return tx.PutSession(rec)
	})
	if err != nil || !ok {
		return Changed{}, false, err
	}
	r.svc.Sessions.Replace(in.Old, s)
	return Changed{Session: s, ID: id, Held: in.Held, Device: token, DeviceMaxAge: expires.Sub(now)}, true, nil
}

// DeviceInfo is a remembered browser, for its user.
type DeviceInfo struct {
	ID       string    `json:"id"`
	Agent    string    `json:"user_agent,omitempty"`
	Address  string    `json:"remote_addr,omitempty"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

// Devices lists the user's remembered browsers in this block's scope,
// most recently used first.
func (r *Realm) Devices(ctx context.Context, user string) ([]DeviceInfo, error) {
	u, err := r.svc.User(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("mfa: load user: %w", err)
	}
	now := r.svc.now()
	out := []DeviceInfo{}
	for _, d := range u.Devices {
		if d.Scope == r.cfg.Scope && now.Before(d.Expires) {
			out = append(out, DeviceInfo{ID: d.ID, Agent: d.Agent, Address: d.Address, LastUsed: d.LastUsed, Expires: d.Expires})
		}
	}
	slices.SortFunc(out, func(a, b DeviceInfo) int { return b.LastUsed.Compare(a.LastUsed) })
	return out, nil
}

// ForgetDevice forgets one of the user's remembered browsers: signing in
// there asks for the second factor again.
func (r *Realm) ForgetDevice(ctx context.Context, a Actor, s *session.Session, id string) error {
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		n := len(u.Devices)
		u.Devices = slices.DeleteFunc(u.Devices, func(d storage.Device) bool { return d.ID == id && d.Scope == r.cfg.Scope })
		if len(u.Devices) == n {
			return abort{ErrUnknownDevice}
		}
		return nil
	}, nil, nil)
	if err != nil {
		return err
	}
	r.decision(a, "browser forgotten", zap.String("user", s.User), zap.String("device", id))
	r.record(a, audit.TypeDeviceForgotten, s.User, map[string]string{"device": id})
	return nil
}

// ErrUnknownDevice is a remembered browser the user does not have.
var ErrUnknownDevice = errors.New("unknown remembered browser")
