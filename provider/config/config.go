// Package config holds every otpstep option, its default, its environment
// variable and its validation. The YAML file and OTPSTEP_* variables are read
// by Load; embedders build a Config in code and call Validate.
package config

import (
	"time"
)

// Config is the whole configuration. The koanf tags are the YAML keys; the
// environment variable of a key is OTPSTEP_ followed by the key upper-cased
// with dots replaced by underscores (server.public_url → OTPSTEP_SERVER_PUBLIC_URL).
type Config struct {
	Server         Server         `koanf:"server"`
	Database       Database       `koanf:"database"`
	Secrets        Secrets        `koanf:"secrets"`
	OAuth2         OAuth2         `koanf:"oauth2"`
	Login          Login          `koanf:"login"`
	Log            Log            `koanf:"log"`
	API            API            `koanf:"api"`
	OTP            OTP            `koanf:"otp"`
	Recovery       Recovery       `koanf:"recovery"`
	Mail           Mail           `koanf:"mail"`
	LinkedIdentity LinkedIdentity `koanf:"linked_identity"`
	UI             UI             `koanf:"ui"`
	// Upstreams is a list; it is set in the YAML file only (no env var).
	Upstreams []Upstream `koanf:"upstreams"`
}

// Server is the HTTP listener and the address the world sees.
type Server struct {
	Listen    string `koanf:"listen"`
	PublicURL string `koanf:"public_url"`
	// ShutdownGrace is how long, on SIGTERM, readiness answers 503 while
	// requests are still served (each answer saying Connection: close), so
	// a load balancer stops sending before the listener closes. Then
	// ShutdownTimeout is the budget: in-flight requests drain within it,
	// and the outbox's last pass uses what is left.
	ShutdownGrace   time.Duration `koanf:"shutdown_grace"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// TrustForwardedFor makes X-Forwarded-For's first address the client IP
	// (for per-IP limits); only set it behind a proxy that overwrites it.
	TrustForwardedFor bool `koanf:"trust_forwarded_for"`
	// AdminListen is the private listener of /metrics, /health/alive,
	// /health/ready and (AdminPprof) /debug/pprof/; "" serves none.
	AdminListen string `koanf:"admin_listen"`
	// AdminPprof adds net/http/pprof's handlers to the admin listener.
	AdminPprof bool `koanf:"admin_pprof"`
}

// Database selects the engine by DSN.
type Database struct {
	DSN            string `koanf:"dsn"`
	MigrateOnStart bool   `koanf:"migrate_on_start"`
	MaxOpenConns   int    `koanf:"max_open_conns"`
	// QueryTimeout bounds each statement outside a transaction and each
	// transaction (and the PostgreSQL connect); past it the request answers
	// 503 with Retry-After.
	QueryTimeout time.Duration `koanf:"query_timeout"`
	// PurgeInterval is how often every instance deletes what expired
	// (tokens, codes, login sessions, rate counters, OTP challenges a day
	// after expiry); 0 turns it off (then run otpstep purge).
	PurgeInterval time.Duration `koanf:"purge_interval"`
	// AuditRetention, when not 0, has the purge delete audit events older
	// than this; 0 keeps them all.
	AuditRetention time.Duration `koanf:"audit_retention"`
}

// Secrets are the keys everything else is derived from.
type Secrets struct {
	// System seeds the token HMAC secret, the sealing keys, the OTP hash key
	// and the cookie keys; at least 32 bytes.
	System string `koanf:"system"`
}

// OAuth2 holds token lifespans and the authorization-server policy.
type OAuth2 struct {
	AccessTokenLifespan   time.Duration `koanf:"access_token_lifespan"`
	RefreshTokenLifespan  time.Duration `koanf:"refresh_token_lifespan"`
	AuthorizeCodeLifespan time.Duration `koanf:"authorize_code_lifespan"`
	IDTokenLifespan       time.Duration `koanf:"id_token_lifespan"`
	// EnforcePKCE is "all" (RFC 9700: every client) or "public".
	EnforcePKCE string `koanf:"enforce_pkce"`
	// SigningAlg is RS256 or ES256 for new ID-token keys.
	SigningAlg string `koanf:"signing_alg"`
	// ClientCacheTTL bounds how long a client read from the database is reused.
	ClientCacheTTL time.Duration `koanf:"client_cache_ttl"`
	// BackchannelLogoutTimeout bounds one POST of a logout token to a
	// client's back-channel logout URI; BackchannelLogoutMaxAge is how long
	// an undelivered one is retried before it is given up.
	BackchannelLogoutTimeout time.Duration `koanf:"backchannel_logout_timeout"`
	BackchannelLogoutMaxAge  time.Duration `koanf:"backchannel_logout_max_age"`
}

// Login is the browser login and its limits.
type Login struct {
	SessionLifespan       time.Duration `koanf:"session_lifespan"`
	MaxFailuresPerAccount int           `koanf:"max_failures_per_account"`
	MaxFailuresPerIP      int           `koanf:"max_failures_per_ip"`
	FailureWindow         time.Duration `koanf:"failure_window"`
	MaxConcurrentHashes   int           `koanf:"max_concurrent_hashes"`
	CookieName            string        `koanf:"cookie_name"`
}

// Log selects slog's level and handler.
type Log struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// API is the PACE-compatible user API.
type API struct {
	// Prefixes are the paths the user API is served under, each serving
	// the same routes (PACE's SDKs pin a version in the path: 2024-2).
	Prefixes []string `koanf:"prefixes"`
	// Prefix is the one-prefix form kept from before api.prefixes: when
	// set, the API is served under it alone, and Prefixes must be empty.
	Prefix string `koanf:"prefix"`
}

// DefaultAPIPrefixes is api.prefixes' default: the user API of PACE's
// versions 2024-2 (which PACE's generated SDKs call) and 2024-3.
func DefaultAPIPrefixes() []string { return []string{"/user/2024-2", "/user/2024-3"} }

// Paths are the prefixes the user API is served under: api.prefix alone
// when it is set, else api.prefixes.
func (a API) Paths() []string {
	if a.Prefix != "" {
		return []string{a.Prefix}
	}
	return a.Prefixes
}

// OTP is the second-factor code policy.
type OTP struct {
	Length             int           `koanf:"length"`
	TTL                time.Duration `koanf:"ttl"`
	MaxAttempts        int           `koanf:"max_attempts"`
	MaxFailuresPerUser int           `koanf:"max_failures_per_user"`
	FailureWindow      time.Duration `koanf:"failure_window"`
	ResendInterval     time.Duration `koanf:"resend_interval"`
	MaxSendsPerHour    int           `koanf:"max_sends_per_hour"`
	ReturnInResponse   bool          `koanf:"return_in_response"`
}

// Recovery limits the account recovery pages ("Forgot password?"): the
// recovery codes themselves follow otp.* (length, ttl, attempts, sends).
type Recovery struct {
	// MaxRequestsPerAccount and MaxRequestsPerIP bound the recovery
	// requests per email address (whether or not an account has it) and
	// per client IP in each Window.
	MaxRequestsPerAccount int `koanf:"max_requests_per_account"`
	MaxRequestsPerIP      int `koanf:"max_requests_per_ip"`
	// MaxCodeFailuresPerIP bounds the wrong recovery codes per client IP in
	// each Window (per address, otp.max_attempts bounds them per code).
	MaxCodeFailuresPerIP int           `koanf:"max_code_failures_per_ip"`
	Window               time.Duration `koanf:"window"`
}

// Mail is how OTP emails leave.
type Mail struct {
	Driver       string `koanf:"driver"`
	SMTPURL      string `koanf:"smtp_url"`
	TLS          string `koanf:"tls"`
	From         string `koanf:"from"`
	TemplatesDir string `koanf:"templates_dir"`
	// SMTPMaxConnections is how many SMTP connections each instance keeps
	// open, each with a sender of the outbox sending message after message.
	SMTPMaxConnections int `koanf:"smtp_max_connections"`
	// OutboxLease is how long a claimed mail stays hidden from the other
	// instances; a live sender extends it every third of it, so it bounds
	// how long the mail of an instance that died waits for another.
	OutboxLease time.Duration `koanf:"outbox_lease"`
}

// UI is what the pages and mails show: the product's brand, the
// languages and time zone, replacement templates.
type UI struct {
	// ProductName names the product on every page and mail ("Your Acme
	// sign-in code for Shop").
	ProductName string `koanf:"product_name"`
	// LogoURL is an image shown atop every page: a path under
	// server.public_url or an https URL.
	LogoURL string `koanf:"logo_url"`
	// PrimaryColor (#rrggbb) is the buttons' and links' colour in light
	// mode; it must reach 4.5:1 against white.
	PrimaryColor string `koanf:"primary_color"`
	// SupportURL is linked as "Help" from every page and mail.
	SupportURL string `koanf:"support_url"`
	// TemplatesDir holds page (<page>.html, layout.html) and mail (otp.txt,
	// otp.html) templates replacing the built-in ones of the same name.
	TemplatesDir string `koanf:"templates_dir"`
	// DefaultLocale is the language of a request that asks for none
	// otpstep speaks (en or de).
	DefaultLocale string `koanf:"default_locale"`
	// TimeZone is the IANA zone times are shown in ("Europe/Berlin").
	TimeZone string `koanf:"time_zone"`
	// ScopeDescriptions describe scopes in words on the consent page
	// (scope → text), beside the built-in ones of the standard OpenID
	// Connect and user-API scopes.
	ScopeDescriptions map[string]string `koanf:"scope_descriptions"`
}

// Location is TimeZone loaded (UTC when empty or unknown: Validate
// refuses an unknown one).
func (u UI) Location() *time.Location {
	if u.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(u.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// LinkedIdentity is the policy for partner-linked identities.
type LinkedIdentity struct {
	Required  bool     `koanf:"required"`
	Providers []string `koanf:"providers"`
	// ReauthMaxAge bounds how old a login (past the second factor) may be
	// to link an identity, in the browser or through the API.
	ReauthMaxAge time.Duration `koanf:"reauth_max_age"`
	// IDTokenMaxAge bounds how old an upstream ID token may be (its iat,
	// beyond the clock skew) to link or sign in, however far ahead its exp.
	IDTokenMaxAge time.Duration `koanf:"id_token_max_age"`
}

// Upstream is an upstream OpenID Connect provider users link to (and, with
// AllowLogin, sign in with).
type Upstream struct {
	Name         string   `koanf:"name"`
	Issuer       string   `koanf:"issuer"`
	ClientID     string   `koanf:"client_id"`
	ClientSecret string   `koanf:"client_secret"`
	Scopes       []string `koanf:"scopes"`
	AllowLogin   bool     `koanf:"allow_login"`
}

// DevDefault is Default as `otpstep serve --dev` starts from: no
// shutdown grace (nothing in front of a development server waits for its
// readiness). A key set in the file or environment still wins.
func DevDefault() Config {
	c := Default()
	c.Server.ShutdownGrace = 0
	return c
}

// Default returns the configuration used where a key is not set.
func Default() Config {
	return Config{
		Server: Server{
			Listen:          "127.0.0.1:4444",
			PublicURL:       "http://127.0.0.1:4444",
			ShutdownGrace:   5 * time.Second,
			ShutdownTimeout: 10 * time.Second,
			AdminListen:     "127.0.0.1:4445",
		},
		Database: Database{
			DSN:            "sqlite://otpstep.db",
			MigrateOnStart: true,
			MaxOpenConns:   0,
			PurgeInterval:  10 * time.Minute,
			QueryTimeout:   5 * time.Second,
		},
		OAuth2: OAuth2{
			AccessTokenLifespan:      time.Hour,
			RefreshTokenLifespan:     30 * 24 * time.Hour,
			AuthorizeCodeLifespan:    10 * time.Minute,
			IDTokenLifespan:          time.Hour,
			EnforcePKCE:              "all",
			SigningAlg:               "RS256",
			ClientCacheTTL:           5 * time.Second,
			BackchannelLogoutTimeout: 5 * time.Second,
			BackchannelLogoutMaxAge:  24 * time.Hour,
		},
		Login: Login{
			SessionLifespan:       24 * time.Hour,
			MaxFailuresPerAccount: 5,
			MaxFailuresPerIP:      50,
			FailureWindow:         15 * time.Minute,
			MaxConcurrentHashes:   4,
			CookieName:            "otpstep_session",
		},
		Log: Log{Level: "info", Format: "text"},
		API: API{Prefixes: DefaultAPIPrefixes()},
		OTP: OTP{
			Length:             6,
			TTL:                5 * time.Minute,
			MaxAttempts:        5,
			MaxFailuresPerUser: 10,
			FailureWindow:      15 * time.Minute,
			ResendInterval:     30 * time.Second,
			MaxSendsPerHour:    5,
			ReturnInResponse:   true,
		},
		Recovery:       Recovery{MaxRequestsPerAccount: 3, MaxRequestsPerIP: 20, MaxCodeFailuresPerIP: 20, Window: time.Hour},
		LinkedIdentity: LinkedIdentity{ReauthMaxAge: 5 * time.Minute, IDTokenMaxAge: 10 * time.Minute},
		UI:             UI{ProductName: "otpstep", DefaultLocale: "en", TimeZone: "UTC", ScopeDescriptions: map[string]string{}},
		Mail: Mail{
			Driver: "log",
			TLS:    "starttls",
			From:   "otpstep <no-reply@localhost>",

			SMTPMaxConnections: 4,
			OutboxLease:        10 * time.Second,
		},
	}
}
