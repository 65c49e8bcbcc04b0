package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// MinSecretLength is the shortest secrets.system accepted.
const MinSecretLength = 32

// MaxShutdownGrace bounds server.shutdown_grace: longer only delays a
// restart, no load balancer needs minutes to notice.
const MaxShutdownGrace = 5 * time.Minute

// KeyError is a validation failure of one key.
type KeyError struct {
	Key    string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("config: %s (%s): %s", e.Key, EnvVar(e.Key), e.Reason)
}

// Validate checks every key; each problem is a *KeyError naming its key
// (several are joined). dev relaxes only what --dev documents:
// secrets.system may be empty (the caller then generates one).
func (c *Config) Validate(dev bool) error { return c.ValidateNaming(dev, "--dev") }

// ValidateNaming is Validate for a caller whose switch for dev is not
// otpstep serve's --dev flag: errors name devSwitch (an embedding host's
// "Options.Dev").
func (c *Config) ValidateNaming(dev bool, devSwitch string) error {
	return c.ValidateScope(dev, devSwitch, ScopeServe)
}

// problems checks every key and returns every problem.
func (c *Config) problems(dev bool, devSwitch string) []*KeyError {
	var errs []*KeyError
	bad := func(key, format string, a ...any) {
		errs = append(errs, &KeyError{Key: key, Reason: fmt.Sprintf(format, a...)})
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not host:port", c.Server.Listen)
	}
	u, err := url.Parse(c.Server.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("server.public_url", "%q is not an absolute http(s) URL without query", c.Server.PublicURL)
	} else if u.Scheme == "http" && !dev && !isLoopback(u.Hostname()) {
		bad("server.public_url", "plain http is only allowed for loopback hosts or with %s", devSwitch)
	}
	if c.Server.ShutdownGrace < 0 || c.Server.ShutdownGrace > MaxShutdownGrace {
		bad("server.shutdown_grace", "%s is not between 0 and %s", c.Server.ShutdownGrace, MaxShutdownGrace)
	}
	if c.Server.ShutdownTimeout <= 0 {
		bad("server.shutdown_timeout", "must be positive")
	}
	if c.Database.DSN == "" {
		bad("database.dsn", "must be set (postgres://… or sqlite://path)")
	}
	if c.Database.MaxOpenConns < 0 {
		bad("database.max_open_conns", "must be 0 (automatic) or positive")
	}
	if c.Database.PurgeInterval != 0 && (c.Database.PurgeInterval < time.Second || c.Database.PurgeInterval > 24*time.Hour) {
		bad("database.purge_interval", "%s is not 0 (off) or between 1s and 24h", c.Database.PurgeInterval)
	}
	if c.Database.QueryTimeout < 100*time.Millisecond || c.Database.QueryTimeout > time.Minute {
		bad("database.query_timeout", "%s is not between 100ms and 60s", c.Database.QueryTimeout)
	}
	if c.Database.AuditRetention != 0 && c.Database.AuditRetention < 24*time.Hour {
		bad("database.audit_retention", "%s is not 0 (keep every event) or at least 24h", c.Database.AuditRetention)
	}
	if len(c.Secrets.System) < MinSecretLength && !(dev && c.Secrets.System == "") {
		bad("secrets.system", "must be at least %d bytes (generate one with: openssl rand -hex 32)", MinSecretLength)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"oauth2.access_token_lifespan", c.OAuth2.AccessTokenLifespan, time.Minute},
		{"oauth2.refresh_token_lifespan", c.OAuth2.RefreshTokenLifespan, time.Minute},
		{"oauth2.authorize_code_lifespan", c.OAuth2.AuthorizeCodeLifespan, 10 * time.Second},
		{"oauth2.id_token_lifespan", c.OAuth2.IDTokenLifespan, time.Minute},
		{"login.session_lifespan", c.Login.SessionLifespan, time.Minute},
		{"login.failure_window", c.Login.FailureWindow, time.Second},
		{"otp.ttl", c.OTP.TTL, 30 * time.Second},
		{"otp.failure_window", c.OTP.FailureWindow, time.Second},
	} {
		if d.v < d.min {
			bad(d.key, "%s is shorter than the minimum %s", d.v, d.min)
		}
	}
	if c.OAuth2.AuthorizeCodeLifespan > 10*time.Minute {
		bad("oauth2.authorize_code_lifespan", "RFC 6749 §4.1.2 recommends at most 10m")
	}
	if c.OAuth2.ClientCacheTTL < 0 || c.OAuth2.ClientCacheTTL > time.Minute {
		bad("oauth2.client_cache_ttl", "must be between 0 and 1m")
	}
	if c.OAuth2.EnforcePKCE != "all" && c.OAuth2.EnforcePKCE != "public" {
		bad("oauth2.enforce_pkce", "%q is not all or public", c.OAuth2.EnforcePKCE)
	}
	if c.OAuth2.SigningAlg != "RS256" && c.OAuth2.SigningAlg != "ES256" {
		bad("oauth2.signing_alg", "%q is not RS256 or ES256", c.OAuth2.SigningAlg)
	}
	if c.Login.MaxFailuresPerAccount < 1 {
		bad("login.max_failures_per_account", "must be at least 1")
	}
	if c.Login.MaxFailuresPerIP < 1 {
		bad("login.max_failures_per_ip", "must be at least 1")
	}
	if c.Login.MaxConcurrentHashes < 1 {
		bad("login.max_concurrent_hashes", "must be at least 1")
	}
	if c.Login.CookieName == "" || strings.ContainsAny(c.Login.CookieName, " ;=,") {
		bad("login.cookie_name", "%q is not a valid cookie name", c.Login.CookieName)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	if !strings.HasPrefix(c.API.Prefix, "/") || strings.HasSuffix(c.API.Prefix, "/") || strings.ContainsAny(c.API.Prefix, "?#{}") {
		bad("api.prefix", "%q must start with / and not end with /", c.API.Prefix)
	}
	// PACE's example code (docs/pace-update-session.txt) has 6 digits; up
	// to 10 keeps them typeable.
	if c.OTP.Length < 6 || c.OTP.Length > 10 {
		bad("otp.length", "%d is not between 6 and 10", c.OTP.Length)
	}
	if c.OTP.MaxAttempts < 1 {
		bad("otp.max_attempts", "must be at least 1")
	}
	if c.OTP.MaxFailuresPerUser < 1 {
		bad("otp.max_failures_per_user", "must be at least 1")
	}
	if c.OTP.ResendInterval < 0 {
		bad("otp.resend_interval", "must not be negative")
	}
	if c.OTP.MaxSendsPerHour < 1 {
		bad("otp.max_sends_per_hour", "must be at least 1")
	}
	switch c.Mail.Driver {
	case "log":
		if !dev {
			bad("mail.driver", "log writes one-time codes to the server log; it is only allowed with %s (use smtp)", devSwitch)
		}
	case "smtp":
		mu, err := url.Parse(c.Mail.SMTPURL)
		if err != nil || (mu.Scheme != "smtp" && mu.Scheme != "smtps") || mu.Hostname() == "" {
			bad("mail.smtp_url", "%q is not smtp://[user:pass@]host:port", redactURL(c.Mail.SMTPURL))
		}
	default:
		bad("mail.driver", "%q is not smtp or log", c.Mail.Driver)
	}
	switch c.Mail.TLS {
	case "starttls", "tls", "none":
	default:
		bad("mail.tls", "%q is not starttls, tls or none", c.Mail.TLS)
	}
	if !strings.Contains(c.Mail.From, "@") {
		bad("mail.from", "%q is not an email address", c.Mail.From)
	}
	if c.Mail.SMTPMaxConnections < 1 || c.Mail.SMTPMaxConnections > 100 {
		bad("mail.smtp_max_connections", "%d is not between 1 and 100", c.Mail.SMTPMaxConnections)
	}
	// The heartbeat extends a lease every third of it: below 3s a database
	// pause of a second would lose it; above 5m mail of a dead instance
	// would outlive its code.
	if c.Mail.OutboxLease < 3*time.Second || c.Mail.OutboxLease > 5*time.Minute {
		bad("mail.outbox_lease", "%s is not between 3s and 5m", c.Mail.OutboxLease)
	}
	if c.LinkedIdentity.ReauthMaxAge < time.Second {
		bad("linked_identity.reauth_max_age", "must be at least 1s")
	}
	if c.LinkedIdentity.IDTokenMaxAge <= 0 {
		bad("linked_identity.id_token_max_age", "must be positive")
	}
	seen := map[string]bool{}
	for i, up := range c.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		if !upstreamName.MatchString(up.Name) {
			bad(key+".name", "%q must be 1-64 of a-z, 0-9, - and _", up.Name)
		}
		if seen[up.Name] {
			bad(key+".name", "%q is listed twice", up.Name)
		}
		seen[up.Name] = true
		iu, err := url.Parse(up.Issuer)
		if err != nil || iu.Host == "" || !(iu.Scheme == "https" || iu.Scheme == "http" && (dev || isLoopback(iu.Hostname()))) {
			bad(key+".issuer", "%q is not an https URL", up.Issuer)
		}
		if up.ClientID == "" {
			bad(key+".client_id", "must be set")
		}
	}
	return errs
}

var upstreamName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}
