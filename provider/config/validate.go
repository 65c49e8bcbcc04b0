package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// MinSecretLength is the shortest secrets.system accepted, in bytes: every
// key is derived from it, and a 256-bit key cannot come from less.
const MinSecretLength = 32

// MaxShutdownGrace bounds server.shutdown_grace: longer only delays a
// restart, no load balancer needs minutes to notice.
const MaxShutdownGrace = 5 * time.Minute

// KeyError is a problem with one key: a value Validate refuses, or one Load
// cannot read (an unknown key, a value of the wrong type).
type KeyError struct {
	Key    string
	Reason string
}

// Error names the key and, for a key the environment can set, its variable.
func (e *KeyError) Error() string {
	if hasEnvVar(e.Key) {
		return fmt.Sprintf("config: %s (%s): %s", e.Key, EnvVar(e.Key), e.Reason)
	}
	return fmt.Sprintf("config: %s: %s", e.Key, e.Reason)
}

// ValidateOptions say what Validate may assume.
type ValidateOptions struct {
	// Dev relaxes only what --dev documents: plain http for the public URL
	// and upstream issuers, mail.driver log, and an empty secrets.system
	// (the caller then generates one).
	Dev bool
	// DevSwitch is what errors call Dev: "" is otpstep serve's --dev, an
	// embedding host's is "Options.Dev".
	DevSwitch string
	// Scope is the part of the configuration checked (see Scope); the
	// zero value, ScopeServe, is all of it.
	Scope Scope
	// Embedded says an embedding host serves otpstep's pages: the OTP pages'
	// and the link callback's URLs are under the host's server.public_url,
	// so standalone otpstep's default address would be silently wrong and is
	// refused.
	Embedded bool
	// DatabaseSupplied says the embedder hands over the database
	// (plugin.Options.DB or Store): database.dsn is not used.
	DatabaseSupplied bool
	// MailerSupplied says the embedder hands over the mailer
	// (plugin.Options.Mailer): mail.driver, mail.smtp_url, mail.tls and
	// mail.from are not used, and mail.smtp_max_connections and
	// mail.outbox_lease may be 0 for the outbox's defaults.
	MailerSupplied bool
}

// Validate is ValidateWith(ValidateOptions{Dev: dev}): every section, with
// the database and mailer built from the configuration.
func (c *Config) Validate(dev bool) error { return c.ValidateWith(ValidateOptions{Dev: dev}) }

// ValidateWith checks every key of opts.Scope and returns all
// the problems at once, joined (errors.Join), each a *KeyError naming the key,
// in the order of the file; nil when there are none.
func (c *Config) ValidateWith(opts ValidateOptions) error {
	if opts.DevSwitch == "" {
		opts.DevSwitch = "--dev"
	}
	v := &validation{opts: opts}
	for _, s := range c.sections() {
		if opts.Scope.Covers(s.name) {
			s.check(v)
		}
	}
	return v.err()
}

// sectionValidator checks the keys of one top-level section.
type sectionValidator struct {
	name  string
	check func(*validation)
}

// sections lists each section's validator, in the order of the file. A new
// key is checked in its section's validator.
func (c *Config) sections() []sectionValidator {
	return []sectionValidator{
		{"server", c.Server.validate},
		{"database", c.Database.validate},
		{"secrets", c.Secrets.validate},
		{"oauth2", c.OAuth2.validate},
		{"login", c.Login.validate},
		{"log", c.Log.validate},
		{"api", c.API.validate},
		{"otp", c.OTP.validate},
		{"recovery", c.Recovery.validate},
		{"mail", c.Mail.validate},
		{"linked_identity", c.LinkedIdentity.validate},
		{"ui", c.UI.validate},
		{"upstreams", func(v *validation) { validateUpstreams(c.Upstreams, v) }},
	}
}

// validation collects the problems of one Validate call.
type validation struct {
	opts ValidateOptions
	errs []*KeyError
}

func (v *validation) bad(key, format string, a ...any) {
	v.errs = append(v.errs, &KeyError{Key: key, Reason: fmt.Sprintf(format, a...)})
}

// atLeast refuses a duration shorter than min.
func (v *validation) atLeast(key string, d, min time.Duration) {
	if d < min {
		v.bad(key, "%s is shorter than the minimum %s", d, min)
	}
}

// positive refuses a count below 1.
func (v *validation) positive(key string, n int) {
	if n < 1 {
		v.bad(key, "must be at least 1")
	}
}

func (v *validation) err() error { return joinKeyErrors(v.errs) }

// joinKeyErrors sorts errs in the order of the file and joins them.
func joinKeyErrors(errs []*KeyError) error {
	slices.SortStableFunc(errs, func(a, b *KeyError) int { return slices.Compare(position(a.Key), position(b.Key)) })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

func (s Server) validate(v *validation) {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		v.bad("server.listen", "%q is not host:port", s.Listen)
	}
	if s.AdminListen != "" {
		if _, _, err := net.SplitHostPort(s.AdminListen); err != nil {
			v.bad("server.admin_listen", "%q is not host:port (\"\" turns the admin listener off)", s.AdminListen)
		}
	}
	u, err := url.Parse(s.PublicURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		v.bad("server.public_url", "%q is not an absolute http(s) URL without query", s.PublicURL)
	case v.opts.Embedded && s.PublicURL == Default().Server.PublicURL:
		v.bad("server.public_url", "must be set to the host's public URL in embedded mode (%q is standalone otpstep's default)", s.PublicURL)
	case u.Scheme == "http" && !v.opts.Dev && !isLoopback(u.Hostname()):
		v.bad("server.public_url", "plain http is only allowed for loopback hosts or with %s", v.opts.DevSwitch)
	}
	if s.ShutdownGrace < 0 || s.ShutdownGrace > MaxShutdownGrace {
		v.bad("server.shutdown_grace", "%s is not between 0 and %s", s.ShutdownGrace, MaxShutdownGrace)
	}
	if s.ShutdownTimeout <= 0 {
		v.bad("server.shutdown_timeout", "must be positive")
	}
}

func (d Database) validate(v *validation) {
	if d.DSN == "" && !v.opts.DatabaseSupplied {
		v.bad("database.dsn", "must be set (postgres://… or sqlite://path)")
	}
	if d.MaxOpenConns < 0 {
		v.bad("database.max_open_conns", "must be 0 (automatic) or positive")
	}
	if d.QueryTimeout < 100*time.Millisecond || d.QueryTimeout > time.Minute {
		v.bad("database.query_timeout", "%s is not between 100ms and 60s", d.QueryTimeout)
	}
	if d.PurgeInterval != 0 && (d.PurgeInterval < time.Second || d.PurgeInterval > 24*time.Hour) {
		v.bad("database.purge_interval", "%s is not 0 (off) or between 1s and 24h", d.PurgeInterval)
	}
	if d.AuditRetention != 0 && d.AuditRetention < 24*time.Hour {
		v.bad("database.audit_retention", "%s is not 0 (keep every event) or at least 24h", d.AuditRetention)
	}
}

func (s Secrets) validate(v *validation) {
	if len(s.System) < MinSecretLength && !(v.opts.Dev && s.System == "") {
		v.bad("secrets.system", "must be at least %d bytes (generate one with: openssl rand -hex 32)", MinSecretLength)
	}
}

func (o OAuth2) validate(v *validation) {
	v.atLeast("oauth2.access_token_lifespan", o.AccessTokenLifespan, time.Minute)
	v.atLeast("oauth2.refresh_token_lifespan", o.RefreshTokenLifespan, time.Minute)
	v.atLeast("oauth2.authorize_code_lifespan", o.AuthorizeCodeLifespan, 10*time.Second)
	if o.AuthorizeCodeLifespan > 10*time.Minute {
		v.bad("oauth2.authorize_code_lifespan", "RFC 6749 §4.1.2 recommends at most 10m")
	}
	v.atLeast("oauth2.id_token_lifespan", o.IDTokenLifespan, time.Minute)
	if o.EnforcePKCE != "all" && o.EnforcePKCE != "public" {
		v.bad("oauth2.enforce_pkce", "%q is not all or public", o.EnforcePKCE)
	}
	if o.SigningAlg != "RS256" && o.SigningAlg != "ES256" {
		v.bad("oauth2.signing_alg", "%q is not RS256 or ES256", o.SigningAlg)
	}
	if o.ClientCacheTTL < 0 || o.ClientCacheTTL > time.Minute {
		v.bad("oauth2.client_cache_ttl", "must be between 0 and 1m")
	}
	if o.BackchannelLogoutTimeout < time.Second || o.BackchannelLogoutTimeout > time.Minute {
		v.bad("oauth2.backchannel_logout_timeout", "must be between 1s and 1m")
	}
	v.atLeast("oauth2.backchannel_logout_max_age", o.BackchannelLogoutMaxAge, time.Minute)
}

func (l Login) validate(v *validation) {
	v.atLeast("login.session_lifespan", l.SessionLifespan, time.Minute)
	v.positive("login.max_failures_per_account", l.MaxFailuresPerAccount)
	v.positive("login.max_failures_per_ip", l.MaxFailuresPerIP)
	v.atLeast("login.failure_window", l.FailureWindow, time.Second)
	v.positive("login.max_concurrent_hashes", l.MaxConcurrentHashes)
	if l.CookieName == "" || strings.ContainsAny(l.CookieName, " ;=,") {
		v.bad("login.cookie_name", "%q is not a valid cookie name", l.CookieName)
	}
}

func (l Log) validate(v *validation) {
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q is not debug, info, warn or error", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		v.bad("log.format", "%q is not text or json", l.Format)
	}
}

func (a API) validate(v *validation) {
	validPrefix := func(p string) bool {
		return strings.HasPrefix(p, "/") && !strings.HasSuffix(p, "/") && !strings.ContainsAny(p, "?#{}\\")
	}
	switch {
	case a.Prefix != "" && len(a.Prefixes) > 0:
		v.bad("api.prefix", "api.prefix and api.prefixes are both set; set only api.prefixes (a list)")
		return
	case a.Prefix != "":
		if !validPrefix(a.Prefix) {
			v.bad("api.prefix", "%q must start with / and not end with /", a.Prefix)
		}
		return
	case len(a.Prefixes) == 0:
		v.bad("api.prefixes", "must list at least one prefix")
		return
	}
	seen := map[string]bool{}
	for _, p := range a.Prefixes {
		switch {
		case !validPrefix(p):
			v.bad("api.prefixes", "%q must start with / and not end with /", p)
		case seen[p]:
			v.bad("api.prefixes", "%q is listed twice", p)
		}
		seen[p] = true
	}
	// One prefix under another would have a route of the outer (say
	// /user/x/sessions/{id}) shadow or be shadowed by the inner's.
	for _, p := range a.Prefixes {
		for _, q := range a.Prefixes {
			if p != q && strings.HasPrefix(q, p+"/") {
				v.bad("api.prefixes", "%q lies under %q", q, p)
			}
		}
	}
}

func (o OTP) validate(v *validation) {
	// PACE's example code (docs/pace-update-session.txt) has 6 digits; up
	// to 10 keeps them typeable.
	if o.Length < 6 || o.Length > 10 {
		v.bad("otp.length", "%d is not between 6 and 10", o.Length)
	}
	v.atLeast("otp.ttl", o.TTL, 30*time.Second)
	v.positive("otp.max_attempts", o.MaxAttempts)
	v.positive("otp.max_failures_per_user", o.MaxFailuresPerUser)
	v.atLeast("otp.failure_window", o.FailureWindow, time.Second)
	if o.ResendInterval < 0 {
		v.bad("otp.resend_interval", "must not be negative")
	}
	v.positive("otp.max_sends_per_hour", o.MaxSendsPerHour)
}

func (r Recovery) validate(v *validation) {
	v.positive("recovery.max_requests_per_account", r.MaxRequestsPerAccount)
	v.positive("recovery.max_requests_per_ip", r.MaxRequestsPerIP)
	v.positive("recovery.max_code_failures_per_ip", r.MaxCodeFailuresPerIP)
	v.atLeast("recovery.window", r.Window, time.Minute)
}

func (m Mail) validate(v *validation) {
	if !v.opts.MailerSupplied {
		m.validateSMTP(v)
	}
	// Beside a supplied mailer, a hand-built Config may leave these two at
	// 0: the outbox then takes its defaults.
	zeroIsDefault := v.opts.MailerSupplied
	if !(zeroIsDefault && m.SMTPMaxConnections == 0) && (m.SMTPMaxConnections < 1 || m.SMTPMaxConnections > 100) {
		v.bad("mail.smtp_max_connections", "%d is not between 1 and 100", m.SMTPMaxConnections)
	}
	// The heartbeat extends a lease every third of it: below 3s a database
	// pause of a second would lose it; above 5m mail of a dead instance
	// would outlive its code.
	if !(zeroIsDefault && m.OutboxLease == 0) && (m.OutboxLease < 3*time.Second || m.OutboxLease > 5*time.Minute) {
		v.bad("mail.outbox_lease", "%s is not between 3s and 5m", m.OutboxLease)
	}
}

// validateSMTP checks the keys of otpstep's own mailers (the SMTP one, or
// the log one under --dev).
func (m Mail) validateSMTP(v *validation) {
	switch m.Driver {
	case "log":
		if !v.opts.Dev {
			v.bad("mail.driver", "log writes one-time codes to the server log; it is only allowed with %s (use smtp)", v.opts.DevSwitch)
		}
	case "smtp":
		mu, err := url.Parse(m.SMTPURL)
		if err != nil || (mu.Scheme != "smtp" && mu.Scheme != "smtps") || mu.Hostname() == "" {
			v.bad("mail.smtp_url", "%q is not smtp://[user:pass@]host:port", redactURL(m.SMTPURL))
		}
	default:
		v.bad("mail.driver", "%q is not smtp or log", m.Driver)
	}
	switch m.TLS {
	case "starttls", "tls", "none":
	default:
		v.bad("mail.tls", "%q is not starttls, tls or none", m.TLS)
	}
	if !strings.Contains(m.From, "@") {
		v.bad("mail.from", "%q is not an email address", m.From)
	}
}

func (l LinkedIdentity) validate(v *validation) {
	if l.ReauthMaxAge < time.Second {
		v.bad("linked_identity.reauth_max_age", "must be at least 1s")
	}
	if l.IDTokenMaxAge <= 0 {
		v.bad("linked_identity.id_token_max_age", "must be positive")
	}
}

var upstreamName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func validateUpstreams(ups []Upstream, v *validation) {
	seen := map[string]bool{}
	for i, up := range ups {
		key := fmt.Sprintf("upstreams[%d]", i)
		switch {
		case !upstreamName.MatchString(up.Name):
			v.bad(key+".name", "%q must be 1-64 of a-z, 0-9, - and _", up.Name)
		case seen[up.Name]:
			v.bad(key+".name", "%q is listed twice", up.Name)
		}
		seen[up.Name] = true
		iu, err := url.Parse(up.Issuer)
		if err != nil || iu.Host == "" || !(iu.Scheme == "https" || iu.Scheme == "http" && (v.opts.Dev || isLoopback(iu.Hostname()))) {
			v.bad(key+".issuer", "%q is not an https URL", up.Issuer)
		}
		if up.ClientID == "" {
			v.bad(key+".client_id", "must be set")
		}
	}
}

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
