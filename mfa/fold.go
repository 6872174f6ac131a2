package mfa

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
)

// Folded user names. A site block may fold the user names it learns
// (username.Fold), so that every spelling an app signs in as one account is
// one user here. Users stored before folding was turned on keep their
// spelling in the store; foldUsers moves each to its folded id, so that the
// user "Alice" who enrolled earlier is the "alice" a folded sign-in names.

// foldUsers moves every stored user to its folded id, in one transaction.
// Two users that fold to one id are joined when at most one of them has a
// second factor (that one is kept: a factor is never dropped); when both
// have one, it fails and names them, for the operator to reset one. Moved
// users' sessions end: they were made for the old id.
func (svc *Service) foldUsers(ctx context.Context, fold func(string) string) error {
	var moved []string
	err := svc.Store.Update(ctx, func(tx storage.Tx) error {
		moved = moved[:0]
		var all []storage.User
		if err := tx.ForEachUser(func(u storage.User) error { all = append(all, u); return nil }); err != nil {
			return err
		}
		byID := make(map[string]storage.User, len(all))
		for _, u := range all {
			byID[u.ID] = u
		}
		for _, u := range all {
			to := fold(u.ID)
			if to == u.ID || to == "" {
				continue
			}
			if dst, ok := byID[to]; ok {
				switch {
				case HasFactor(u) && HasFactor(dst):
					return fmt.Errorf("mfa: users %q and %q are one user once names are folded, and both have 2FA: reset one of them (caddy mfa reset %q) and start again", u.ID, dst.ID, u.ID)
				case !HasFactor(u):
					// The folded record has the factor, or neither has one.
					if err := tx.DeleteUser(u.ID); err != nil {
						return err
					}
					delete(byID, u.ID)
					moved = append(moved, u.ID)
					continue
				}
			}
			n, err := svc.rekeyUser(u, to)
			if err != nil {
				return err
			}
			if err := tx.DeleteUser(u.ID); err != nil {
				return err
			}
			if err := tx.PutUser(n); err != nil {
				return err
			}
			delete(byID, u.ID)
			byID[to] = n
			moved = append(moved, u.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range moved {
		ended, _ := svc.endUserSessions(id, nil) // a store failure is logged by deleteSessions
		svc.logger.Info("user moved to its folded name", zap.String("from", id), zap.String("to", fold(id)), zap.Int("sessions_ended", ended))
	}
	return nil
}

// rekeyUser is u under another id: its sealed secrets are bound to the id,
// so they are opened and sealed again.
func (svc *Service) rekeyUser(u storage.User, to string) (storage.User, error) {
	n := u
	n.ID = to
	if len(u.TOTPSecret) > 0 {
		plain, err := svc.box.Open(u.TOTPSecret, totpAAD(u.ID))
		if err != nil {
			return n, fmt.Errorf("mfa: move %q: open its authenticator secret: %w", u.ID, err)
		}
		if n.TOTPSecret, err = svc.box.Seal(plain, totpAAD(to)); err != nil {
			return n, fmt.Errorf("mfa: move %q: %w", u.ID, err)
		}
	}
	if len(u.PendingCodes) > 0 {
		plain, err := svc.box.Open(u.PendingCodes, codesAAD(u.ID))
		if err != nil {
			return n, fmt.Errorf("mfa: move %q: open its pending codes: %w", u.ID, err)
		}
		if n.PendingCodes, err = svc.box.Seal(plain, codesAAD(to)); err != nil {
			return n, fmt.Errorf("mfa: move %q: %w", u.ID, err)
		}
	}
	return n, nil
}
