package audit

import (
	"time"
)

// Event is one security event.
//
// An event must never hold a secret: no TOTP secret or code, recovery code,
// password, cookie, session ID, token or key, not even hashed or truncated.
// The log cannot tell a secret from any other string, so this is the
// caller's duty: pass user IDs, addresses and short machine-readable reasons
// (e.g. Detail{"reason": "bad_code"}, {"scope": "agents", "from": "off",
// "to": "on"}), never the input that was checked. The audit log is exported
// to files and spreadsheets that outlive every other copy of the state.
type Event struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"` // one of the Type… constants
	// Actor is who acted: the user ID of the person (an admin acting on
	// someone else is still just their user ID), "system" for timers (grace
	// logouts, expiry) or "cli" for the command line.
	Actor     string            `json:"actor,omitempty"`
	Subject   string            `json:"subject,omitempty"` // the user ID the event concerns
	Remote    string            `json:"remote_addr,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	Cursor    string            `json:"-"` // set by Query: where this event sits, for paging
}

// Actors that are not users.
const (
	ActorSystem = "system" // timers: grace-period logouts, session expiry, pruning
	ActorCLI    = "cli"    // the `caddy mfa` command line
)

// Event types.
const (
	TypeEnrolStarted            = "enrol_started"
	Type2FAEnabled              = "2fa_enabled"
	TypeCodesAcknowledged       = "codes_acknowledged"
	TypeChallengePassed         = "challenge_passed"
	TypeChallengeFailed         = "challenge_failed"
	TypeRecoveryUsed            = "recovery_used"
	TypeRecoveryFailed          = "recovery_failed"
	TypeCodesRegenerated        = "codes_regenerated"
	Type2FADisabled             = "2fa_disabled"
	TypeLockout                 = "lockout"
	TypeFactorLocked            = "factor_locked"
	TypeFactorUnlocked          = "factor_unlocked"
	TypeSignIn                  = "sign_in"
	TypeSignInRefused           = "sign_in_refused"
	TypeBindingMismatch         = "binding_mismatch"
	TypeSignOut                 = "sign_out"
	TypePolicyChanged           = "policy_changed"
	TypeTimeoutChanged          = "timeout_changed"
	TypeAdminReset              = "admin_reset"
	TypeSessionRevoked          = "session_revoked"
	TypeForcedLogout            = "forced_logout"
	TypeSessionExpired          = "session_expired"
	TypeEnforcementNoticeSent   = "enforcement_notice_sent"
	TypeIdentitySecretGenerated = "identity_secret_generated"
	TypeIdentityModeChanged     = "identity_mode_changed"
	TypeBackup                  = "db_backup"
	TypeAuthenticatorChanged    = "authenticator_changed"
	TypeSignInAbandoned         = "sign_in_abandoned"
	TypeCodeSent                = "code_sent"
	TypeMethodAdded             = "method_added"
	TypeMethodRemoved           = "method_removed"
	TypePrimaryChanged          = "primary_changed"
	TypeDeviceRemembered        = "device_remembered"
	TypeDeviceForgotten         = "device_forgotten"
	TypeNewIPOnlyChanged        = "new_ip_only_changed"
	TypeAddressForgotten        = "address_forgotten"
	TypeNewLoginAlert           = "new_login_alert"
	TypeDoctorRun               = "doctor_run" // an admin checked the configuration against the app with a test account
)

// Types lists every event type, in the order above, for the admin page's
// filter. The slice is the caller's.
func Types() []string {
	return []string{
		TypeEnrolStarted, Type2FAEnabled, TypeCodesAcknowledged,
		TypeChallengePassed, TypeChallengeFailed, TypeRecoveryUsed, TypeRecoveryFailed,
		TypeCodesRegenerated, Type2FADisabled, TypeLockout, TypeFactorLocked, TypeFactorUnlocked,
		TypeSignIn, TypeSignInRefused, TypeBindingMismatch, TypeSignOut,
		TypePolicyChanged, TypeTimeoutChanged, TypeAdminReset,
		TypeSessionRevoked, TypeForcedLogout, TypeSessionExpired,
		TypeEnforcementNoticeSent, TypeIdentitySecretGenerated, TypeIdentityModeChanged,
		TypeBackup, TypeAuthenticatorChanged, TypeSignInAbandoned,
		TypeCodeSent, TypeMethodAdded, TypeMethodRemoved, TypePrimaryChanged,
		TypeDeviceRemembered, TypeDeviceForgotten, TypeNewIPOnlyChanged, TypeAddressForgotten, TypeNewLoginAlert,
		TypeDoctorRun,
	}
}

// Field limits applied by Record, so that a hostile user agent or a runaway
// caller cannot bloat the log (every event is kept for the retention period
// and shown on the admin page).
const (
	maxField       = 256 // Actor, Subject, Remote, UserAgent, detail values
	maxType        = 64
	maxDetailKey   = 64
	maxDetailCount = 16
)
