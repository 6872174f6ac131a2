// Package pgtest starts a throwaway PostgreSQL server for this module's
// tests: initdb and postgres in the test's temporary directory, on a free
// loopback port, stopped when the test ends. There are no mocks: the store
// is tested against the real thing.
//
// Without PostgreSQL binaries the calling test is skipped, except under
// CI=true, where it fails: CI must run these tests (.ci/run installs
// Debian's postgresql package).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server owned by one test.
type Server struct {
	Host string // 127.0.0.1
	Port int
	User string // the superuser, with trust authentication on loopback

	dbs atomic.Int64 // databases created, for unique names
}

// startTimeout bounds initdb plus the server's start on a slow, shared
// machine.
const startTimeout = 60 * time.Second

// Start starts a new server for t and stops it (removing its files) when t
// ends. It skips t when no PostgreSQL binaries are found, or fails it under
// CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	dir, err := FindBinaries()
	if err != nil {
		missing(t, err.Error())
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		if cred, err = postgresUser(); err != nil {
			missing(t, err.Error())
		}
	}
	base := t.TempDir()
	data, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if cred != nil {
		// The server's user must reach its directories: open the temporary
		// directories on the way (traverse only) and hand it its own.
		for _, d := range []string{base, filepath.Dir(base)} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{data, sock} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}

	const superuser = "postgres"
	initdb := command(cred, filepath.Join(dir, "initdb"), "-D", data, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "-N", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	port, err := freePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var log syncBuffer
	srv := command(cred, filepath.Join(dir, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1",
		// Throwaway data: durability buys nothing here and costs time.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatalf("pgtest: start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})

	s := &Server{Host: "127.0.0.1", Port: port, User: superuser}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return s
		}
		select {
		case <-exited:
			t.Fatalf("pgtest: postgres exited at start: %v\n%s", err, log.String())
		case <-ctx.Done():
			t.Fatalf("pgtest: postgres did not accept connections within %v: %v\n%s", startTimeout, err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DSN is the connection string of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.User, s.Host, s.Port, db)
}

// NewDatabase creates a new, empty database and returns its DSN. The
// database goes with the server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("db%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.DSN(name)
}

// FindBinaries returns the directory holding initdb and postgres: the one
// on PATH, or else Debian's newest /usr/lib/postgresql/<version>/bin.
func FindBinaries() (string, error) {
	return findBinaries("/usr/lib/postgresql/*/bin")
}

// findBinaries is FindBinaries with the Debian layout's pattern given.
func findBinaries(debianGlob string) (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	debian, _ := filepath.Glob(debianGlob)
	slices.SortFunc(debian, func(a, b string) int { return versionOf(b) - versionOf(a) })
	dirs = append(dirs, debian...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

// versionOf is the major version in /usr/lib/postgresql/<version>/bin, 0 if
// it is not a number.
func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// missing skips t, or fails it under CI=true.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must have PostgreSQL for these tests: %s", why)
		return
	}
	t.Skipf("PostgreSQL tests skipped: %s", why)
}

// postgresUser is the credential of the system user "postgres", which
// Debian's package creates: as root, the server runs as that user.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no user %q to run PostgreSQL as: %v", "postgres", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func command(cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/" // the caller's directory may be closed to that user
	}
	return cmd
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is the server's log, written by the process and read on
// failure.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
