package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// CopyReport is what Copy found in the source and did to the destination.
type CopyReport struct {
	Users       int `json:"users"`        // in the source, now equal in the destination
	Sessions    int `json:"sessions"`     // likewise
	Settings    int `json:"settings"`     // likewise
	AuditEvents int `json:"audit_events"` // in the source, now present in the destination
	AuditAdded  int `json:"audit_added"`  // of those, appended by this run (the rest were there)
}

// copyChunk is how many records one destination transaction writes: big
// enough to be quick, small enough to keep each transaction short.
const copyChunk = 500

// Copy copies every user, session, setting and audit event of from into to,
// for moving a gateway from one store to another while no gateway runs on
// either. It is written against the Store contract alone, so it works
// between any two implementations; the source's Tx must implement
// SettingLister.
//
// Copy is idempotent: records are put by ID (replacing the destination's
// record of that ID), and an audit event is appended only if the
// destination does not already hold one with the same time and data (as
// many times as the source holds it), so a second run adds nothing. The
// destination's other records are left alone. Sealed fields are copied as
// they are: the destination must be used with the same master key.
//
// After copying, Copy reads both stores again and fails unless every source
// record is in the destination, equal.
func Copy(ctx context.Context, from, to Store) (CopyReport, error) {
	var rep CopyReport
	src, err := readAll(ctx, from)
	if err != nil {
		return rep, fmt.Errorf("storage: copy: read the source: %w", err)
	}
	if err := putAll(ctx, to, src); err != nil {
		return rep, fmt.Errorf("storage: copy: write the destination: %w", err)
	}
	added, err := copyAudit(ctx, to, src.audit)
	if err != nil {
		return rep, fmt.Errorf("storage: copy: audit log: %w", err)
	}
	rep = CopyReport{Users: len(src.users), Sessions: len(src.sessions), Settings: len(src.settings), AuditEvents: len(src.audit), AuditAdded: added}
	if err := verifyCopy(ctx, from, to); err != nil {
		return rep, fmt.Errorf("storage: copy: verify: %w", err)
	}
	return rep, nil
}

// snapshot is a whole store read in one View (records) and one audit View.
type snapshot struct {
	users    []User
	sessions []Session
	settings []setting
	audit    []auditEvent // oldest first
}

type setting struct {
	key   string
	value []byte
}

type auditEvent struct {
	at   time.Time
	data []byte
}

// key identifies an event by content, for matching across stores (cursors
// are each store's own).
func (e auditEvent) key() string { return fmt.Sprintf("%d\x00%s", e.at.UnixNano(), e.data) }

func readAll(ctx context.Context, s Store) (snapshot, error) {
	var snap snapshot
	err := s.View(ctx, func(tx Tx) error {
		snap = snapshot{}
		lister, ok := tx.(SettingLister)
		if !ok {
			return errors.New("the store cannot list its settings")
		}
		if err := tx.ForEachUser(func(u User) error { snap.users = append(snap.users, u); return nil }); err != nil {
			return err
		}
		if err := tx.ForEachSession(func(se Session) error { snap.sessions = append(snap.sessions, se); return nil }); err != nil {
			return err
		}
		return lister.ForEachSetting(func(k string, v []byte) error {
			snap.settings = append(snap.settings, setting{k, v})
			return nil
		})
	})
	if err != nil {
		return snap, err
	}
	if snap.audit, err = readAudit(ctx, s.Audit()); err != nil {
		return snap, fmt.Errorf("audit log: %w", err)
	}
	return snap, nil
}

// readAudit is the whole log, oldest first: appended in that order, events
// of the same time keep their order in the destination.
func readAudit(ctx context.Context, a AuditStore) ([]auditEvent, error) {
	var out []auditEvent
	err := a.View(ctx, func(tx AuditTx) error {
		out = out[:0]
		return tx.ScanAudit("", func(_ string, at time.Time, data []byte) (bool, error) {
			out = append(out, auditEvent{at, data})
			return true, nil
		})
	})
	slices.Reverse(out)
	return out, err
}

func putAll(ctx context.Context, to Store, src snapshot) error {
	var puts []func(Tx) error
	for _, u := range src.users {
		puts = append(puts, func(tx Tx) error { return tx.PutUser(u) })
	}
	for _, se := range src.sessions {
		puts = append(puts, func(tx Tx) error { return tx.PutSession(se) })
	}
	for _, st := range src.settings {
		puts = append(puts, func(tx Tx) error { return tx.PutSetting(st.key, st.value) })
	}
	for chunk := range slices.Chunk(puts, copyChunk) {
		if err := to.Update(ctx, func(tx Tx) error {
			for _, put := range chunk {
				if err := put(tx); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// copyAudit appends the events the destination lacks and returns how many.
func copyAudit(ctx context.Context, to Store, events []auditEvent) (int, error) {
	have, err := readAudit(ctx, to.Audit())
	if err != nil {
		return 0, err
	}
	count := map[string]int{}
	for _, e := range have {
		count[e.key()]++
	}
	var missing []auditEvent
	for _, e := range events {
		if count[e.key()] > 0 {
			count[e.key()]--
			continue
		}
		missing = append(missing, e)
	}
	for chunk := range slices.Chunk(missing, copyChunk) {
		if err := to.Audit().Update(ctx, func(tx AuditTx) error {
			for _, e := range chunk {
				if err := tx.AppendAudit(e.at, e.data); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return 0, err
		}
	}
	return len(missing), nil
}

// verifyCopy reads both stores afresh and fails unless every record of from
// is in to, equal (compared in their JSON form, so that equal times in
// different locations compare equal), and every audit event of from is in
// to as often.
func verifyCopy(ctx context.Context, from, to Store) error {
	src, err := readAll(ctx, from)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	dst, err := readAll(ctx, to)
	if err != nil {
		return fmt.Errorf("read the destination: %w", err)
	}
	if err := sameRecords("user", src.users, dst.users, func(u User) string { return u.ID }); err != nil {
		return err
	}
	if err := sameRecords("session", src.sessions, dst.sessions, func(s Session) string { return s.ID }); err != nil {
		return err
	}
	settings := map[string][]byte{}
	for _, s := range dst.settings {
		settings[s.key] = s.value
	}
	for _, s := range src.settings {
		if v, ok := settings[s.key]; !ok || !bytes.Equal(v, s.value) {
			return fmt.Errorf("setting %q missing or different in the destination", s.key)
		}
	}
	count := map[string]int{}
	for _, e := range dst.audit {
		count[e.key()]++
	}
	for _, e := range src.audit {
		if count[e.key()] == 0 {
			return fmt.Errorf("audit event of %v missing in the destination", e.at)
		}
		count[e.key()]--
	}
	return nil
}

func sameRecords[R User | Session](what string, src, dst []R, id func(R) string) error {
	byID := map[string][]byte{}
	for _, r := range dst {
		b, err := canonical(r)
		if err != nil {
			return err
		}
		byID[id(r)] = b
	}
	for _, r := range src {
		want, err := canonical(r)
		if err != nil {
			return err
		}
		got, ok := byID[id(r)]
		if !ok {
			return fmt.Errorf("%s %q missing in the destination", what, id(r))
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s %q differs in the destination", what, id(r))
		}
	}
	return nil
}

// canonical is r's JSON with every time in UTC.
func canonical[R User | Session](r R) ([]byte, error) {
	switch v := any(r).(type) {
	case User:
		v.EnrolledAt, v.LastSignInAt, v.CreatedAt, v.UpdatedAt = v.EnrolledAt.UTC(), v.LastSignInAt.UTC(), v.CreatedAt.UTC(), v.UpdatedAt.UTC()
		v.FactorLockedAt = v.FactorLockedAt.UTC()
		return json.Marshal(v)
	case Session:
		v.CreatedAt, v.AuthAt, v.LastSeen, v.ExpiresAt = v.CreatedAt.UTC(), v.AuthAt.UTC(), v.LastSeen.UTC(), v.ExpiresAt.UTC()
		return json.Marshal(v)
	}
	return nil, errors.New("unreachable")
}
