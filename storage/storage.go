// Package storage defines the gateway's persistent state (users, sessions and
// small settings) as a transactional, record-based Store, and the audit log
// as an AuditStore of its own. It holds the engine-neutral contract only:
// package storage/bolt implements it on an embedded bbolt file, and package
// storage/storetest is the conformance suite every implementation must pass.
//
// The interface is shaped so that a networked SQL store can implement it
// later without changes to the core: records are plain structs, every access
// happens inside a transaction, and nothing exposes the underlying engine.
// Encryption is the caller's job: fields documented as sealed arrive already
// encrypted (see package seal) and are stored as opaque bytes.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned (possibly wrapped) when a user, session or
	// setting does not exist.
	ErrNotFound = errors.New("storage: not found")

	// ErrLocked is returned (wrapped) when the database is held by another
	// process, such as a second Caddy started on the same data directory.
	ErrLocked = errors.New("storage: database is locked by another process")

	// ErrBadCursor is returned (wrapped) by AuditTx.ScanAudit for a cursor
	// it did not issue. Cursors come from clients (an admin page's "older" link),
	// so a caller can map this to a 400 rather than a server error.
	ErrBadCursor = errors.New("storage: malformed audit cursor")
)

// User is one user's second-factor state. The ID is the app's user name or
// ID as learned at sign-in.
type User struct {
	ID             string    `json:"id"`
	TOTPSecret     []byte    `json:"totp_secret,omitempty"`     // sealed; empty = no authenticator
	TOTPConfirmed  bool      `json:"totp_confirmed,omitempty"`  // false while enrolment awaits its confirmation code
	TOTPLastStep   int64     `json:"totp_last_step,omitempty"`  // last accepted TOTP time step (replay protection)
	RecoveryHashes [][]byte  `json:"recovery_hashes,omitempty"` // keyed hashes of unused recovery codes
	PendingCodes   []byte    `json:"pending_codes,omitempty"`   // sealed plaintext codes shown until the user acknowledges them
	EnrolledAt     time.Time `json:"enrolled_at,omitzero"`
	LastSignInAt   time.Time `json:"last_sign_in_at,omitzero"`
	CreatedAt      time.Time `json:"created_at,omitzero"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
	Email          string    `json:"email,omitempty"`
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
// All access goes through transactions so that read-modify-write sequences
// (consuming a recovery code, advancing TOTPLastStep) cannot race. A
// transaction must stay short: never hold one across network calls or
// user-visible waits, and never start one inside another.
type Store interface {
	// View runs fn in a read-only transaction. Writes inside fn fail.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a read-write transaction, all or nothing: if fn
	// returns an error, nothing it wrote is kept and that error is returned.
	Update(ctx context.Context, fn func(Tx) error) error

	// Batch is Update for many small concurrent writes (such as flushing
	// last-seen times): the store may combine several callers' fn into one
	// transaction. fn may run more than once, so it must be idempotent.
	Batch(ctx context.Context, fn func(Tx) error) error

	// Audit returns the store's audit log. It may live in the same
	// database or elsewhere (see AuditStore); it is usable until Close.
	Audit() AuditStore

	// Close releases the store, its audit log included. Transactions must
	// not be running.
	Close() error
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

// SweepSessions deletes sessions whose ExpiresAt is before now (including
// sessions with no ExpiresAt, which are invalid) and returns how many.
// It is written against Store alone, so every implementation gets it.
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
