package mfa

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// The second factor only from new addresses: a user may choose, for their
// own account only, to be asked for it only when signing in from an address
// they have not passed a challenge from. Addresses are learned after each
// passed challenge and kept per user (and scope) with their last use. The
// operator's trusted_networks skip the second factor for everyone there.
// Either way the app's password is still needed, and the session is at AAL1:
// changes to 2FA and the admin pages ask for a code.

// maxKnownIPs bounds the addresses kept per user; the least recently used
// goes first.
const maxKnownIPs = 20

// ErrUnknownAddress is an address the user has not passed a challenge from.
var ErrUnknownAddress = errors.New("unknown address")

// learnAddress records that u passed a challenge from addr now.
func learnAddress(u *storage.User, scope, addr string, now time.Time) {
	if addr == "" {
		return
	}
	i := slices.IndexFunc(u.KnownIPs, func(k storage.KnownIP) bool { return k.Address == addr && k.Scope == scope })
	if i >= 0 {
		u.KnownIPs[i].LastUsed = now
		return
	}
	u.KnownIPs = append(u.KnownIPs, storage.KnownIP{Address: addr, Scope: scope, LastUsed: now})
	if len(u.KnownIPs) > maxKnownIPs {
		slices.SortFunc(u.KnownIPs, func(a, b storage.KnownIP) int { return b.LastUsed.Compare(a.LastUsed) })
		u.KnownIPs = u.KnownIPs[:maxKnownIPs]
	}
}

// knows reports whether u passed a challenge from addr in scope.
func knows(u storage.User, scope, addr string) bool {
	return addr != "" && slices.ContainsFunc(u.KnownIPs, func(k storage.KnownIP) bool { return k.Address == addr && k.Scope == scope })
}

// trusted reports whether addr is in one of the operator's trusted networks.
func (r *Realm) trusted(addr string) bool {
	if len(r.cfg.TrustedNetworks) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return slices.ContainsFunc(r.cfg.TrustedNetworks, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// skipReason says why a sign-in of u from a skips the second factor, "" if
// it does not.
func (r *Realm) skipReason(u storage.User, a Actor) string {
	switch {
	case r.trusted(a.Address):
		return "trusted network"
	case u.NewIPOnly && knows(u, r.cfg.Scope, a.Address):
		return "known address"
	}
	return ""
}

// SetNewIPOnly switches "ask for the second factor only from new addresses"
// for the session's own user, who must hold a method and have passed it in
// this sign-in. Nobody can set it for someone else.
func (r *Realm) SetNewIPOnly(ctx context.Context, a Actor, s *session.Session, on bool) error {
	if s.AAL < 2 {
		return ErrAAL2Required
	}
	now := r.svc.now()
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		if len(Methods(*u)) == 0 {
			return abort{ErrNotEnrolled}
		}
		u.NewIPOnly = on
		if on {
			learnAddress(u, r.cfg.Scope, a.Address, now) // the address the choice was made from
		}
		return nil
	}, nil, nil)
	if err != nil {
		return err
	}
	r.decision(a, "new-address-only changed", zap.String("user", s.User), zap.Bool("on", on))
	r.record(a, audit.TypeNewIPOnlyChanged, s.User, map[string]string{"on": strconv.FormatBool(on)})
	return nil
}

// Addresses is the user's choice and the addresses they passed a challenge
// from in this scope, most recently used first.
func (r *Realm) Addresses(ctx context.Context, user string) (bool, []storage.KnownIP, error) {
	u, err := r.svc.User(ctx, user)
	if err != nil {
		return false, nil, fmt.Errorf("mfa: load user: %w", err)
	}
	out := []storage.KnownIP{}
	for _, k := range u.KnownIPs {
		if k.Scope == r.cfg.Scope {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b storage.KnownIP) int { return b.LastUsed.Compare(a.LastUsed) })
	return u.NewIPOnly, out, nil
}

// ForgetAddress forgets one known address: signing in from it asks for the
// second factor again.
func (r *Realm) ForgetAddress(ctx context.Context, a Actor, s *session.Session, addr string) error {
	err := r.commit(ctx, s.User, func(u *storage.User) error {
		n := len(u.KnownIPs)
		u.KnownIPs = slices.DeleteFunc(u.KnownIPs, func(k storage.KnownIP) bool { return k.Address == addr && k.Scope == r.cfg.Scope })
		if len(u.KnownIPs) == n {
			return abort{ErrUnknownAddress}
		}
		return nil
	}, nil, nil)
	if err != nil {
		return err
	}
	r.decision(a, "address forgotten", zap.String("user", s.User))
	r.record(a, audit.TypeAddressForgotten, s.User, nil)
	return nil
}
