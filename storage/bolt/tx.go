package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/mfagate/mfagate/storage"
)

// txn implements storage.Tx on a bbolt transaction. Records are stored as
// JSON, keyed by ID; decoding copies every byte out of bbolt's memory map,
// so returned records stay valid after the transaction ends.
type txn struct {
	tx *bbolt.Tx // nil once the transaction's fn has returned
}

var (
	_ storage.Tx            = (*txn)(nil)
	_ storage.SettingLister = (*txn)(nil)
)

var errTxDone = errors.New("transaction already finished")

func (t *txn) bucket(name string) (*bbolt.Bucket, error) {
	if t.tx == nil {
		return nil, errTxDone
	}
	b := t.tx.Bucket([]byte(name))
	if b == nil { // Open creates every bucket; a missing one means a damaged file
		return nil, fmt.Errorf("bucket %q missing", name)
	}
	return b, nil
}

// User implements storage.Tx.
func (t *txn) User(id string) (storage.User, error) {
	u, err := get[storage.User](t, bucketUsers, id, func(u *storage.User) string { return u.ID })
	if err != nil {
		return storage.User{}, fmt.Errorf("bolt: get user %q: %w", id, err)
	}
	return u, nil
}

// PutUser implements storage.Tx.
func (t *txn) PutUser(u storage.User) error {
	if err := put(t, bucketUsers, u.ID, u); err != nil {
		return fmt.Errorf("bolt: put user %q: %w", u.ID, err)
	}
	return nil
}

// DeleteUser implements storage.Tx.
func (t *txn) DeleteUser(id string) error {
	if err := del(t, bucketUsers, id); err != nil {
		return fmt.Errorf("bolt: delete user %q: %w", id, err)
	}
	return nil
}

// ForEachUser implements storage.Tx.
func (t *txn) ForEachUser(fn func(storage.User) error) error {
	return forEach(t, bucketUsers, func(u *storage.User) string { return u.ID }, fn)
}

// Session implements storage.Tx.
func (t *txn) Session(id string) (storage.Session, error) {
	s, err := get[storage.Session](t, bucketSessions, id, func(s *storage.Session) string { return s.ID })
	if err != nil {
		return storage.Session{}, fmt.Errorf("bolt: get session %q: %w", id, err)
	}
	return s, nil
}

// PutSession implements storage.Tx.
func (t *txn) PutSession(s storage.Session) error {
	if err := put(t, bucketSessions, s.ID, s); err != nil {
		return fmt.Errorf("bolt: put session %q: %w", s.ID, err)
	}
	return nil
}

// DeleteSession implements storage.Tx.
func (t *txn) DeleteSession(id string) error {
	if err := del(t, bucketSessions, id); err != nil {
		return fmt.Errorf("bolt: delete session %q: %w", id, err)
	}
	return nil
}

// ForEachSession implements storage.Tx.
func (t *txn) ForEachSession(fn func(storage.Session) error) error {
	return forEach(t, bucketSessions, func(s *storage.Session) string { return s.ID }, fn)
}

// Setting implements storage.Tx.
func (t *txn) Setting(key string) ([]byte, error) {
	v, err := getRaw(t, bucketSettings, key)
	if err != nil {
		return nil, fmt.Errorf("bolt: get setting %q: %w", key, err)
	}
	return v, nil
}

// PutSetting implements storage.Tx.
func (t *txn) PutSetting(key string, value []byte) error {
	if err := putRaw(t, bucketSettings, key, value); err != nil {
		return fmt.Errorf("bolt: put setting %q: %w", key, err)
	}
	return nil
}

// ForEachSetting implements storage.SettingLister.
func (t *txn) ForEachSetting(fn func(key string, value []byte) error) error {
	b, err := t.bucket(bucketSettings)
	if err != nil {
		return fmt.Errorf("bolt: list settings: %w", err)
	}
	// Copies: bbolt's memory is only valid during the transaction.
	return b.ForEach(func(k, v []byte) error { return fn(string(k), append([]byte{}, v...)) })
}

// getRaw returns a copy of the value at key, or ErrNotFound. It uses a
// cursor rather than Bucket.Get so that a stored empty value is told apart
// from a missing key, and returns a non-nil slice for an empty value.
func getRaw(t *txn, bucket, key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("empty key")
	}
	b, err := t.bucket(bucket)
	if err != nil {
		return nil, err
	}
	k, v := b.Cursor().Seek([]byte(key))
	if k == nil || string(k) != key {
		return nil, storage.ErrNotFound
	}
	return append([]byte{}, v...), nil
}

func putRaw(t *txn, bucket, key string, value []byte) error {
	if key == "" {
		return errors.New("empty key")
	}
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	// bbolt keeps a reference to value until commit; copy so the caller
	// may reuse its slice.
	return b.Put([]byte(key), bytes.Clone(value))
}

func del(t *txn, bucket, key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

func put[R any](t *txn, bucket, key string, rec R) error {
	if key == "" {
		return errors.New("empty id")
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func get[R any](t *txn, bucket, key string, idOf func(*R) string) (R, error) {
	var rec R
	if key == "" {
		return rec, errors.New("empty id")
	}
	b, err := t.bucket(bucket)
	if err != nil {
		return rec, err
	}
	data := b.Get([]byte(key))
	if data == nil {
		return rec, storage.ErrNotFound
	}
	return decode(bucket, []byte(key), data, idOf)
}

// decode parses one record, naming the bucket and key on failure so that an
// operator can find a damaged record. A record whose ID differs from its key
// is damaged too: trusting it would let one key answer for another ID.
func decode[R any](bucket string, key, data []byte, idOf func(*R) string) (R, error) {
	var rec R
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("corrupt record in bucket %q key %q: %w", bucket, key, err)
	}
	if id := idOf(&rec); id != string(key) {
		var zero R
		return zero, fmt.Errorf("corrupt record in bucket %q key %q: id is %q", bucket, key, id)
	}
	return rec, nil
}

// forEach decodes each record of bucket and passes it to fn. The keys are
// collected first, so that fn may put and delete records (as SweepSessions
// does) without disturbing the iteration; a record deleted by fn before its
// turn is skipped.
func forEach[R any](t *txn, bucket string, idOf func(*R) string, fn func(R) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return fmt.Errorf("bolt: list %s: %w", bucket, err)
	}
	var keys [][]byte
	if err := b.ForEach(func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("bolt: list %s: %w", bucket, err)
	}
	for _, k := range keys {
		data := b.Get(k)
		if data == nil {
			continue
		}
		rec, err := decode(bucket, k, data, idOf)
		if err != nil {
			return fmt.Errorf("bolt: list %s: %w", bucket, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}
