package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/mfagate/mfagate/storage"
)

func testUser(t *testing.T, s storage.Store) {
	if _, err := getUser(t, s, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing user: err = %v, want ErrNotFound", err)
	}
	want := fullUser("alice")
	update(t, s, func(tx storage.Tx) error { return tx.PutUser(want) })
	got, err := getUser(t, s, "alice")
	if err != nil || !equal(got, want) {
		t.Fatalf("User = %+v, %v; want %+v", got, err, want)
	}

	// Put replaces the whole record.
	minimal := storage.User{ID: "alice", Email: "new@example.com"}
	update(t, s, func(tx storage.Tx) error { return tx.PutUser(minimal) })
	if got, err := getUser(t, s, "alice"); err != nil || !equal(got, minimal) {
		t.Fatalf("after replace: %+v, %v", got, err)
	}

	update(t, s, func(tx storage.Tx) error { return tx.DeleteUser("alice") })
	if _, err := getUser(t, s, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted user: err = %v, want ErrNotFound", err)
	}
	update(t, s, func(tx storage.Tx) error { return tx.DeleteUser("alice") }) // absent: nil
}

func testSession(t *testing.T, s storage.Store) {
	const id = "c2Vzc2lvbi1oYXNo"
	if _, err := getSession(t, s, id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing session: err = %v, want ErrNotFound", err)
	}
	want := fullSession(id)
	update(t, s, func(tx storage.Tx) error { return tx.PutSession(want) })
	got, err := getSession(t, s, id)
	if err != nil || !equal(got, want) {
		t.Fatalf("Session = %+v, %v; want %+v", got, err, want)
	}

	want.State, want.Bindings, want.LastSeen = 1, nil, t0().Add(time.Hour)
	update(t, s, func(tx storage.Tx) error { return tx.PutSession(want) })
	if got, err := getSession(t, s, id); err != nil || !equal(got, want) {
		t.Fatalf("after replace: %+v, %v; want %+v", got, err, want)
	}

	update(t, s, func(tx storage.Tx) error { return tx.DeleteSession(id) })
	if _, err := getSession(t, s, id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted session: err = %v, want ErrNotFound", err)
	}
	update(t, s, func(tx storage.Tx) error { return tx.DeleteSession(id) })
}

func testForEach(t *testing.T, s storage.Store) {
	var empty int
	view(t, s, func(tx storage.Tx) error {
		if err := tx.ForEachUser(func(storage.User) error { empty++; return nil }); err != nil {
			return err
		}
		return tx.ForEachSession(func(storage.Session) error { empty++; return nil })
	})
	if empty != 0 {
		t.Fatalf("empty store listed %d records", empty)
	}

	ids := []string{"a", "b", "c"}
	update(t, s, func(tx storage.Tx) error {
		for _, id := range ids {
			if err := tx.PutUser(fullUser(id)); err != nil {
				return err
			}
			if err := tx.PutSession(fullSession("s" + id)); err != nil {
				return err
			}
		}
		return nil
	})
	var users, sessions []string
	view(t, s, func(tx storage.Tx) error {
		if err := tx.ForEachUser(func(u storage.User) error {
			if !equal(u, fullUser(u.ID)) {
				return fmt.Errorf("listed user %+v differs", u)
			}
			users = append(users, u.ID)
			return nil
		}); err != nil {
			return err
		}
		return tx.ForEachSession(func(sess storage.Session) error {
			if !equal(sess, fullSession(sess.ID)) {
				return fmt.Errorf("listed session %+v differs", sess)
			}
			sessions = append(sessions, sess.ID)
			return nil
		})
	})
	sort.Strings(users)
	sort.Strings(sessions)
	if !reflect.DeepEqual(users, ids) || !reflect.DeepEqual(sessions, []string{"sa", "sb", "sc"}) {
		t.Fatalf("listed users %v sessions %v", users, sessions)
	}

	// An error from fn stops the iteration and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	err := s.View(context.Background(), func(tx storage.Tx) error {
		return tx.ForEachUser(func(storage.User) error { calls++; return stop })
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEachUser with failing fn: err = %v after %d calls", err, calls)
	}
}

func testForEachDelete(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		for i := range 20 {
			if err := tx.PutUser(storage.User{ID: fmt.Sprintf("u%02d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	seen := 0
	update(t, s, func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error {
			seen++
			return tx.DeleteUser(u.ID)
		})
	})
	if seen != 20 {
		t.Fatalf("deleting while iterating visited %d of 20", seen)
	}
	view(t, s, func(tx storage.Tx) error {
		return tx.ForEachUser(func(u storage.User) error { return fmt.Errorf("user %q left", u.ID) })
	})
}

func testSettings(t *testing.T, s storage.Store) {
	var err error
	view(t, s, func(tx storage.Tx) error { _, err = tx.Setting("k"); return nil })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing setting: err = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		name, key string
		value     []byte
	}{
		{"text", "k", []byte("v1")},
		{"overwrite", "k", []byte("v2")},
		{"binary", "bin\x00key", []byte{0, 1, 2, 0xff}},
		{"empty value", "empty", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			update(t, s, func(tx storage.Tx) error { return tx.PutSetting(tc.key, tc.value) })
			var got []byte
			view(t, s, func(tx storage.Tx) error { got, err = tx.Setting(tc.key); return nil })
			if err != nil || string(got) != string(tc.value) {
				t.Fatalf("Setting(%q) = %q, %v; want %q", tc.key, got, err, tc.value)
			}
		})
	}
}

func testCopies(t *testing.T, s storage.Store) {
	// Mutating what was passed to Put must not change the stored record.
	u, sess, val := fullUser("alice"), fullSession("s"), []byte("value")
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutSession(sess); err != nil {
			return err
		}
		if err := tx.PutSetting("k", val); err != nil {
			return err
		}
		u.TOTPSecret[0], u.RecoveryHashes[0][0] = 'X', 'X'
		sess.Bindings[0].Hash[0], sess.HeldCookies[0] = 'X', 'X'
		val[0] = 'X'
		return nil
	})

	// Mutating what Get returned must not change it either, inside or
	// after the transaction.
	for range 2 {
		var gotVal []byte
		view(t, s, func(tx storage.Tx) error {
			gu, err := tx.User("alice")
			if err != nil {
				return err
			}
			gs, err := tx.Session("s")
			if err != nil {
				return err
			}
			if gotVal, err = tx.Setting("k"); err != nil {
				return err
			}
			if !equal(gu, fullUser("alice")) || !equal(gs, fullSession("s")) || string(gotVal) != "value" {
				return fmt.Errorf("stored records changed: %+v %+v %q", gu, gs, gotVal)
			}
			gu.TOTPSecret[0], gu.RecoveryHashes[1][0], gu.PendingCodes[0] = 'Y', 'Y', 'Y'
			gs.Bindings[1].Hash[0], gs.HeldCookies[0] = 'Y', 'Y'
			gotVal[0] = 'Y'
			return nil
		})
		gotVal[1] = 'Z' // after the transaction ended: must be the caller's own memory
	}

	// Records read in one transaction stay intact after it ends.
	var kept storage.User
	view(t, s, func(tx storage.Tx) error { var err error; kept, err = tx.User("alice"); return err })
	update(t, s, func(tx storage.Tx) error { return tx.PutUser(storage.User{ID: "alice"}) })
	if !equal(kept, fullUser("alice")) {
		t.Fatalf("record read earlier changed after a later write: %+v", kept)
	}
}

func testEmptyID(t *testing.T, s storage.Store) {
	for _, tc := range []struct {
		name string
		fn   func(storage.Tx) error
	}{
		{"PutUser", func(tx storage.Tx) error { return tx.PutUser(storage.User{}) }},
		{"User", func(tx storage.Tx) error { _, err := tx.User(""); return err }},
		{"DeleteUser", func(tx storage.Tx) error { return tx.DeleteUser("") }},
		{"PutSession", func(tx storage.Tx) error { return tx.PutSession(storage.Session{}) }},
		{"Session", func(tx storage.Tx) error { _, err := tx.Session(""); return err }},
		{"DeleteSession", func(tx storage.Tx) error { return tx.DeleteSession("") }},
		{"PutSetting", func(tx storage.Tx) error { return tx.PutSetting("", []byte("v")) }},
		{"Setting", func(tx storage.Tx) error { _, err := tx.Setting(""); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Update(context.Background(), tc.fn); err == nil {
				t.Fatal("empty id accepted")
			}
		})
	}
}
