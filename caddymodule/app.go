package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/mfagate/mfagate/guard"
	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/storage/instrumented"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(BoltStore{})
}

// App is the mfa app: it owns mfa_gateway's stores and the service on each
// (keys, in-memory sessions, attempt counters, background sweeps), shared
// by every mfa_gateway handler and kept across config reloads. Stores are
// opened when the app starts, never while a config is only provisioned, so
// `caddy validate` and `caddy adapt` work while a Caddy with the same
// config runs and holds the database.
//
// Handlers name no store by default and use the app's; a handler's db_path
// selects a bolt file of its own.
type App struct {
	// The default store: a guest module in the mfa.stores namespace.
	// Default: bolt, at mfagate/mfagate.db in Caddy's data directory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=mfa.stores inline_key=backend"`

	store  Store
	logger *zap.Logger
	state  *appState
}

// appState is what the app holds while its config is loaded.
type appState struct {
	mu       sync.Mutex
	handlers []*Gateway // this config's handlers, started with the app
	held     []string   // pool keys this config's app holds
	stopped  bool
}

// sharedStore is a Store several Caddy instances may use at once.
type sharedStore interface{ Shared() bool }

// Store is a storage backend of the mfa app (module namespace mfa.stores).
type Store interface {
	// StoreKey names the database: configs naming the same one share one
	// open store and its service.
	StoreKey() string
	// OpenStore opens the database.
	OpenStore() (storage.Store, error)
	// DefaultKeyFile is where the generated key file lives when neither
	// encryption_key nor key_file is set.
	DefaultKeyFile() string
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "mfa", New: func() caddy.Module { return new(App) }}
}

// Provision loads the default store's module and registers the metrics
// collector on this config's registry; it opens nothing.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.state = &appState{}
	if err := registerMetrics(ctx.GetMetricsRegistry(), poolServices); err != nil {
		return err
	}
	if a.StoreRaw == nil {
		def := &BoltStore{}
		if err := def.Provision(ctx); err != nil {
			return err
		}
		a.store = def
		return nil
	}
	mod, err := ctx.LoadModule(a, "StoreRaw")
	if err != nil {
		return fmt.Errorf("loading mfa store module: %w", err)
	}
	a.store = mod.(Store)
	return nil
}

// attach registers a handler of this config, started with the app.
func (a *App) attach(m *Gateway) {
	m.app = a
	a.state.mu.Lock()
	a.state.handlers = append(a.state.handlers, m)
	a.state.mu.Unlock()
}

// Start opens (or shares) each handler's store and starts the handler on
// its service.
func (a *App) Start() error {
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	for _, m := range a.state.handlers {
		if err := a.startHandler(m); err != nil {
			_ = a.releaseLocked()
			return err
		}
	}
	return nil
}

// ensure starts m now if the app has not yet: Caddy starts its apps in no
// particular order, so the HTTP server may pass a request to a handler
// before this app's Start reached it. The request waits for the store
// rather than being refused.
func (a *App) ensure(m *Gateway) (*guard.Guard, error) {
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	if a.state.stopped {
		return nil, errors.New("mfa_gateway: the config is stopping")
	}
	if err := a.startHandler(m); err != nil {
		return nil, err
	}
	return m.gw.load(), nil
}

// startHandler starts m on its store's service, once.
func (a *App) startHandler(m *Gateway) error {
	if m.gw.load() != nil {
		return nil
	}
	st := m.store
	if st == nil {
		st = a.store
	}
	key, err := m.loadKey(st)
	if err != nil {
		return err
	}
	k := st.StoreKey()
	val, _, err := pool.LoadOrNew(k, func() (caddy.Destructor, error) {
		return openService(st, key, m.serviceOptions(), a.logger)
	})
	if err != nil {
		return err
	}
	a.state.held = append(a.state.held, k)
	svc := val.(serviceCloser).Service
	if !svc.SameKey(key) {
		return errors.New("encryption_key differs from the key the open database uses; restart Caddy to change keys")
	}
	gw, err := guard.New(m.cfg, svc, m.logger)
	if err != nil {
		return err
	}
	m.gw.p.Store(gw)
	return nil
}

// Stop releases this config's hold on its services; the last config using
// a store closes it.
func (a *App) Stop() error {
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	a.state.stopped = true
	return a.releaseLocked()
}

func (a *App) releaseLocked() error {
	var errs []error
	for _, k := range a.state.held {
		if _, err := pool.Delete(k); err != nil {
			errs = append(errs, err)
		}
	}
	a.state.held = nil
	return errors.Join(errs...)
}

// openService opens a store, timed for the metrics, and the service on it.
func openService(st Store, key []byte, opts mfa.Options, logger *zap.Logger) (serviceCloser, error) {
	raw, err := st.OpenStore()
	if err != nil {
		if errors.Is(err, storage.ErrLocked) {
			return serviceCloser{}, fmt.Errorf("%w (is another Caddy, or `caddy mfa --db`, using it?)", err)
		}
		return serviceCloser{}, err
	}
	store := instrumented.Wrap(raw)
	opts.Store, opts.Key, opts.Logger = store, key, logger
	if sh, ok := st.(sharedStore); ok && sh.Shared() {
		opts.Shared = true // follow other instances' sessions and policies through the store's change feed
	}
	svc, err := mfa.Open(opts)
	if err != nil {
		_ = store.Close()
		return serviceCloser{}, err
	}
	logger.Info("database opened", zap.String("store", st.StoreKey()))
	return serviceCloser{svc, store}, nil
}

// pool shares one service per store across config reloads: Caddy starts
// the new config before it stops the old one, and a second bbolt open of
// the same file would wait on its lock.
var pool = caddy.NewUsagePool()

// serviceCloser is a pooled service and its timed store (read by the
// metrics collector).
type serviceCloser struct {
	*mfa.Service
	store *instrumented.Store
}

func (s serviceCloser) Destruct() error { return s.Close() }

// BoltStore keeps the state in one bbolt file (module mfa.stores.bolt).
type BoltStore struct {
	// The database file. Default: mfagate/mfagate.db in Caddy's data directory.
	Path string `json:"path,omitempty"`

	path string // absolute, placeholders resolved
}

// CaddyModule returns the Caddy module information.
func (BoltStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "mfa.stores.bolt", New: func() caddy.Module { return new(BoltStore) }}
}

// Provision resolves the path; it does not open the file.
func (b *BoltStore) Provision(caddy.Context) error {
	p := caddy.NewReplacer().ReplaceAll(b.Path, "")
	if p == "" {
		p = filepath.Join(caddy.AppDataDir(), "mfagate", "mfagate.db")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return fmt.Errorf("bolt store path %q: %w", p, err)
	}
	b.path = abs
	return nil
}

// StoreKey implements Store.
func (b *BoltStore) StoreKey() string { return b.path }

// OpenStore implements Store.
func (b *BoltStore) OpenStore() (storage.Store, error) {
	return bolt.Open(b.path, bolt.Options{Timeout: time.Second})
}

// DefaultKeyFile implements Store: the key file lives beside the database.
func (b *BoltStore) DefaultKeyFile() string { return filepath.Join(filepath.Dir(b.path), "key") }

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Provisioner = (*BoltStore)(nil)
	_ Store             = (*BoltStore)(nil)
)
