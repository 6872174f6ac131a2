package storage

import (
	"context"
	"errors"
)

// ErrFeedBehind is returned (wrapped) by ChangeFeed.Changes when the
// position given is older than the oldest change the feed still keeps: some
// changes since it were pruned, so the reader must read the whole state
// again (from a new Head) rather than the changes.
var ErrFeedBehind = errors.New("storage: change feed position is behind the pruned changes")

// ChangeKind says what a Change changed.
type ChangeKind uint8

const (
	// SessionChanged: the session ID was created, changed or deleted.
	SessionChanged ChangeKind = iota + 1
	// SessionSeen: only the session's LastSeen changed (an activity flush).
	// A feed logs it but need not wake its listeners for it.
	SessionSeen
	// SettingChanged: the setting ID was written or deleted.
	SettingChanged
	// Reset: sessions or settings were changed wholesale (a table emptied
	// by hand): the reader must read the whole state again.
	Reset
)

func (k ChangeKind) String() string {
	switch k {
	case SessionChanged:
		return "session"
	case SessionSeen:
		return "seen"
	case SettingChanged:
		return "setting"
	case Reset:
		return "reset"
	}
	return "unknown"
}

// Change is one write to the sessions or settings, as a change feed reports
// it: what was written, not its value (read the record for that).
type Change struct {
	Version int64 // the feed's sequence number: unique, but commits may land out of its order
	Kind    ChangeKind
	ID      string // the session ID or setting key; empty for Reset
}

// FeedPosition is where a reader of a ChangeFeed stands. Pass back the one
// the feed returned, unchanged.
type FeedPosition struct {
	// Version is the highest version read.
	Version int64
	// Open is the feed's own record of writers still running at the read,
	// whose changes may yet commit with versions at or below Version (a
	// sequence number is drawn at the write, and commits land in any order).
	Open []int64
}

// ChangeFeed may be implemented by a Store that several gateway instances
// share: it reports, in the store's transactions, which sessions and
// settings were written, so that an instance keeps its in-memory state in
// step by reading what changed rather than everything.
//
// Every committed write to a session or a setting appears exactly once in
// the changes after any position returned before the write committed, until
// it is pruned (a feed keeps changes for a while, minutes, and then answers
// ErrFeedBehind). Changes of one transaction appear together.
type ChangeFeed interface {
	// Head is the current position: Changes(Head()) returns what commits
	// after the call. Take it before reading the whole state, so that no
	// change is lost between the two (changes may then be seen twice;
	// applying one is reading the record again, which is harmless).
	Head(ctx context.Context) (FeedPosition, error)

	// Changes returns up to limit changes committed since pos, in no
	// guaranteed order, and the position to pass next time. Fewer than
	// limit means the reader is up to date as of the call. An error
	// wrapping ErrFeedBehind means changes since pos were pruned.
	Changes(ctx context.Context, pos FeedPosition, limit int) ([]Change, FeedPosition, error)

	// Listen starts waiting for the store's announcements of new changes
	// (activity-only changes may go unannounced) and returns a channel that
	// receives, coalesced, when changes may be waiting: after an
	// announcement, and after the wait was (re)established, since
	// announcements made while it was down are lost. The caller still
	// reads Changes now and then: the channel only makes it sooner.
	//
	// report, if not nil, is told of each failure of the wait (before it
	// is tried again, with back-off) and, with nil, of each time it is
	// established. Listening stops when ctx ends or the store closes. A
	// store listens for one caller: call Listen once.
	Listen(ctx context.Context, report func(error)) <-chan struct{}

	// Prune deletes the changes older than the feed keeps them and returns
	// how many. Readers call it now and then (every instance may: it is
	// idempotent); it keeps the log's size bounded.
	Prune(ctx context.Context) (int64, error)
}

// SessionReader may be implemented by a Tx: it reads many sessions at once
// (one query rather than one per ID), for a reader of a change feed that
// reads every changed session again. fn is called for each ID present, in
// no particular order; absent IDs are skipped. fn must not write within
// the read.
type SessionReader interface {
	SessionsByID(ids []string, fn func(Session) error) error
}

// Unwrapper is a Store that wraps another (for instance to time it), so that
// optional interfaces of the inner store can still be found.
type Unwrapper interface {
	Unwrap() Store
}

// FeedOf returns s's change feed, looking through wrappers, or nil when the
// store has none.
func FeedOf(s Store) ChangeFeed {
	for s != nil {
		if f, ok := s.(ChangeFeed); ok {
			return f
		}
		u, ok := s.(Unwrapper)
		if !ok {
			return nil
		}
		s = u.Unwrap()
	}
	return nil
}
