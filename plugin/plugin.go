// Package plugin is otpstep's public entry point: New builds the provider,
// its storage and its HTTP handlers from a Config, and Mount puts the routes
// on a gorilla/mux router. `otpstep serve` is a thin command over it.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web"
)

// Config is otpstep's configuration; the same keys as config.example.yaml.
type Config = config.Config

// DefaultConfig returns every option at its default.
func DefaultConfig() Config { return config.Default() }

// Options configure a Plugin.
type Options struct {
	// Config is validated by New; errors name the key.
	Config Config
	// Dev relaxes validation as `otpstep serve --dev` documents.
	Dev bool
	// Store is an already opened storage; when nil New opens Config.Database.DSN.
	Store *storage.Store
	// Logger receives every log line; nil discards them.
	Logger *slog.Logger
	// Clock is the time source; nil is time.Now.
	Clock func() time.Time
	// Random is the randomness source for secrets and ids; nil is crypto/rand.
	Random io.Reader
	// Mailer delivers OTP emails; nil builds the one mail.driver names
	// (otpstep's SMTP or log mailer).
	Mailer mail.Mailer
	// Registerer and Gatherer expose metrics; nil disables them.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Plugin is one otpstep instance. Several can live in one process.
type Plugin struct {
	Provider *provider.Provider
	store    *storage.Store
	ownStore bool
	web      *web.Server
	log      *slog.Logger

	mu      sync.Mutex
	stop    context.CancelFunc
	stopped chan struct{}
}

// New validates the options, opens storage (running migrations when
// database.migrate_on_start is set) and composes the provider. No goroutine
// is started.
func New(ctx context.Context, opts Options) (*Plugin, error) {
	if err := opts.Config.Validate(opts.Dev); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	store, own := opts.Store, false
	if store != nil {
		// One clock for the provider and the storage it reads expiry from.
		store = store.WithClock(opts.Clock)
	} else {
		var err error
		store, err = storage.Open(ctx, opts.Config.Database.DSN, storage.Options{
			Clock: opts.Clock, Logger: opts.Logger, MaxOpenConns: opts.Config.Database.MaxOpenConns,
		})
		if err != nil {
			return nil, fmt.Errorf("database.dsn: %w", err)
		}
		own = true
	}
	fail := func(err error) (*Plugin, error) {
		if own {
			_ = store.Close()
		}
		return nil, err
	}
	if opts.Config.Database.MigrateOnStart {
		if err := store.Migrate(ctx); err != nil {
			return fail(fmt.Errorf("migrate: %w", err))
		}
	}
	p, err := provider.New(ctx, opts.Config, store, provider.Options{Clock: opts.Clock, Random: opts.Random, Logger: opts.Logger, Mailer: opts.Mailer})
	if err != nil {
		return fail(err)
	}
	w, err := web.New(p, web.Options{Logger: opts.Logger, Registerer: opts.Registerer, Gatherer: opts.Gatherer})
	if err != nil {
		return fail(err)
	}
	return &Plugin{Provider: p, store: store, ownStore: own, web: w, log: opts.Logger}, nil
}

// Mount registers otpstep's routes on r.
func (p *Plugin) Mount(r *mux.Router) { p.web.Mount(r) }

// Migrate runs pending migrations.
func (p *Plugin) Migrate(ctx context.Context) error { return p.store.Migrate(ctx) }

// Store is the plugin's storage.
func (p *Plugin) Store() *storage.Store { return p.store }

// Start starts the background work, the outbox dispatcher that delivers
// OTP emails, and returns at once. It runs until Close (or ctx ends).
func (p *Plugin) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return errors.New("plugin: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	p.stop, p.stopped = cancel, make(chan struct{})
	go func() {
		defer close(p.stopped)
		p.Provider.RunOutbox(ctx)
	}()
	return nil
}

// Close stops background work (waiting for the mail in flight) and closes
// the storage New opened.
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.stop != nil {
		p.stop()
		<-p.stopped
		p.stop = nil
	}
	p.mu.Unlock()
	var errs []error
	if p.ownStore {
		errs = append(errs, p.store.Close())
	}
	return errors.Join(errs...)
}
