package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mfagate/mfagate/internal/pgtest"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/postgres"
)

// contents is a whole store, for comparing two.
type contents struct {
	Users    map[string]storage.User
	Sessions map[string]storage.Session
	Settings map[string]string
	Audit    []string // "time data", oldest first
}

func read(t *testing.T, s storage.Store) contents {
	t.Helper()
	c := contents{Users: map[string]storage.User{}, Sessions: map[string]storage.Session{}, Settings: map[string]string{}}
	err := s.View(context.Background(), func(tx storage.Tx) error {
		if err := tx.ForEachUser(func(u storage.User) error {
			u.EnrolledAt, u.CreatedAt, u.UpdatedAt = u.EnrolledAt.UTC(), u.CreatedAt.UTC(), u.UpdatedAt.UTC()
			c.Users[u.ID] = u
			return nil
		}); err != nil {
			return err
		}
		if err := tx.ForEachSession(func(se storage.Session) error {
			se.CreatedAt, se.LastSeen, se.ExpiresAt = se.CreatedAt.UTC(), se.LastSeen.UTC(), se.ExpiresAt.UTC()
			c.Sessions[se.ID] = se
			return nil
		}); err != nil {
			return err
		}
		return tx.(storage.SettingLister).ForEachSetting(func(k string, v []byte) error {
			c.Settings[k] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Audit().View(context.Background(), func(tx storage.AuditTx) error {
		return tx.ScanAudit("", func(_ string, at time.Time, data []byte) (bool, error) {
			c.Audit = append([]string{fmt.Sprintf("%d %s", at.UnixNano(), data)}, c.Audit...)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fill puts more records than one page or chunk of either store, with
// nanosecond times, binary keys, empty values and same-time audit events.
func fill(t *testing.T, s storage.Store) {
	t.Helper()
	base := time.Date(2025, 3, 14, 15, 9, 26, 123456789, time.FixedZone("X", 3600))
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		for i := range 600 {
			u := storage.User{ID: fmt.Sprintf("user%03d", i), TOTPSecret: []byte{byte(i), 0, 0xff}, TOTPConfirmed: i%2 == 0,
				TOTPLastStep: int64(i), RecoveryHashes: [][]byte{{1, byte(i)}}, EnrolledAt: base.Add(time.Duration(i)),
				CreatedAt: base, UpdatedAt: base.Add(time.Hour), Email: fmt.Sprintf("u%d@example.com", i)}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		for i := range 300 {
			se := storage.Session{ID: fmt.Sprintf("sess\x00%03d", i), User: "user001", State: 2, AAL: 2,
				Bindings: []storage.Binding{{Name: "app", Hash: []byte{byte(i)}}}, Next: "/a?b=\u00e9",
				CreatedAt: base, LastSeen: base.Add(time.Minute), ExpiresAt: base.Add(12 * time.Hour)}
			if err := tx.PutSession(se); err != nil {
				return err
			}
		}
		for _, kv := range [][2]string{{"policy/default", `{"require_2fa":true}`}, {"bin\x00key", "\x00\xff"}, {"empty", ""}} {
			if err := tx.PutSetting(kv[0], []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Audit().Update(context.Background(), func(tx storage.AuditTx) error {
		for i := range 700 {
			at := base.Add(time.Duration(i/3) * time.Second) // three per instant
			if err := tx.AppendAudit(at, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				return err
			}
		}
		return tx.AppendAudit(base, []byte(`{"n":0}`)) // a true duplicate, kept twice
	})
	if err != nil {
		t.Fatal(err)
	}
}

func openBolt(t *testing.T, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCopyRoundTrip(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := openBolt(t, filepath.Join(dir, "src.db"))
	fill(t, src)
	want := read(t, src)

	pg, err := postgres.Open(ctx, postgres.Options{DSN: srv.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	wantRep := storage.CopyReport{Users: 600, Sessions: 300, Settings: 3, AuditEvents: 701, AuditAdded: 701}
	for run, added := range []int{701, 0} { // the second run finds everything there
		rep, err := storage.Copy(ctx, src, pg)
		wantRep.AuditAdded = added
		if err != nil || rep != wantRep {
			t.Fatalf("bolt -> postgres run %d: %+v, %v; want %+v", run+1, rep, err, wantRep)
		}
		if got := read(t, pg); !reflect.DeepEqual(got, want) {
			t.Fatalf("bolt -> postgres run %d: the stores differ", run+1)
		}
	}

	back := openBolt(t, filepath.Join(dir, "back.db"))
	wantRep.AuditAdded = 701
	if rep, err := storage.Copy(ctx, pg, back); err != nil || rep != wantRep {
		t.Fatalf("postgres -> bolt: %+v, %v; want %+v", rep, err, wantRep)
	}
	if got := read(t, back); !reflect.DeepEqual(got, want) {
		t.Fatal("bolt -> postgres -> bolt: the stores differ")
	}
}

// TestCopyKeepsOthers: the destination's own records stay, and a record of
// the same ID is replaced by the source's.
func TestCopyKeepsOthers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, dst := openBolt(t, filepath.Join(dir, "a.db")), openBolt(t, filepath.Join(dir, "b.db"))
	for _, tc := range []struct {
		s    storage.Store
		user storage.User
	}{{src, storage.User{ID: "alice", Email: "new@example.com"}}, {dst, storage.User{ID: "alice", Email: "old@example.com"}}, {dst, storage.User{ID: "bob"}}} {
		if err := tc.s.Update(ctx, func(tx storage.Tx) error { return tx.PutUser(tc.user) }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := storage.Copy(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	got := read(t, dst)
	if len(got.Users) != 2 || got.Users["alice"].Email != "new@example.com" {
		t.Fatalf("destination users after copy: %+v", got.Users)
	}
}
