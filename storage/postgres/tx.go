package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfagate/mfagate/storage"
)

// txn implements storage.Tx and storage.AuditTx on one PostgreSQL
// transaction.
type txn struct {
	ctx      context.Context
	tx       pgx.Tx // nil once the transaction's fn has returned
	q        *queries
	readOnly bool
}

var (
	errTxDone   = errors.New("transaction already finished")
	errReadOnly = errors.New("write in a read-only transaction")
	errEmptyKey = errors.New("empty key")
)

// check refuses a call on a finished transaction, and a write in a View
// before it reaches the server: a failed statement would abort the whole
// PostgreSQL transaction, not just the call.
func (t *txn) check(key string, write bool) error {
	switch {
	case t.tx == nil:
		return errTxDone
	case key == "":
		return errEmptyKey
	case write && t.readOnly:
		return errReadOnly
	}
	return nil
}

// User implements storage.Tx.
func (t *txn) User(id string) (storage.User, error) {
	u, err := get[storage.User](t, t.q.getUser, id)
	if err != nil {
		return storage.User{}, fmt.Errorf("postgres: get user %q: %w", id, err)
	}
	if u.ID != id {
		return storage.User{}, fmt.Errorf("postgres: get user %q: corrupt record: id is %q", id, u.ID)
	}
	return u, nil
}

// PutUser implements storage.Tx.
func (t *txn) PutUser(u storage.User) error {
	if err := put(t, t.q.putUser, u.ID, u); err != nil {
		return fmt.Errorf("postgres: put user %q: %w", u.ID, err)
	}
	return nil
}

// DeleteUser implements storage.Tx.
func (t *txn) DeleteUser(id string) error {
	if err := t.exec(id, t.q.delUser, []byte(id)); err != nil {
		return fmt.Errorf("postgres: delete user %q: %w", id, err)
	}
	return nil
}

// ForEachUser implements storage.Tx.
func (t *txn) ForEachUser(fn func(storage.User) error) error {
	return forEach(t, t.q.listUsers, func(u *storage.User) string { return u.ID }, fn)
}

// Session implements storage.Tx.
func (t *txn) Session(id string) (storage.Session, error) {
	s, err := get[storage.Session](t, t.q.getSession, id)
	if err != nil {
		return storage.Session{}, fmt.Errorf("postgres: get session %q: %w", id, err)
	}
	if s.ID != id {
		return storage.Session{}, fmt.Errorf("postgres: get session %q: corrupt record: id is %q", id, s.ID)
	}
	return s, nil
}

// PutSession implements storage.Tx.
func (t *txn) PutSession(s storage.Session) error {
	if err := put(t, t.q.putSession, s.ID, s); err != nil {
		return fmt.Errorf("postgres: put session %q: %w", s.ID, err)
	}
	return nil
}

// DeleteSession implements storage.Tx.
func (t *txn) DeleteSession(id string) error {
	if err := t.exec(id, t.q.delSession, []byte(id)); err != nil {
		return fmt.Errorf("postgres: delete session %q: %w", id, err)
	}
	return nil
}

// ForEachSession implements storage.Tx.
func (t *txn) ForEachSession(fn func(storage.Session) error) error {
	return forEach(t, t.q.listSessions, func(s *storage.Session) string { return s.ID }, fn)
}

// SessionsByID implements storage.SessionReader.
func (t *txn) SessionsByID(ids []string, fn func(storage.Session) error) error {
	if t.tx == nil {
		return errTxDone
	}
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = []byte(id)
	}
	type row struct{ id, data []byte }
	rows, _ := t.tx.Query(t.ctx, t.q.getSessions, keys)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.data)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("postgres: get sessions: %w", err)
	}
	for _, r := range got {
		var s storage.Session
		if err := json.Unmarshal(r.data, &s); err != nil {
			return fmt.Errorf("postgres: get sessions: corrupt record %q: %w", r.id, err)
		}
		if s.ID != string(r.id) {
			return fmt.Errorf("postgres: get sessions: corrupt record %q: id is %q", r.id, s.ID)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// Setting implements storage.Tx.
func (t *txn) Setting(key string) ([]byte, error) {
	v, err := t.setting(key)
	if err != nil {
		return nil, fmt.Errorf("postgres: get setting %q: %w", key, err)
	}
	return v, nil
}

func (t *txn) setting(key string) ([]byte, error) {
	if err := t.check(key, false); err != nil {
		return nil, err
	}
	var v []byte
	err := t.tx.QueryRow(t.ctx, t.q.getSetting, []byte(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{} // stored empty: present, unlike a missing key
	}
	return v, nil
}

// PutSetting implements storage.Tx.
func (t *txn) PutSetting(key string, value []byte) error {
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty read back alike
	}
	if err := t.exec(key, t.q.putSetting, []byte(key), value); err != nil {
		return fmt.Errorf("postgres: put setting %q: %w", key, err)
	}
	return nil
}

// ForEachSetting implements storage.SettingLister.
func (t *txn) ForEachSetting(fn func(key string, value []byte) error) error {
	if t.tx == nil {
		return errTxDone
	}
	after := []byte{}
	for {
		rows, _ := t.tx.Query(t.ctx, t.q.listSettings, after)
		type kv struct{ k, v []byte }
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv, error) {
			var p kv
			err := r.Scan(&p.k, &p.v)
			return p, err
		})
		if err != nil {
			return fmt.Errorf("postgres: list settings: %w", err)
		}
		for _, p := range got {
			if p.v == nil {
				p.v = []byte{}
			}
			if err := fn(string(p.k), p.v); err != nil {
				return err
			}
		}
		if len(got) < page {
			return nil
		}
		after = got[len(got)-1].k
	}
}

// exec runs a write keyed by key.
func (t *txn) exec(key, sql string, args ...any) error {
	if err := t.check(key, true); err != nil {
		return err
	}
	_, err := t.tx.Exec(t.ctx, sql, args...)
	return err
}

// get reads and decodes the record at id, or returns storage.ErrNotFound.
// Decoding makes a new record, so the caller owns every byte of it.
func get[R any](t *txn, sql, id string) (R, error) {
	var r R
	if err := t.check(id, false); err != nil {
		return r, err
	}
	var data []byte
	err := t.tx.QueryRow(t.ctx, sql, []byte(id)).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, storage.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("corrupt record: %w", err)
	}
	return r, nil
}

// put encodes r and inserts or replaces it at id. Encoding copies r, so the
// caller may change it afterwards.
func put(t *txn, sql, id string, r any) error {
	if err := t.check(id, true); err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(t.ctx, sql, []byte(id), data)
	return err
}

// forEach lists a table a page at a time in key order, each page read in
// full before fn sees its records: fn may read and write in the same
// transaction (which a connection cannot do mid-query), and deleting the
// record fn was given does not disturb the listing, which resumes after
// the last key seen.
//
// A record whose ID differs from its key is refused as corrupt, as in the
// bbolt store: trusting it would let one key answer for another ID.
func forEach[R any](t *txn, sql string, idOf func(*R) string, fn func(R) error) error {
	if t.tx == nil {
		return errTxDone
	}
	after := []byte{}
	for {
		type row struct {
			id   []byte
			data []byte
		}
		rows, err := t.tx.Query(t.ctx, sql, after)
		if err != nil {
			return fmt.Errorf("postgres: list: %w", err)
		}
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.data); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: list: %w", err)
			}
			got = append(got, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: list: %w", err)
		}
		for _, r := range got {
			var rec R
			if err := json.Unmarshal(r.data, &rec); err != nil {
				return fmt.Errorf("postgres: list: corrupt record %q: %w", r.id, err)
			}
			if id := idOf(&rec); id != string(r.id) {
				return fmt.Errorf("postgres: list: corrupt record %q: id is %q", r.id, id)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(got) < page {
			return nil
		}
		after = got[len(got)-1].id
	}
}

// Audit records are keyed by (at_ns, seq); a cursor is those two as 16
// big-endian bytes in hex, the same shape as the bbolt store's.
const (
	auditKeyLen    = 16
	auditCursorLen = 2 * auditKeyLen
)

// auditMinTime and auditMaxTime bound the times at_ns can hold: int64 Unix
// nanoseconds from the epoch on.
func auditMinTime() time.Time { return time.Unix(0, 0) }
func auditMaxTime() time.Time { return time.Unix(0, math.MaxInt64) }

func formatAuditCursor(atNS, seq int64) string {
	k := make([]byte, auditKeyLen)
	binary.BigEndian.PutUint64(k, uint64(atNS))
	binary.BigEndian.PutUint64(k[8:], uint64(seq))
	return hex.EncodeToString(k)
}

// parseAuditCursor turns a cursor back into its position. Cursors come back
// from clients, so anything but exactly a key's hex is refused (and the
// input is not echoed: it may be long or hostile).
func parseAuditCursor(cursor string) (atNS, seq int64, err error) {
	if len(cursor) != auditCursorLen {
		return 0, 0, fmt.Errorf("cursor of %d characters, want %d hex digits: %w", len(cursor), auditCursorLen, storage.ErrBadCursor)
	}
	k, err := hex.DecodeString(cursor)
	if err != nil {
		return 0, 0, fmt.Errorf("cursor is not hex: %w", storage.ErrBadCursor)
	}
	a, s := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:])
	if a > math.MaxInt64 || s > math.MaxInt64 {
		return 0, 0, fmt.Errorf("cursor out of range: %w", storage.ErrBadCursor)
	}
	return int64(a), int64(s), nil
}

// AppendAudit implements storage.AuditTx.
func (t *txn) AppendAudit(at time.Time, data []byte) error {
	if err := t.appendAudit(at, data); err != nil {
		return fmt.Errorf("postgres: append audit record: %w", err)
	}
	return nil
}

func (t *txn) appendAudit(at time.Time, data []byte) error {
	if at.Before(auditMinTime()) || at.After(auditMaxTime()) {
		return fmt.Errorf("time %v outside the years %d to %d", at, auditMinTime().Year(), auditMaxTime().Year())
	}
	if data == nil {
		data = []byte{}
	}
	// The bigserial is drawn at insert: same-time records of one instance
	// keep their append order, and a rolled-back draw only leaves a gap.
	return t.exec("audit", t.q.appendAudit, at.UnixNano(), data)
}

// ScanAudit implements storage.AuditTx.
func (t *txn) ScanAudit(before string, fn func(cursor string, t time.Time, data []byte) (bool, error)) error {
	atNS, seq := int64(math.MaxInt64), int64(math.MaxInt64)
	if before != "" {
		var err error
		if atNS, seq, err = parseAuditCursor(before); err != nil {
			return fmt.Errorf("postgres: scan audit: %w", err)
		}
	}
	if t.tx == nil {
		return errTxDone
	}
	type rec struct {
		atNS, seq int64
		data      []byte
	}
	for {
		rows, err := t.tx.Query(t.ctx, t.q.scanAudit, atNS, seq)
		if err != nil {
			return fmt.Errorf("postgres: scan audit: %w", err)
		}
		var got []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.atNS, &r.seq, &r.data); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: scan audit: %w", err)
			}
			got = append(got, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: scan audit: %w", err)
		}
		for _, r := range got {
			if r.data == nil {
				r.data = []byte{}
			}
			more, err := fn(formatAuditCursor(r.atNS, r.seq), time.Unix(0, r.atNS).UTC(), r.data)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
		}
		if len(got) < page {
			return nil
		}
		last := got[len(got)-1]
		atNS, seq = last.atNS, last.seq
	}
}

// PruneAudit implements storage.AuditTx.
func (t *txn) PruneAudit(before time.Time) (int, error) {
	if err := t.check("audit", true); err != nil {
		return 0, fmt.Errorf("postgres: prune audit records: %w", err)
	}
	if !before.After(auditMinTime()) {
		return 0, nil // no record can be older
	}
	bound := int64(math.MaxInt64)
	if before.Before(auditMaxTime()) {
		bound = before.UnixNano()
	}
	tag, err := t.tx.Exec(t.ctx, t.q.pruneAudit, bound)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune audit records: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// TrimAudit implements storage.AuditTx.
func (t *txn) TrimAudit(keep int) (int, error) {
	if err := t.check("audit", true); err != nil {
		return 0, fmt.Errorf("postgres: trim audit records: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, t.q.trimAudit, int64(max(keep, 0)))
	if err != nil {
		return 0, fmt.Errorf("postgres: trim audit records: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
