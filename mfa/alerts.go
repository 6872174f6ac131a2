package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"slices"
	"strconv"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/useragent"
)

// New-login alerts: when the team turns them on, a user who completes a
// sign-in from a browser they have not signed in from before is emailed
// (time, browser, address, and where to see their sessions). Browsers are
// recognised by a long-lived random cookie whose keyed hash is kept per
// user. The first browser a user signs in from raises no alert.

// maxBrowsers bounds the browsers kept per user, the least recently used
// going first.
const maxBrowsers = 20

// LoginAlerts reports whether the team turned new-login alerts on.
func (r *Realm) LoginAlerts() bool { return r.Policy().LoginAlerts }

// SignedInFrom records that user completed a sign-in from the browser that
// sent token ("" for none), emailing an alert when it is new to them and
// alerts are on. It returns the token the browser should keep: a new one
// when it had none. The sign-in has happened either way: a failure here is
// logged, not returned.
func (r *Realm) SignedInFrom(ctx context.Context, a Actor, user, token, sessionsURL string) string {
	issued := ""
	if token == "" {
		var b [24]byte
		if _, err := io.ReadFull(r.svc.rand, b[:]); err != nil {
			r.log.Error("browser token", zap.Error(err))
			return ""
		}
		token = base64.RawURLEncoding.EncodeToString(b[:])
		issued = token
	}
	m := hmac.New(sha256.New, r.svc.deviceKey)
	m.Write([]byte("seen:" + token))
	h := m.Sum(nil)
	now := r.svc.now()
	var fresh bool
	var u storage.User
	err := r.svc.Store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if u, err = tx.User(user); err != nil {
			return err
		}
		i := slices.IndexFunc(u.Browsers, func(b storage.Browser) bool { return hmac.Equal(b.Hash, h) })
		fresh = i < 0 && len(u.Browsers) > 0 // never for the first browser
		if i >= 0 {
			u.Browsers[i].LastUsed = now
		} else {
			u.Browsers = append(u.Browsers, storage.Browser{Hash: h, LastUsed: now})
			if len(u.Browsers) > maxBrowsers {
				slices.SortFunc(u.Browsers, func(a, b storage.Browser) int { return b.LastUsed.Compare(a.LastUsed) })
				u.Browsers = u.Browsers[:maxBrowsers]
			}
		}
		return tx.PutUser(u)
	})
	if err != nil {
		r.log.Error("record the browser of a sign-in", zap.String("user", user), zap.Error(err))
		return issued
	}
	if fresh && r.LoginAlerts() {
		sent := r.notify(u, mail.NewLoginNotice(r.cfg.Issuer, user, now, useragent.Describe(a.Agent), a.Address, sessionsURL))
		r.decision(a, "new-login alert", zap.String("user", user), zap.Bool("emailed", sent))
		r.record(a, audit.TypeNewLoginAlert, user, map[string]string{"emailed": strconv.FormatBool(sent)})
	}
	return issued
}

// SetLoginAlerts turns the scope's new-login alerts on or off.
func (svc *Service) SetLoginAlerts(ctx context.Context, a Actor, scope string, on bool) (Policy, error) {
	pc, err := svc.scopePolicy(scope)
	if err != nil {
		return Policy{}, err
	}
	p, err := pc.update(ctx, svc, func(p *Policy) error {
		p.LoginAlerts = on
		return nil
	})
	if err != nil {
		return p, err
	}
	svc.logger.Info("policy changed", zap.String("scope", scope), zap.Bool("login_alerts", on), zap.String("by", a.User))
	svc.Audit.Record(a.event(audit.TypePolicyChanged, "", map[string]string{"scope": scope, "login_alerts": strconv.FormatBool(on)}))
	return p, nil
}

// SetLoginAlerts is SetLoginAlerts for the realm's scope.
func (r *Realm) SetLoginAlerts(ctx context.Context, a Actor, on bool) (Policy, error) {
	return r.svc.SetLoginAlerts(ctx, a, r.cfg.Scope, on)
}
