package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/i18n"
	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
)

// Clock tells the time; tests inject a fake one.
type Clock func() time.Time

// Options are the collaborators a Provider takes besides its configuration.
type Options struct {
	// Host, when set, is the embedding host's authorization server: the
	// provider then issues no tokens itself (see Host).
	Host *Host

	Clock  Clock
	Random io.Reader
	Logger *slog.Logger
	// Mailer delivers the outbox; nil builds one from mail.* (smtp or log).
	Mailer mail.Mailer
	// HTTPClient talks to the upstream OpenID Connect providers; nil is a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// Registerer receives the provider's metrics (provider/metrics: the
	// outcome counters, the outbox's, both database pools, the build);
	// nil exports none.
	Registerer prometheus.Registerer
	// TracerProvider records the spans of SMTP sends and upstream requests
	// (storage records its own, storage.Options); nil records none.
	TracerProvider trace.TracerProvider
}

// Provider is otpstep's authorization server: fosite composed over storage,
// the signing keys, and the login and second-factor rules.
type Provider struct {
	OAuth2 fosite.OAuth2Provider
	Fosite *fosite.Config
	Keys   *KeySet

	cfg       config.Config
	store     *storage.Store
	clients   *clientCache
	clock     Clock
	random    io.Reader
	log       *slog.Logger
	hashes    chan struct{} // bounds concurrent argon2id computations
	dummyHash string
	// comparePassword checks a password against its stored hash:
	// argon2id.ComparePasswordAndHash (tests count its calls).
	comparePassword func(password, hash string) (bool, error)
	bearer          bearerCheck

	otpHash       otpHasher
	mailSealer    *Sealer
	tokenSealer   *Sealer // kept upstream tokens (SealPurposeFederatedTokens)
	totpSealer    *Sealer // TOTP secrets (SealPurposeTOTP)
	mailTemplates *mail.Templates
	catalogs      *i18n.Catalogs
	dispatcher    *outbox.Dispatcher
	// logouts delivers back-channel logouts (nil embedded: no keys to sign).
	logouts *outbox.LogoutDispatcher
	metrics *metrics.Metrics

	upstreams *upstream.Registry
	// embedded: Options.Host was set (Embedded).
	embedded bool
}

// Embedded reports whether the provider serves an embedding host
// (Options.Host): the host's fosite issues the tokens and keeps the keys,
// its login checks passwords, and otpstep adds the second factor. It is the
// one place the mode is decided; web and plugin ask it.
func (p *Provider) Embedded() bool { return p.embedded }

// New composes the provider. It does not touch the database except to make
// sure a signing key exists (none with Options.Host).
func New(ctx context.Context, cfg config.Config, store *storage.Store, opts Options) (*Provider, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Random == nil {
		opts.Random = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := metrics.New(opts.Registerer)
	secret := []byte(cfg.Secrets.System)
	clients := newClientCache(store, cfg.OAuth2.ClientCacheTTL, opts.Clock)
	var (
		oauth2 fosite.OAuth2Provider
		fc     *fosite.Config
		keys   *KeySet
		err    error
	)
	if opts.Host == nil {
		if oauth2, fc, keys, err = composeOAuth2(ctx, cfg, store, clients, opts.Clock, m); err != nil {
			return nil, err
		}
	} else if opts.Host.OAuth2 == nil {
		return nil, errors.New("provider: Options.Host.OAuth2 is nil")
	}
	dummy, err := NewPasswordHash("otpstep-timing-equaliser")
	if err != nil {
		return nil, err
	}
	otpKey, err := DeriveKey(secret, "otp-hmac", 32)
	if err != nil {
		return nil, err
	}
	mailSealer, err := NewSealer(secret, "mail-outbox")
	if err != nil {
		return nil, err
	}
	tokenSealer, err := NewSealer(secret, SealPurposeFederatedTokens)
	if err != nil {
		return nil, err
	}
	totpSealer, err := NewSealer(secret, SealPurposeTOTP)
	if err != nil {
		return nil, err
	}
	defaultLocale := cfg.UI.DefaultLocale
	if defaultLocale == "" { // a Config built by hand, not from config.Default
		defaultLocale = "en"
	}
	catalogs, err := i18n.New(defaultLocale, cfg.UI.Location())
	if err != nil {
		return nil, fmt.Errorf("ui.default_locale: %w", err)
	}
	mailDir, mailDirKey := cfg.Mail.TemplatesDir, "mail.templates_dir"
	if mailDir == "" && cfg.UI.TemplatesDir != "" {
		mailDir, mailDirKey = cfg.UI.TemplatesDir, "ui.templates_dir"
	}
	templates, err := mail.LoadTemplatesWith(mailDir, catalogs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mailDirKey, err)
	}
	mailer := opts.Mailer
	if mailer == nil {
		if mailer, err = newMailer(cfg.Mail, opts.Logger, opts.TracerProvider); err != nil {
			return nil, err
		}
	}
	sqlPool, readPool := store.Pools()
	metrics.Register(opts.Registerer, metrics.NewBuildInfo(), metrics.NewSQLPoolCollector(sqlPool),
		metrics.NewOutboxCollector(store.OutboxBacklog, opts.Clock, outboxScrapeTimeout))
	if readPool != nil {
		metrics.Register(opts.Registerer, metrics.NewPgxPoolCollector(readPool))
	}
	dispatcher := outbox.NewDispatcher(store, mailSealer, mailer, outbox.Options{
		Clock: opts.Clock, Logger: opts.Logger, Observer: m,
		// A mail still queued when its code expires is dropped: it would
		// only mislead (README, operations).
		MaxAge:  cfg.OTP.TTL,
		Lease:   cfg.Mail.OutboxLease,
		Senders: cfg.Mail.SMTPMaxConnections,
	})
	pr := &Provider{
		OAuth2:    oauth2,
		Fosite:    fc,
		Keys:      keys,
		bearer:    newBearerCheck(oauth2, opts.Host),
		embedded:  opts.Host != nil,
		cfg:       cfg,
		store:     store,
		clients:   clients,
		catalogs:  catalogs,
		clock:     opts.Clock,
		random:    opts.Random,
		log:       opts.Logger,
		hashes:    make(chan struct{}, cfg.Login.MaxConcurrentHashes),
		dummyHash: dummy,

		comparePassword: argon2id.ComparePasswordAndHash,

		otpHash:       otpHasher{key: otpKey},
		mailSealer:    mailSealer,
		tokenSealer:   tokenSealer,
		totpSealer:    totpSealer,
		mailTemplates: templates,
		dispatcher:    dispatcher,
		metrics:       m,

		// Nothing is fetched here: an unreachable upstream must not stop
		// the start.
		upstreams: upstream.NewRegistry(cfg.Upstreams, upstream.Options{
			HTTPClient: opts.HTTPClient, TracerProvider: opts.TracerProvider, Clock: opts.Clock, Logger: opts.Logger,
			IDTokenMaxAge: cfg.LinkedIdentity.IDTokenMaxAge,
		}),
	}
	pr.logouts = pr.newLogoutDispatcher()
	return pr, nil
}

// outboxScrapeTimeout bounds the outbox backlog query of one scrape of
// /metrics, so a slow database does not hold the scrape.
const outboxScrapeTimeout = 2 * time.Second

// Config is the configuration the provider runs with.
func (p *Provider) Config() config.Config { return p.cfg }

// Store is the storage the provider runs on.
func (p *Provider) Store() *storage.Store { return p.store }

// Now is the provider's clock.
func (p *Provider) Now() time.Time { return p.clock() }

// Catalogs are the languages of pages and mails (ui.default_locale,
// ui.time_zone).
func (p *Provider) Catalogs() *i18n.Catalogs { return p.catalogs }

// Issuer is the OpenID Connect issuer (server.public_url).
func (p *Provider) Issuer() string { return p.cfg.Server.PublicURL }

// fositeStore is the storage fosite sees: storage.Store with client reads
// served from a short-lived cache.
type fositeStore struct {
	*storage.Store
	clients *clientCache
	metrics *metrics.Metrics
}

// CreateAccessTokenSession stores an access token (fosite calls it once per
// token it issues) and counts it by the request's grant type.
func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	if err := s.Store.CreateAccessTokenSession(ctx, signature, r); err != nil {
		return err
	}
	// fosite hands over the request sanitized (a plain Request), keeping
	// grant_type in its form.
	grant := r.GetRequestForm().Get("grant_type")
	switch grant {
	case "authorization_code", "refresh_token", "client_credentials":
	case "":
		grant = "implicit" // issued by the authorize endpoint
	default:
		grant = "other" // bounded cardinality
	}
	s.metrics.TokenIssued(grant)
	return nil
}

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.clients.Get(ctx, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w", fosite.ErrNotFound)
		}
		return nil, err
	}
	return c, nil
}
