package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"gorm.io/gorm"

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

// DevDefaultConfig returns the defaults `otpstep serve --dev` starts from:
// DefaultConfig without server.shutdown_grace.
func DevDefaultConfig() Config { return config.DevDefault() }

// Mailer delivers the OTP emails. otpstep's SMTP mailer (mail.NewSMTP) and
// development log mailer (mail.NewLog) are two implementations; a host may
// route mail through its own delivery service instead (see mail.Permanent
// for failures not worth retrying).
type Mailer = mail.Mailer

// MailMessage is one email a Mailer sends.
type MailMessage = mail.Message

// Options configure a Plugin. Without OAuth2 the plugin is otpstep itself
// (standalone: its own fosite, login pages and OAuth2 endpoints); with
// OAuth2 it is embedded in the host that owns that fosite (see the package
// documentation). The fields marked "embedded" require OAuth2.
type Options struct {
	// Config is validated by New; errors name the key. In embedded mode
	// server.public_url is the host's public URL, and the oauth2.* and
	// login.* keys other than login.session_lifespan and login.cookie_name
	// are not used.
	Config Config
	// Dev relaxes validation as `otpstep serve --dev` documents.
	Dev bool
	// Scope is the part of Config New validates; the zero value,
	// ScopeServe, is all of it. An instance for a management command
	// (ScopeManage) sends no mail: without a Mailer it gets one that keeps
	// every message queued for a server, and the built-in templates.
	Scope Scope

	// DB is the host's database handle: otpstep's tables live beside the
	// host's (Migrate creates them). It must be PostgreSQL (gorm.io/driver/postgres)
	// or SQLite (github.com/glebarez/sqlite, with _pragma=foreign_keys(1)).
	// Close leaves it open. Without DB (and Store), New opens
	// Config.Database.DSN; with either, database.dsn is not used (nor
	// validated).
	DB *gorm.DB
	// Store is an already opened otpstep storage (tests, the CLI); Close
	// leaves it open. At most one of DB and Store.
	Store *storage.Store

	// OAuth2 is the host's fosite.OAuth2Provider (embedded mode). It
	// introspects the bearer tokens of the user API, so it must be composed
	// with compose.OAuth2TokenIntrospectionFactory, and RequireSecondFactor
	// parses authorize requests with it. nil: otpstep's own provider.
	OAuth2 fosite.OAuth2Provider
	// TokenSession (embedded) is the empty session the host's tokens are
	// hydrated into when introspected; nil is an *openid.DefaultSession.
	TokenSession func() fosite.Session
	// SessionIDFromToken (embedded) finds the login session's sid in a
	// host token's session; nil reads a provider.SessionIDCarrier
	// (interface{ SessionID() string }), else the ID token claims'
	// Extra["sid"], as Claims.Apply puts it there.
	SessionIDFromToken func(fosite.Session) string
	// SessionFromRequest (embedded) finds the sid of the browser's login
	// session when the host keeps it in its own session; nil: the cookie
	// BeginLogin sets (login.cookie_name).
	SessionFromRequest func(*http.Request) string
	// AuthorizePaths (embedded) are the paths of the host's authorize
	// endpoint(s), where RequireSecondFactor runs and where the OTP page
	// sends the browser back; nil is ["/oauth2/auth"].
	AuthorizePaths []string
	// SecondFactorRequired (embedded) says whether an authorize request
	// needs the second factor; nil: every request. A request asking for
	// acr_values=aal2 always does (fosite does not enforce acr_values).
	SecondFactorRequired func(fosite.AuthorizeRequester) bool
	// LoginUIClient (embedded) says whether a host client is a login UI:
	// one that may pass the second factor through the user API (PUT
	// /sessions/{id} passedLoginOTP:true) and receive login codes in its
	// responses. nil: a client implementing provider.LoginUIClient
	// (interface{ IsLoginUI() bool }) that says so; no other client is.
	LoginUIClient func(fosite.Client) bool

	// Mailer delivers OTP emails; nil builds the one mail.driver names
	// (otpstep's SMTP or log mailer). With a Mailer, mail.driver,
	// mail.smtp_url, mail.tls and mail.from are not used (nor validated),
	// and mail.smtp_max_connections and mail.outbox_lease may be 0 for the
	// outbox's defaults.
	Mailer Mailer
	// Clock is the time source; nil is time.Now.
	Clock func() time.Time
	// Logger receives every log line; nil discards them.
	Logger *slog.Logger
	// Random is the randomness source for secrets and ids; nil is crypto/rand.
	Random io.Reader
	// Registerer receives otpstep's metrics (never the global registry
	// unless the host passes it); nil keeps none. Gatherer is what
	// AdminHandler's /metrics serves; nil: no /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// TracerProvider records spans (OpenTelemetry): one per HTTP request
	// to otpstep's routes (honouring an incoming W3C traceparent), per
	// storage transaction and statement of a traced request, per SMTP send
	// (in the trace of the request that queued the mail) and per upstream
	// request. nil records none. TracerProviderFromEnv builds one from the
	// OTEL_* variables; Shutdown flushes it, the caller shuts it down.
	TracerProvider trace.TracerProvider
}

// Plugin is one otpstep instance. It keeps no package-level state: several
// can live in one process, each on its own database and prefix.
type Plugin struct {
	// Provider is the second-factor stage and, standalone, the OAuth2
	// provider (users, clients, keys: what the CLI manages).
	Provider *provider.Provider
	store    *storage.Store
	ownStore bool
	web      *web.Server
	log      *slog.Logger
	// tracerProvider is Options.TracerProvider (nil: none), flushed by Shutdown.
	tracerProvider trace.TracerProvider
	gatherer       prometheus.Gatherer

	oauth2   fosite.OAuth2Provider // the host's, or the provider's own
	required func(fosite.AuthorizeRequester) bool
	// hostKeepsSID: Options.SessionFromRequest is set, so no cookie.
	hostKeepsSID bool

	mu      sync.Mutex
	stop    context.CancelFunc
	stopped chan struct{}
	// shutDown: Shutdown has stopped the background work for good.
	shutDown bool
}

// KeyError is a problem with one configuration key, naming the key (and its
// environment variable): a value Validate refuses or one LoadConfig cannot
// read. Several are joined (errors.Join) and reported at once.
type KeyError = config.KeyError

// OptionError is a problem with one field of Options; Config problems are
// *KeyError, naming the key.
type OptionError struct {
	Field  string
	Reason string
}

func (e *OptionError) Error() string { return "plugin: Options." + e.Field + ": " + e.Reason }

// validate checks Options and the Config, naming the field or key at fault.
func (opts *Options) validate() error {
	if opts.DB != nil && opts.Store != nil {
		return &OptionError{Field: "DB", Reason: "set together with Options.Store; give one"}
	}
	if opts.OAuth2 == nil {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"TokenSession", opts.TokenSession != nil},
			{"SessionIDFromToken", opts.SessionIDFromToken != nil},
			{"SessionFromRequest", opts.SessionFromRequest != nil},
			{"AuthorizePaths", opts.AuthorizePaths != nil},
			{"SecondFactorRequired", opts.SecondFactorRequired != nil},
			{"LoginUIClient", opts.LoginUIClient != nil},
		} {
			if f.set {
				return &OptionError{Field: f.name, Reason: "is for embedded mode and needs Options.OAuth2 (the host's fosite)"}
			}
		}
	}
	for i, p := range opts.AuthorizePaths {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "?#\\") {
			return &OptionError{Field: fmt.Sprintf("AuthorizePaths[%d]", i), Reason: fmt.Sprintf("%q is not a local path", p)}
		}
	}
	if opts.OAuth2 != nil && len(opts.AuthorizePaths) == 0 && opts.AuthorizePaths != nil {
		return &OptionError{Field: "AuthorizePaths", Reason: "is empty; leave it nil for /oauth2/auth"}
	}
	// What New does not use is not validated: the DSN beside a DB or
	// Store, otpstep's mailer keys beside a Mailer.
	vopts := config.ValidateOptions{
		Dev:              opts.Dev,
		Scope:            opts.Scope,
		DatabaseSupplied: opts.DB != nil || opts.Store != nil,
		MailerSupplied:   opts.Mailer != nil,
	}
	if opts.OAuth2 != nil {
		vopts.Embedded, vopts.DevSwitch = true, "Options.Dev"
	}
	return opts.Config.ValidateWith(vopts)
}

// queueOnly is the Mailer of an instance whose scope leaves mail out: it
// never runs the outbox, and should anything try, the mail stays queued.
type queueOnly struct{}

func (queueOnly) Send(context.Context, mail.Message) error {
	return errors.New("plugin: this instance sends no mail (its scope leaves mail.* unvalidated)")
}

// New validates the options, opens storage (running migrations when
// database.migrate_on_start is set) and composes the provider: otpstep's own
// fosite and signing keys standalone, none embedded. It starts no goroutine:
// mail waits in the outbox until Start.
func New(ctx context.Context, opts Options) (*Plugin, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if _, off := opts.TracerProvider.(noop.TracerProvider); off {
		// Records nothing: spare the requests the middleware.
		opts.TracerProvider = nil
	}
	if opts.TracerProvider != nil {
		opts.Logger = slog.New(LogHandlerWithTrace(opts.Logger.Handler()))
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	sopts := storage.Options{Clock: opts.Clock, Logger: opts.Logger, MaxOpenConns: opts.Config.Database.MaxOpenConns,
		QueryTimeout: opts.Config.Database.QueryTimeout, TracerProvider: opts.TracerProvider}
	var (
		store *storage.Store
		own   bool
		err   error
	)
	switch {
	case opts.Store != nil:
		// One clock for the provider and the storage it reads expiry from,
		// and database.query_timeout for every statement.
		store = opts.Store.WithClock(opts.Clock).WithQueryTimeout(opts.Config.Database.QueryTimeout)
		if opts.TracerProvider != nil {
			store = store.WithTracerProvider(opts.TracerProvider)
		}
	case opts.DB != nil:
		if store, err = storage.OpenGorm(ctx, opts.DB, sopts); err != nil {
			return nil, fmt.Errorf("plugin: Options.DB: %w", err)
		}
	default:
		if store, err = storage.Open(ctx, opts.Config.Database.DSN, sopts); err != nil {
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
	pcfg := opts.Config
	if !opts.Scope.Covers("mail") && opts.Mailer == nil {
		opts.Mailer, pcfg.Mail.TemplatesDir = queueOnly{}, ""
	}
	popts := provider.Options{Clock: opts.Clock, Random: opts.Random, Logger: opts.Logger, Mailer: opts.Mailer, Registerer: opts.Registerer,
		TracerProvider: opts.TracerProvider}
	if opts.OAuth2 != nil {
		popts.Host = &provider.Host{OAuth2: opts.OAuth2, NewSession: opts.TokenSession, SessionID: opts.SessionIDFromToken, LoginUI: opts.LoginUIClient}
	}
	p, err := provider.New(ctx, pcfg, store, popts)
	if err != nil {
		// Most likely an unmigrated database (the signing keys' table is
		// missing): say so rather than only which table.
		if pending := pendingMigrations(ctx, store); pending != nil {
			err = errors.Join(pending, err)
		}
		return fail(err)
	}
	wopts := web.Options{Logger: opts.Logger, Registerer: opts.Registerer, TracerProvider: opts.TracerProvider}
	if opts.OAuth2 != nil {
		wopts.SessionFromRequest = opts.SessionFromRequest
		wopts.ReturnPaths = opts.AuthorizePaths
		wopts.AuthorizeRequests = opts.OAuth2
		if wopts.ReturnPaths == nil {
			wopts.ReturnPaths = []string{web.PathAuthorize}
		}
	}
	w, err := web.New(p, wopts)
	if err != nil {
		return fail(err)
	}
	pl := &Plugin{Provider: p, store: store, ownStore: own, web: w, log: opts.Logger, tracerProvider: opts.TracerProvider,
		gatherer: opts.Gatherer,
		oauth2:   opts.OAuth2, required: opts.SecondFactorRequired,
		hostKeepsSID: opts.SessionFromRequest != nil}
	if pl.oauth2 == nil {
		pl.oauth2 = p.OAuth2
	}
	return pl, nil
}

// Mount registers the plugin's routes on r. Embedded: the user API (under each of
// api.prefixes), the OTP pages (/login/otp), the authenticator page
// (/settings/totp: link it from the host's account page) and the browser's linking of an
// upstream identity (/federated-identities/{identityProvider}/link and
// /callback: register {server.public_url}{prefix}/federated-identities/{name}/callback
// at the upstream), under whatever plain path prefix r has (r may be a
// PathPrefix subrouter); otpstep's middleware
// applies to those routes only. Standalone: every route otpstep serves
// (OAuth2 and OpenID Connect endpoints, login pages, /health/alive) at r's
// root, with otpstep's middleware on r. Call it once; Handler serves the
// same routes to a host on another router. /metrics and /health/ready are
// not public: see AdminHandler.
func (p *Plugin) Mount(r *mux.Router) {
	if p.Provider.Embedded() {
		p.web.MountSecondFactor(r)
		return
	}
	p.web.Mount(r)
}

// AdminHandler serves the operator's endpoints, for a private listener
// (otpstep serve: server.admin_listen): /metrics (Options.Gatherer),
// /health/alive, /health/ready (JSON: the database check, which alone
// decides 200 or 503, and the outbox backlog and last delivery as
// information) and, with server.admin_pprof, /debug/pprof/. An embedding
// host mounts it on its own private listener, or under a prefix with
// http.StripPrefix.
func (p *Plugin) AdminHandler() http.Handler {
	return p.web.AdminHandler(p.gatherer, p.Provider.Config().Server.AdminPprof)
}

// Migrate runs pending migrations of otpstep's tables.
func (p *Plugin) Migrate(ctx context.Context) error { return p.store.Migrate(ctx) }

// Store is the plugin's storage.
func (p *Plugin) Store() *storage.Store { return p.store }

// Start starts the background work, the outbox dispatcher that delivers
// OTP emails, the dispatcher of back-channel logouts (standalone) and the
// purge of expired rows every database.purge_interval,
// and returns at once. It runs until Close (or ctx ends). It
// refuses a database that lacks a migration of this build (database.
// migrate_on_start off and Migrate not run), naming the migrations.
func (p *Plugin) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return errors.New("plugin: already started")
	}
	if p.shutDown {
		return errors.New("plugin: shut down")
	}
	if err := pendingMigrations(ctx, p.store); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	p.stop, p.stopped = cancel, make(chan struct{})
	go func() {
		defer close(p.stopped)
		var wg sync.WaitGroup
		wg.Go(func() { p.Provider.RunPurge(ctx) })
		wg.Go(func() { p.Provider.RunBackchannelLogout(ctx) })
		p.Provider.RunOutbox(ctx)
		wg.Wait()
	}()
	return nil
}

// pendingMigrations is an error naming the migrations of this build that
// the database lacks and how to apply them, or nil when there are none (or
// their status cannot be read: the caller's own error then says more).
func pendingMigrations(ctx context.Context, store *storage.Store) error {
	status, err := store.MigrationStatus(ctx)
	if err != nil {
		return nil
	}
	var pending []string
	for _, m := range status {
		if m.AppliedAt == nil {
			pending = append(pending, m.Name)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	return fmt.Errorf("database: %d migration(s) not applied (%s): run `otpstep migrate up` (embedded: Plugin.Migrate) first, or set database.migrate_on_start",
		len(pending), strings.Join(pending, ", "))
}

// Close stops background work (waiting for the mail in flight) and closes
// the storage New opened from the DSN (never Options.DB or Options.Store).
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

// MinSecretLength is the shortest secrets.system accepted (and the shortest
// system secret keys are derived from).
const MinSecretLength = config.MinSecretLength

// Scope is the part of the configuration a command uses (config.Scope).
type Scope = config.Scope

// ValidateOptions say what Config.ValidateWith may assume (config.ValidateOptions).
type ValidateOptions = config.ValidateOptions

// The scopes of otpstep's commands (see config.Scope).
const (
	ScopeServe    = config.ScopeServe
	ScopeDatabase = config.ScopeDatabase
	ScopeManage   = config.ScopeManage
)

// LoadConfig reads the defaults, then a YAML file (path "" reads none), then
// the OTPSTEP_* environment through lookupEnv (nil: os.LookupEnv), as
// `otpstep serve` does; unknown keys are errors naming the key.
func LoadConfig(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	return config.Load(path, lookupEnv)
}

// LoadConfigOnto is LoadConfig starting from defaults (DefaultConfig or
// DevDefaultConfig) for the keys the file and environment leave unset.
func LoadConfigOnto(defaults Config, path string, lookupEnv func(string) (string, bool)) (Config, error) {
	return config.LoadOnto(defaults, path, lookupEnv)
}
