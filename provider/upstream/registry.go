// Package upstream talks to the upstream OpenID Connect providers users link
// their otpstep account to: discovery and JWKS fetched lazily and cached, the
// authorization-code exchange, and the ID-token checks (go-jose v4).
//
// A Registry holds one Provider per configured upstream. Nothing is fetched
// at construction, so an unreachable upstream never stops otpstep from
// starting; the calls that need it answer ErrUnavailable instead. There is no
// package-level state: HTTP client, clock and logger come through Options.
package upstream

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider/config"
)

// Errors callers match with errors.Is.
var (
	// ErrUnavailable means the upstream could not be reached or answered
	// something unusable (discovery, JWKS or token endpoint).
	ErrUnavailable = errors.New("upstream: provider unavailable")
	// ErrInvalidIDToken is matched by every *TokenError.
	ErrInvalidIDToken = errors.New("upstream: invalid id token")
	// ErrCodeRejected means the token endpoint refused the authorization
	// code, or answered without an ID token.
	ErrCodeRejected = errors.New("upstream: authorization code rejected")
)

// Defaults of Options.
const (
	DefaultLeeway          = time.Minute
	DefaultRefetchInterval = 30 * time.Second
	DefaultKeysMaxAge      = time.Hour
	DefaultIDTokenMaxAge   = 10 * time.Minute
	defaultHTTPTimeout     = 10 * time.Second
	// maxDocumentBytes bounds discovery and JWKS documents.
	maxDocumentBytes = 1 << 20
)

// allowedAlgorithms are the ID-token signature algorithms accepted: asymmetric
// only. "none" and the HMAC family are never accepted (RFC 8725 §3.1, §2.2:
// an HS256 token "signed" with a public key must not verify).
var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Options are a Registry's collaborators and tunables; zero values take the defaults.
type Options struct {
	// HTTPClient fetches discovery and JWKS and redeems codes; nil is a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// TracerProvider, when set, records a client span per upstream request
	// (discovery, JWKS, code redemption) and sends the trace context along
	// (traceparent); nil records none.
	TracerProvider trace.TracerProvider
	// Clock tells the time for token checks and caches; nil is time.Now.
	Clock func() time.Time
	// Logger receives one line per refused token, naming the reason.
	Logger *slog.Logger
	// Leeway is the clock skew allowed on exp, nbf and iat (default 1m).
	Leeway time.Duration
	// RefetchInterval is the least time between two JWKS refetches caused
	// by an unknown kid (default 30s).
	RefetchInterval time.Duration
	// KeysMaxAge is how long a fetched JWKS is trusted before it is fetched
	// again (default 1h), so a key withdrawn upstream stops verifying.
	KeysMaxAge time.Duration
	// IDTokenMaxAge is the oldest ID token accepted: its iat at most this
	// long (plus Leeway) ago, however far ahead its exp (default 10m).
	IDTokenMaxAge time.Duration
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if o.TracerProvider != nil {
		// A copy: the caller's client stays as it was.
		c := *o.HTTPClient
		c.Transport = otelhttp.NewTransport(c.Transport, otelhttp.WithTracerProvider(o.TracerProvider),
			otelhttp.WithPropagators(propagation.TraceContext{}))
		o.HTTPClient = &c
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Leeway <= 0 {
		o.Leeway = DefaultLeeway
	}
	if o.RefetchInterval <= 0 {
		o.RefetchInterval = DefaultRefetchInterval
	}
	if o.KeysMaxAge <= 0 {
		o.KeysMaxAge = DefaultKeysMaxAge
	}
	if o.IDTokenMaxAge <= 0 {
		o.IDTokenMaxAge = DefaultIDTokenMaxAge
	}
	return o
}

// Registry is the configured upstreams by name. It is safe for concurrent use.
type Registry struct {
	byName map[string]*Provider
	all    []*Provider
}

// NewRegistry builds one Provider per upstream, in configuration order. It
// fetches nothing.
func NewRegistry(upstreams []config.Upstream, opts Options) *Registry {
	opts = opts.withDefaults()
	r := &Registry{byName: make(map[string]*Provider, len(upstreams))}
	for _, u := range upstreams {
		p := &Provider{cfg: u, opts: opts, log: opts.Logger.With("upstream", u.Name)}
		r.byName[u.Name] = p
		r.all = append(r.all, p)
	}
	return r
}

// Lookup returns the upstream named name.
func (r *Registry) Lookup(name string) (*Provider, bool) {
	if r == nil {
		return nil, false
	}
	p, ok := r.byName[name]
	return p, ok
}

// All returns every upstream in configuration order.
func (r *Registry) All() []*Provider {
	if r == nil {
		return nil
	}
	return append([]*Provider(nil), r.all...)
}

// Provider is one upstream OpenID Connect provider: its configuration and
// the discovery document and keys fetched from it.
type Provider struct {
	cfg  config.Upstream
	opts Options
	log  *slog.Logger

	// fetchMu serialises network fetches, so a burst of requests triggers one.
	fetchMu sync.Mutex

	mu            sync.Mutex
	meta          *metadata
	keys          *jose.JSONWebKeySet
	keysFetchedAt time.Time
	keysGen       uint64    // counts JWKS fetches
	lastRefetch   time.Time // last refetch caused by an unknown kid
}

// Name is the upstream's configured name (the {identityProvider} of the routes).
func (p *Provider) Name() string { return p.cfg.Name }

// Issuer is the configured issuer.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// ClientID is otpstep's client id at the upstream.
func (p *Provider) ClientID() string { return p.cfg.ClientID }

// AllowLogin reports whether users may sign in with this upstream.
func (p *Provider) AllowLogin() bool { return p.cfg.AllowLogin }
