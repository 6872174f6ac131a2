// Package storage defines the gateway's persistent state (users, sessions and
// small settings) as a transactional, record-based Store, and the audit log
// as an AuditStore of its own. It holds the engine-neutral contract only:
// package storage/bolt implements it on an embedded bbolt file, and package
// storage/storetest is the conformance suite every implementation must pass.
//
// The interface is shaped so that a networked SQL store can implement it
// later without changes to the core: records are plain structs, every access
// happens inside a transaction, and nothing exposes the underlying engine.
// Sharing one store between several gateway instances needs more than that;
// Store's documentation lists what.
// Encryption is the caller's job: fields documented as sealed arrive already
// encrypted (see package seal) and are stored as opaque bytes.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	// ErrNotFound is returned (possibly wrapped) when a user, session or
	// setting does not exist.
	ErrNotFound = errors.New("storage: not found")

	// ErrLocked is returned (wrapped) when the database is held by another
	// process, such as a second Caddy started on the same data directory.
	ErrLocked = errors.New("storage: database is locked by another process")

	// ErrDamaged is returned (wrapped) when the database file is not a
	// database of this program, or is damaged: at open, and for a
	// transaction that ran into a damaged page while running.
	ErrDamaged = errors.New("storage: database file damaged")

	// ErrBadCursor is returned (wrapped) by AuditTx.ScanAudit for a cursor
	// it did not issue. Cursors come from clients (an admin page's "older" link),
	// so a caller can map this to a 400 rather than a server error.
	ErrBadCursor = errors.New("storage: malformed audit cursor")
)

// User is one user's second-factor state. The ID is the app's user name or
// ID as learned at sign-in.
type User struct {
	ID             string     `json:"id"`
	TOTPSecret     []byte     `json:"totp_secret,omitempty"`      // sealed; empty = no authenticator
	TOTPConfirmed  bool       `json:"totp_confirmed,omitempty"`   // false while enrolment awaits its confirmation code
	TOTPLastStep   int64      `json:"totp_last_step,omitempty"`   // last accepted TOTP time step (replay protection)
	NextTOTPSecret []byte     `json:"next_totp_secret,omitempty"` // sealed; a replacement authenticator awaiting its first code
	RecoveryHashes [][]byte   `json:"recovery_hashes,omitempty"`  // keyed hashes of unused recovery codes
	PendingCodes   []byte     `json:"pending_codes,omitempty"`    // sealed plaintext codes shown until the user acknowledges them
	EnrolledAt     time.Time  `json:"enrolled_at,omitzero"`
	LastSignInAt   time.Time  `json:"last_sign_in_at,omitzero"`
	CreatedAt      time.Time  `json:"created_at,omitzero"`
	UpdatedAt      time.Time  `json:"updated_at,omitzero"`
	Email          string     `json:"email,omitempty"`
	FailedCodes    int        `json:"failed_codes,omitempty"`    // wrong authenticator codes in a row
	FactorLockedAt time.Time  `json:"factor_locked_at,omitzero"` // when FailedCodes reached the cap: the authenticator is refused until unlocked
	EmailOTP       string     `json:"email_otp,omitempty"`       // confirmed address that receives sign-in codes; empty: none
	PhoneOTP       string     `json:"phone_otp,omitempty"`       // confirmed mobile number (E.164) that receives sign-in codes
	Primary        string     `json:"primary,omitempty"`         // the method the challenge asks for first; empty: the first held
	Codes          []SentCode `json:"sent_codes,omitempty"`      // emailed or texted codes waiting to be entered
	Devices        []Device   `json:"devices,omitempty"`         // browsers remembered after a passed challenge
	NewIPOnly      bool       `json:"new_ip_only,omitempty"`     // the user asked for the second factor only from new addresses
	KnownIPs       []KnownIP  `json:"known_ips,omitempty"`       // addresses a challenge was passed from
	Browsers       []Browser  `json:"browsers,omitempty"`        // browsers the user signed in from, for new-login alerts
	// EnrolProof is the sign-in session that proved the user's email
	// address before a first factor it must confirm, and until when.
	EnrolProof      string    `json:"enrol_proof,omitempty"`
	EnrolProofUntil time.Time `json:"enrol_proof_until,omitzero"`
}

// Browser is a browser a user signed in from, recognised by a cookie whose
// keyed hash is kept.
type Browser struct {
	Hash     []byte    `json:"hash"`
	LastUsed time.Time `json:"last_used"`
}

// KnownIP is an address the user passed a challenge from.
type KnownIP struct {
	Address  string    `json:"address"`
	Scope    string    `json:"scope"`
	LastUsed time.Time `json:"last_used"`
}

// Device is a browser remembered after a passed challenge: signing in
// there again skips the second factor until Expires.
type Device struct {
	ID       string    `json:"id"`   // a public handle, for "Forget"
	Hash     []byte    `json:"hash"` // keyed hash of the browser's token, never the token
	Scope    string    `json:"scope"`
	Agent    string    `json:"agent,omitempty"`
	Address  string    `json:"address,omitempty"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

// SentCode is a one-time code sent by email or text message, waiting to be
// entered: at sign-in, or to prove a new destination.
type SentCode struct {
	Purpose string    `json:"purpose"` // "sign-in" or "enrol"
	Method  string    `json:"method"`  // "email" or "sms"
	Dest    string    `json:"dest"`    // where it went
	Hash    []byte    `json:"hash"`    // keyed hash of the code, never the code
	SentAt  time.Time `json:"sent_at"`
	Expires time.Time `json:"expires"`
	Tries   int       `json:"tries,omitempty"` // wrong entries so far
}

// Binding is an app session cookie bound to a gateway session, so that the
// app's cookie is only forwarded alongside the gateway session it was issued
// with.
type Binding struct {
	Name string `json:"name"`
	Hash []byte `json:"hash"` // SHA-256 of the cookie value
}

// Session is a gateway session.
type Session struct {
	ID          string    `json:"id"` // the caller passes a hash of the session id (never the raw id)
	User        string    `json:"user,omitempty"`
	State       uint8     `json:"state"` // owned by the core (anonymous/pending/active); opaque here
	AAL         uint8     `json:"aal"`
	MustEnrol   bool      `json:"must_enrol,omitempty"`
	Scope       string    `json:"scope,omitempty"` // the policy population the session belongs to
	Role        string    `json:"role,omitempty"`  // the role the app reported at sign-in (admin checks)
	Bindings    []Binding `json:"bindings,omitempty"`
	Version     uint64    `json:"version,omitempty"`      // counts changes under this ID: the higher is the newer
	HeldCookies []byte    `json:"held_cookies,omitempty"` // sealed Set-Cookie lines held until the challenge is passed
	Next        string    `json:"next,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	AuthAt      time.Time `json:"auth_at,omitzero"`
	LastSeen    time.Time `json:"last_seen"`
	ExpiresAt   time.Time `json:"expires_at"` // absolute end; the store may delete sessions past it (Sweep)
	RemoteAddr  string    `json:"remote_addr,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
}

// Store is the gateway's persistent state. Implementations must be safe for
// concurrent use.
//
// # Transactions
//
// All access goes through transactions so that read-modify-write sequences
// (consuming a recovery code, advancing TOTPLastStep) cannot race:
//
//   - View is read-only and sees commits whole or not at all.
//   - Update is serialisable: fn behaves as if no other transaction ran
//     between its first read and its commit, so a read-modify-write never
//     loses a concurrent change. A store with optimistic concurrency meets
//     this by rolling back on a serialisation conflict and running fn
//     again, so fn may run more than once. (bbolt runs it once; callers
//     must not count on that.)
//   - Batch is Update for many small writes: the store may coalesce several
//     callers' fn into one transaction and, when one of them fails, roll
//     back and run the others again (bbolt does). fn may run more than once.
//   - An error from fn rolls back every write fn made (audit appends too,
//     where the Tx is also an AuditTx) and is returned to that caller so
//     that errors.Is finds it.
//
// Because fn may run more than once, or run and be rolled back, it must be
// idempotent and have no effect outside the transaction: no emails, no
// audit events recorded other than through the transaction, no changes to
// in-memory state (caches, counters, session tables). Compute everything
// from what fn reads, on every run; let fn only set variables that the
// caller reads after the call succeeds, and act on them then.
//
// A transaction must stay short: never hold one across network calls or
// user-visible waits, and never start one inside another.
//
// # Single-instance assumptions
//
// Today one process owns the store (bbolt's file lock enforces it), and the
// gateway relies on that in the places below. A store shared by several
// gateway instances must come with what each item says instead; package
// storetest checks only the transaction contract above. For the live
// sessions, their activity and the policy, package mfa (Options.Shared)
// follows a shared store's ChangeFeed (feed.go), or re-reads every session
// and policy each second from a store without one.
//
//   - Live sessions: the in-memory session table (package session) is the
//     authority. The per-request check never reads the store; the table is
//     loaded once at start, and revocation (sign-out, admin revoke or reset,
//     grace-period logout) removes the session from this instance's table
//     and deletes its record. Another instance would go on accepting a
//     session revoked elsewhere and would not know one created elsewhere.
//     Needed: a store lookup on a table miss, and revocation that reaches
//     every instance within a bound (a change feed, or re-checking the
//     record every few seconds), or sticky routing.
//   - Session activity and expiry: last-seen times are kept in memory and
//     flushed in batches every few seconds but never read back; idle expiry
//     is decided from this instance's view, and the sweep deletes the
//     records of the sessions it expired without re-reading them.
//     Anonymous (pre-sign-in) sessions exist only in memory. Needed: idle
//     decisions from the latest last-seen of all instances, a sweep that
//     re-checks a record in the transaction that deletes it, and sticky
//     routing or shared storage for anonymous sessions.
//   - Wrong-code attempt counters (lockouts) are per process: n instances
//     allow n times max_attempts, and a restart forgets them. Needed:
//     shared counters with an atomic increment and a window expiry.
//   - Policy: each instance caches a scope's policy and re-reads it in the
//     background once it is older than policy_cache (5 minutes by default),
//     so other instances see a change within policy_cache. Changing it is a
//     read-modify-write in one Update, judged on what the Update reads.
//   - Widget identity: health counters are kept in memory and flushed with
//     a Batch that adds them to the stored counts, which is safe to share.
//     The identity state (mode, secrets) is written whole from the
//     instance's in-memory copy, not re-read in the transaction, so of two
//     instances changing it at once the last write wins; others pick it up
//     on their next refresh (every 5s). Needed: a compare-and-set of that
//     setting, or the change made on what the Update reads.
//   - TOTP replay and recovery codes: the last accepted TOTP step is checked
//     and advanced, and a recovery code spent, in the same Update that
//     stores the session it creates. Only a serialisable Update (or row
//     locks on the user) stops two instances accepting one code.
//   - Audit: each instance queues events in memory and writes them every
//     second; records with the same time keep their append order. Needed:
//     cursors that order records from all instances the same way (ties
//     broken by a stable key), and pruning that may run on every instance
//     at once (it is idempotent).
//   - Background work (activity flush, sweeps, grace-period logouts and
//     their emails, audit pruning, identity flush) runs in every process
//     over its own view; each must be safe to run on several at once, as
//     above.
type Store interface {
	// View runs fn in a read-only transaction. Writes inside fn fail.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a serialisable read-write transaction, all or
	// nothing: if fn returns an error, nothing it wrote is kept and that
	// error is returned. fn may run more than once (see Transactions).
	Update(ctx context.Context, fn func(Tx) error) error

	// Batch is Update for many small concurrent writes (such as flushing
	// last-seen times): the store may combine several callers' fn into one
	// transaction and re-run them when another caller's fn fails, so fn may
	// run more than once and must be idempotent. An error from fn is
	// returned to its own caller only; the others can still commit.
	Batch(ctx context.Context, fn func(Tx) error) error

	// Audit returns the store's audit log. It may live in the same
	// database or elsewhere (see AuditStore); it is usable until Close.
	Audit() AuditStore

	// Close releases the store, its audit log included. Transactions must
	// not be running.
	Close() error
}

// Backuper is a Store that can copy itself while in use. It is optional: a
// store without it (or one whose Backup returns an error wrapping
// errors.ErrUnsupported) is backed up by its own tools instead.
type Backuper interface {
	// Backup writes a consistent snapshot of the whole store to w, as of
	// one moment, without stopping writers, and returns the bytes written.
	// The snapshot is in the store's own format: for bbolt, a database
	// file that Open accepts as is.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// BackupSizer may be implemented by the writer given to Backup: a store that
// knows the snapshot's length calls SetBackupSize once, before writing, so
// that an HTTP answer can carry a Content-Length.
type BackupSizer interface {
	SetBackupSize(n int64)
}

// Tx is one transaction. Returned records are copies the caller owns, and
// records passed in are copied, so mutating either side later has no effect.
// A Tx is valid only until its fn returns and must not be shared between
// goroutines.
type Tx interface {
	User(id string) (User, error) // ErrNotFound
	PutUser(u User) error         // insert or replace by u.ID
	DeleteUser(id string) error   // nil if absent
	// ForEachUser calls fn for every user, in no particular order, stopping
	// at and returning the first error from fn. fn may write to the store
	// within an Update transaction.
	ForEachUser(fn func(User) error) error

	Session(id string) (Session, error) // ErrNotFound
	PutSession(s Session) error         // insert or replace by s.ID
	DeleteSession(id string) error      // nil if absent
	// ForEachSession is ForEachUser for sessions.
	ForEachSession(fn func(Session) error) error

	Setting(key string) ([]byte, error) // ErrNotFound
	PutSetting(key string, value []byte) error
}

// SettingLister may be implemented by a Tx: it lists every setting, in no
// particular order, stopping at and returning the first error from fn. The
// gateway itself only reads settings by key; copying a whole store (Copy)
// needs the list. fn must not write within the listing.
type SettingLister interface {
	ForEachSetting(fn func(key string, value []byte) error) error
}

// SweepSessions deletes sessions whose ExpiresAt is before now (including
// sessions with no ExpiresAt, which are invalid) and returns how many.
// It is written against Store alone, so every implementation gets it; the
// check and the delete share one Update, so it is safe to run on several
// instances at once.
func SweepSessions(ctx context.Context, s Store, now time.Time) (int, error) {
	var n int
	err := s.Update(ctx, func(tx Tx) error {
		n = 0 // in case the store retries fn
		return tx.ForEachSession(func(sess Session) error {
			if !sess.ExpiresAt.Before(now) {
				return nil
			}
			if err := tx.DeleteSession(sess.ID); err != nil {
				return err
			}
			n++
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("storage: sweep sessions: %w", err)
	}
	return n, nil
}
