package mfa

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/identity"
)

// Widget identity verification as admins change it: the mode with its
// enforce gate, and the identity secret.

// SetIdentityMode switches the mode; Enforce passes the gate or is refused
// with an *identity.GateError saying why.
func (svc *Service) SetIdentityMode(ctx context.Context, a Actor, raw string) error {
	m, err := identity.ParseMode(strings.TrimSpace(raw))
	if err != nil {
		return ErrBadMode
	}
	before := svc.Identity.Mode()
	if err := svc.Identity.SetMode(ctx, m); err != nil {
		svc.logger.Info("identity mode refused", zap.String("to", string(m)), zap.Error(err))
		return err
	}
	if before != m {
		svc.logger.Info("identity mode changed", zap.String("from", string(before)), zap.String("to", string(m)), zap.String("by", a.User))
		svc.Audit.Record(a.event(audit.TypeIdentityModeChanged, "", map[string]string{"from": string(before), "to": string(m)}))
	}
	return nil
}

// GenerateIdentitySecret makes a new secret (the old one keeps working for
// the overlap window) and returns it: the only time it is ever shown.
func (svc *Service) GenerateIdentitySecret(ctx context.Context, a Actor) (string, error) {
	secret, err := svc.Identity.GenerateSecret(ctx)
	if err != nil {
		return "", fmt.Errorf("mfa: identity secret: %w", err)
	}
	svc.logger.Info("identity secret generated", zap.String("by", a.User))
	svc.Audit.Record(a.event(audit.TypeIdentitySecretGenerated, "", map[string]string{"mode": string(svc.Identity.Mode())}))
	return secret, nil
}

// IdentityOverlap is how long a rotated identity secret keeps working.
func (svc *Service) IdentityOverlap() time.Duration { return svc.identityOverlap }
