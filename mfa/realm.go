package mfa

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mfagate/mfagate/mail"
	"github.com/mfagate/mfagate/session"
	"github.com/mfagate/mfagate/storage"
)

// Mailer queues an email without blocking (mail.Outbox).
type Mailer interface {
	Queue(mail.Message) bool
}

// CookieClassifier reads one of the app's Set-Cookie lines: the cookie's
// name and value, and whether the line deletes it. ok is false for a line
// that is not one of the app's session cookies. The request guard owns the
// one classifier; the domain asks it rather than parse HTTP itself.
type CookieClassifier func(line string, now time.Time) (name, value string, deleted, ok bool)

// Config is one site block's domain settings, defaults already applied.
type Config struct {
	Scope          string        // the population the team policy applies to
	Issuer         string        // name in authenticator apps, pages and emails
	Require2FA     bool          // the Caddyfile's starting policy
	IdleTimeout    time.Duration // the Caddyfile's idle timeout; the team's setting overrides it
	MaxLifetime    time.Duration // the second factor is asked again after this
	PendingTTL     time.Duration // how long a password sign-in waits for its second factor
	MaxAttempts    int           // wrong codes per user (4x per address) per AttemptWindow
	AttemptWindow  time.Duration
	MaxFailedCodes int           // wrong authenticator codes in a row before it locks; 0 means DefaultMaxFailedCodes
	PolicyMaxAge   time.Duration // how stale a policy read from the store may be
	GracePeriod    time.Duration // sessions from before "require 2FA" without it end after this
	Admins         []string      // user ids allowed to administer (at AAL2)
	AdminRoles     []string      // roles reported by the app that make a user an admin
	Mailer         Mailer        // nil: no email configured
	Texter         Texter        // nil: no text messages configured
	Methods        []string      // the methods users may hold; empty: every one configured
	RememberFor    time.Duration // how long "remember this browser" lasts; 0: not offered
	// EnrolEmailProof asks a user whose team requires 2FA, who has no factor
	// yet and whose email address the app reported, to prove that address
	// with a code before confirming a first factor: a stolen password alone
	// cannot enrol an attacker's authenticator.
	EnrolEmailProof bool
	// TrustedNetworks are client networks where signing in skips the second
	// factor for everyone (never the password).
	TrustedNetworks []netip.Prefix
	EmailTemplate   string // an address made from the user id when none is known
	Classify        CookieClassifier
	// Fold, if set, is how the realm folds user names (username.Fold): users
	// stored under other spellings are moved to their folded id when the
	// realm starts, and UserID folds names given to admin operations.
	Fold func(string) string
}

// Realm is one site block's view of a Service: its scope, policy and
// settings. Pages, the JSON API, the request guard and the command line all
// change state through its operations (or the Service's), which audit
// themselves.
type Realm struct {
	svc    *Service
	cfg    Config
	policy *policyCache
	log    *zap.Logger
}

// Realm registers a site block's settings on the service. Release undoes it
// when the config is unloaded.
func (svc *Service) Realm(cfg Config, logger *zap.Logger) (*Realm, error) {
	if cfg.Classify == nil {
		return nil, fmt.Errorf("mfa: realm %q: a cookie classifier is required", cfg.Scope)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.Fold != nil {
		if err := svc.foldUsers(context.Background(), cfg.Fold); err != nil {
			return nil, err
		}
	}
	svc.useIdle(cfg.IdleTimeout)
	pc, err := svc.policyFor(cfg.Scope, Policy{Require2FA: cfg.Require2FA})
	if err != nil {
		return nil, err
	}
	r := &Realm{svc: svc, cfg: cfg, policy: pc, log: logger}
	svc.register(r)
	return r, nil
}

// Release removes the realm's hold on the service: its forced-logout emails
// and its share of the sweep and policy settings.
func (r *Realm) Release() { r.svc.unregister(r) }

// Service is the realm's service (one database).
func (r *Realm) Service() *Service { return r.svc }

// UserID is the id a user name stands for in this realm: folded when the
// realm folds names.
func (r *Realm) UserID(name string) string {
	if r.cfg.Fold != nil {
		return r.cfg.Fold(name)
	}
	return name
}

// Scope is the population the realm's policy applies to.
func (r *Realm) Scope() string { return r.cfg.Scope }

// Policy is the scope's policy in force.
func (r *Realm) Policy() Policy { return r.policy.get(r.svc) }

// IdleTimeout is the idle timeout in force: the team's setting, else the Caddyfile's.
func (r *Realm) IdleTimeout() time.Duration { return r.Policy().idle(r.cfg.IdleTimeout) }

// GracePeriod is how long pre-enforcement sessions of users without 2FA last.
func (r *Realm) GracePeriod() time.Duration { return r.policy.gracePeriod() }

// Require2FA reports whether users without 2FA must enrol before the app.
func (r *Realm) Require2FA() bool { return r.Policy().Require2FA }

// EmailConfigured reports whether notices can be emailed.
func (r *Realm) EmailConfigured() bool { return r.cfg.Mailer != nil }

// IsAdmin: an active session whose user the operator named an admin, or
// whose role (as the app reported it at sign-in) is an admin role.
func (r *Realm) IsAdmin(s *session.Session) bool {
	if s == nil || s.State != session.Active {
		return false
	}
	return slices.Contains(r.cfg.Admins, s.User) || (s.Role != "" && slices.Contains(r.cfg.AdminRoles, s.Role))
}

// NamedAdmin reports whether the operator named user an admin, or a live
// session of theirs carries an admin role.
func (r *Realm) NamedAdmin(user string, byRole map[string]bool) bool {
	return slices.Contains(r.cfg.Admins, user) || byRole[user]
}

// AdminsByRole lists users admitted as admins by the role a live session carries.
func (r *Realm) AdminsByRole() map[string]bool {
	out := map[string]bool{}
	for _, s := range r.svc.Sessions.Snapshot(signedIn) {
		if s.Role != "" && slices.Contains(r.cfg.AdminRoles, s.Role) {
			out[s.User] = true
		}
	}
	return out
}

// notify emails u when email is configured and an address is known: the
// one the app reported, one the user proved for codes, or one made from the
// template. It never blocks.
func (r *Realm) notify(u storage.User, m mail.Message) bool {
	if r.cfg.Mailer == nil {
		return false
	}
	known := u.Email
	if known == "" {
		known = u.EmailOTP // an address the user proved for sign-in codes
	}
	addr, ok := mail.Address(known, r.cfg.EmailTemplate, u.ID)
	if !ok {
		r.log.Info("no email address for notice", zap.String("user", u.ID), zap.String("subject", m.Subject))
		return false
	}
	m.To = addr
	return r.cfg.Mailer.Queue(m)
}

// decision logs a security decision with the actor's address.
func (r *Realm) decision(a Actor, msg string, fields ...zap.Field) {
	if c := r.log.Check(zapcore.InfoLevel, msg); c != nil {
		c.Write(append(fields, zap.String("remote_ip", a.Address))...)
	}
}

func (r *Realm) record(a Actor, typ, subject string, detail map[string]string) {
	r.svc.Audit.Record(a.event(typ, subject, detail))
}
