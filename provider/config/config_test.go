package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/config"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExampleFileDocumentsEveryKeyWithItsDefault(t *testing.T) {
	raw, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys() {
		if config.FileOnly(key) {
			if !strings.Contains(string(raw), "\n"+key+":") {
				t.Errorf("config.example.yaml does not document %s", key)
			}
			continue
		}
		if !strings.Contains(string(raw), config.EnvVar(key)) {
			t.Errorf("config.example.yaml does not name %s for %s", config.EnvVar(key), key)
		}
	}
	got, err := config.Load("../../config.example.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	if !reflect.DeepEqual(got, want) {
		// providers: [] and upstreams: [] decode as empty lists
		got.LinkedIdentity.Providers = want.LinkedIdentity.Providers
		got.Upstreams = want.Upstreams
		if !reflect.DeepEqual(got, want) {
			t.Errorf("config.example.yaml differs from Default():\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestEnvOverridesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("server:\n  public_url: https://id.example.com\notp:\n  ttl: 2m\n"), 0o600)
	cfg, err := config.Load(p, envOf(map[string]string{
		"OTPSTEP_OTP_TTL":                   "3m",
		"OTPSTEP_OTP_RETURN_IN_RESPONSE":    "false",
		"OTPSTEP_LINKED_IDENTITY_PROVIDERS": "a, b",
		"OTPSTEP_DATABASE_MAX_OPEN_CONNS":   "7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.PublicURL != "https://id.example.com" || cfg.OTP.TTL != 3*time.Minute || cfg.OTP.ReturnInResponse ||
		!reflect.DeepEqual(cfg.LinkedIdentity.Providers, []string{"a", "b"}) || cfg.Database.MaxOpenConns != 7 {
		t.Fatalf("got %+v", cfg)
	}
}

func TestUpstreamsFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("upstreams:\n  - name: partner\n    issuer: https://id.partner.example\n    client_id: otpstep\n    scopes: [openid, email]\n    allow_login: true\n"), 0o600)
	cfg, err := config.Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Upstream{{Name: "partner", Issuer: "https://id.partner.example", ClientID: "otpstep", Scopes: []string{"openid", "email"}, AllowLogin: true}}
	if !reflect.DeepEqual(cfg.Upstreams, want) {
		t.Fatalf("got %+v", cfg.Upstreams)
	}
	os.WriteFile(p, []byte("upstreams:\n  - name: partner\n    issuer_url: x\n"), 0o600)
	if _, err := config.Load(p, noEnv); err == nil || !strings.Contains(err.Error(), "issuer_url") {
		t.Fatalf("unknown upstream key: %v", err)
	}
	c := valid()
	c.Upstreams = []config.Upstream{{Name: "Partner!", Issuer: "https://x", ClientID: "c"}}
	var ke *config.KeyError
	if err := c.Validate(false); !errors.As(err, &ke) || ke.Key != "upstreams[0].name" {
		t.Fatalf("bad name: %v", err)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, env, wantKey string }{
		{"unknown key", "server:\n  listne: x\n", "", "server.listne"},
		{"bad duration", "otp:\n  ttl: forever\n", "", "otp.ttl"},
		{"bad int from env", "", "OTPSTEP_OTP_LENGTH=six", "otp.length"},
		{"bad bool", "otp:\n  return_in_response: maybe\n", "", "otp.return_in_response"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			os.WriteFile(p, []byte(c.yaml), 0o600)
			env := map[string]string{}
			if c.env != "" {
				kv := strings.SplitN(c.env, "=", 2)
				env[kv[0]] = kv[1]
			}
			_, err := config.Load(p, envOf(env))
			if err == nil || !strings.Contains(err.Error(), c.wantKey) {
				t.Fatalf("err = %v, want it to name %s", err, c.wantKey)
			}
		})
	}
}

func valid() config.Config {
	c := config.Default()
	c.Secrets.System = strings.Repeat("s", 32)
	c.Mail.Driver = "smtp"
	c.Mail.SMTPURL = "smtp://127.0.0.1:2525"
	return c
}

func TestValidate(t *testing.T) {
	if err := (func() *config.Config { c := valid(); return &c }()).Validate(false); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := []struct {
		key    string
		dev    bool
		mutate func(*config.Config)
	}{
		{"secrets.system", false, func(c *config.Config) { c.Secrets.System = "short" }},
		{"secrets.system", false, func(c *config.Config) { c.Secrets.System = "" }},
		{"server.listen", false, func(c *config.Config) { c.Server.Listen = "4444" }},
		{"server.admin_listen", false, func(c *config.Config) { c.Server.AdminListen = "4445" }},
		{"server.public_url", false, func(c *config.Config) { c.Server.PublicURL = "http://id.example.com" }},
		{"server.public_url", true, func(c *config.Config) { c.Server.PublicURL = "ftp://x" }},
		{"oauth2.enforce_pkce", false, func(c *config.Config) { c.OAuth2.EnforcePKCE = "none" }},
		{"oauth2.signing_alg", false, func(c *config.Config) { c.OAuth2.SigningAlg = "HS256" }},
		{"oauth2.authorize_code_lifespan", false, func(c *config.Config) { c.OAuth2.AuthorizeCodeLifespan = time.Hour }},
		{"ui.product_name", true, func(c *config.Config) { c.UI.ProductName = " " }},
		{"ui.primary_color", true, func(c *config.Config) { c.UI.PrimaryColor = "purple" }},
		{"ui.primary_color", true, func(c *config.Config) { c.UI.PrimaryColor = "#f59e0b" }}, // 2.15:1 against white
		{"ui.logo_url", true, func(c *config.Config) { c.UI.LogoURL = "javascript:alert(1)" }},
		{"ui.support_url", true, func(c *config.Config) { c.UI.SupportURL = "help" }},
		{"ui.templates_dir", true, func(c *config.Config) { c.UI.TemplatesDir = "/no/such/dir" }},
		{"ui.default_locale", true, func(c *config.Config) { c.UI.DefaultLocale = "fr" }},
		{"ui.time_zone", true, func(c *config.Config) { c.UI.TimeZone = "Mars/Olympus" }},
		{"otp.length", false, func(c *config.Config) { c.OTP.Length = 4 }},
		{"otp.length", false, func(c *config.Config) { c.OTP.Length = 11 }},
		{"otp.max_attempts", false, func(c *config.Config) { c.OTP.MaxAttempts = 0 }},
		{"log.level", false, func(c *config.Config) { c.Log.Level = "loud" }},
		{"log.format", false, func(c *config.Config) { c.Log.Format = "xml" }},
		{"api.prefix", false, func(c *config.Config) { c.API.Prefixes, c.API.Prefix = nil, "user/" }},
		{"api.prefix", false, func(c *config.Config) { c.API.Prefix = "/user/2024-3" }},
		{"api.prefixes", false, func(c *config.Config) { c.API.Prefixes = nil }},
		{"api.prefixes", false, func(c *config.Config) { c.API.Prefixes = []string{"/user/2024-2", "user/"} }},
		{"api.prefixes", false, func(c *config.Config) { c.API.Prefixes = []string{"/a", "/a"} }},
		{"api.prefixes", false, func(c *config.Config) { c.API.Prefixes = []string{"/a", "/a/b"} }},
		{"mail.driver", false, func(c *config.Config) { c.Mail.Driver = "log" }},
		{"mail.smtp_url", false, func(c *config.Config) { c.Mail.SMTPURL = "http://x" }},
		{"mail.tls", false, func(c *config.Config) { c.Mail.TLS = "maybe" }},
		{"mail.smtp_max_connections", false, func(c *config.Config) { c.Mail.SMTPMaxConnections = 0 }},
		{"mail.smtp_max_connections", false, func(c *config.Config) { c.Mail.SMTPMaxConnections = 101 }},
		{"mail.outbox_lease", false, func(c *config.Config) { c.Mail.OutboxLease = time.Second }},
		{"mail.outbox_lease", false, func(c *config.Config) { c.Mail.OutboxLease = 10 * time.Minute }},
		{"linked_identity.id_token_max_age", false, func(c *config.Config) { c.LinkedIdentity.IDTokenMaxAge = 0 }},
		{"linked_identity.id_token_max_age", false, func(c *config.Config) { c.LinkedIdentity.IDTokenMaxAge = -time.Minute }},
		{"database.purge_interval", false, func(c *config.Config) { c.Database.PurgeInterval = time.Millisecond }},
		{"database.purge_interval", false, func(c *config.Config) { c.Database.PurgeInterval = -time.Minute }},
		{"database.purge_interval", false, func(c *config.Config) { c.Database.PurgeInterval = 25 * time.Hour }},
		{"database.query_timeout", false, func(c *config.Config) { c.Database.QueryTimeout = 0 }},
		{"database.query_timeout", false, func(c *config.Config) { c.Database.QueryTimeout = 50 * time.Millisecond }},
		{"database.query_timeout", false, func(c *config.Config) { c.Database.QueryTimeout = 61 * time.Second }},
		{"database.audit_retention", false, func(c *config.Config) { c.Database.AuditRetention = time.Hour }},
		{"database.audit_retention", false, func(c *config.Config) { c.Database.AuditRetention = -24 * time.Hour }},
		{"server.shutdown_grace", false, func(c *config.Config) { c.Server.ShutdownGrace = -time.Second }},
		{"server.shutdown_grace", false, func(c *config.Config) { c.Server.ShutdownGrace = config.MaxShutdownGrace + time.Second }},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate(tc.dev)
			if got := keysOf(keyErrors(t, err)); !reflect.DeepEqual(got, []string{tc.key}) {
				t.Fatalf("err = %v, want one KeyError, for %s", err, tc.key)
			}
			if !strings.Contains(err.Error(), config.EnvVar(tc.key)) {
				t.Fatalf("error %q does not name the env var", err)
			}
		})
	}
	off := valid()
	off.Database.PurgeInterval = 0
	if err := off.Validate(false); err != nil {
		t.Fatalf("database.purge_interval 0 (off) refused: %v", err)
	}
	dev := config.Default()
	if err := dev.Validate(true); err != nil {
		t.Fatalf("--dev defaults refused: %v", err)
	}
	noGrace := valid()
	noGrace.Server.ShutdownGrace = 0
	if err := noGrace.Validate(false); err != nil {
		t.Fatalf("server.shutdown_grace 0 refused: %v", err)
	}
}

// --dev starts from no shutdown grace; a value set in the file or the
// environment still wins over it.
func TestLoadOnto_DevDefaultsGiveWayToWhatIsSet(t *testing.T) {
	if got := config.Default().Server.ShutdownGrace; got != 5*time.Second {
		t.Fatalf("default server.shutdown_grace %s, want 5s", got)
	}
	cfg, err := config.LoadOnto(config.DevDefault(), "", noEnv)
	if err != nil || cfg.Server.ShutdownGrace != 0 {
		t.Fatalf("dev default server.shutdown_grace %s (%v), want 0", cfg.Server.ShutdownGrace, err)
	}
	cfg, err = config.LoadOnto(config.DevDefault(), "", envOf(map[string]string{"OTPSTEP_SERVER_SHUTDOWN_GRACE": "2s"}))
	if err != nil || cfg.Server.ShutdownGrace != 2*time.Second {
		t.Fatalf("OTPSTEP_SERVER_SHUTDOWN_GRACE=2s over the dev default gave %s (%v)", cfg.Server.ShutdownGrace, err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("server:\n  shutdown_grace: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.LoadOnto(config.DevDefault(), p, noEnv)
	if err != nil || cfg.Server.ShutdownGrace != time.Second {
		t.Fatalf("shutdown_grace: 1s in the file over the dev default gave %s (%v)", cfg.Server.ShutdownGrace, err)
	}
}

// keyErrors lists the *config.KeyError in err (a joined error), in order.
func keyErrors(t *testing.T, err error) []*config.KeyError {
	t.Helper()
	var out []*config.KeyError
	var walk func(error)
	walk = func(e error) {
		var ke *config.KeyError
		if errors.As(e, &ke) && ke == e {
			out = append(out, ke)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if w := errors.Unwrap(e); w != nil {
			walk(w)
			return
		}
		t.Fatalf("%T %q is not a *config.KeyError", e, e)
	}
	if err != nil {
		walk(err)
	}
	return out
}

func keysOf(kes []*config.KeyError) []string {
	var out []string
	for _, ke := range kes {
		out = append(out, ke.Key)
	}
	return out
}

// An operator with three mistakes sees three lines, each naming the key and
// its environment variable, in the order of the file.
func TestValidate_ReportsEveryErrorInOnePass(t *testing.T) {
	c := valid()
	c.Mail.TLS = "maybe"
	c.Server.Listen = "4444"
	c.OTP.Length = 4
	err := c.Validate(false)
	got := keyErrors(t, err)
	want := []string{"server.listen", "otp.length", "mail.tls"}
	if !reflect.DeepEqual(keysOf(got), want) {
		t.Fatalf("keys %v, want %v (err %v)", keysOf(got), want, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(want), err)
	}
	for i, key := range want {
		if !strings.Contains(lines[i], key) || !strings.Contains(lines[i], config.EnvVar(key)) {
			t.Errorf("line %d %q does not name %s and %s", i, lines[i], key, config.EnvVar(key))
		}
	}
}

// A key of an upstream is set in the file only: its error names no
// environment variable (OTPSTEP_UPSTREAMS[0]_NAME does not exist).
func TestValidate_UpstreamErrorsNameNoEnvVar(t *testing.T) {
	c := valid()
	c.Upstreams = []config.Upstream{{Name: "ok", Issuer: "https://x", ClientID: "c"}, {Name: "ok", Issuer: "ftp://x"}}
	err := c.Validate(false)
	got := keyErrors(t, err)
	want := []string{"upstreams[1].name", "upstreams[1].issuer", "upstreams[1].client_id"}
	if !reflect.DeepEqual(keysOf(got), want) {
		t.Fatalf("keys %v, want %v (err %v)", keysOf(got), want, err)
	}
	if strings.Contains(err.Error(), "OTPSTEP_UPSTREAMS") {
		t.Fatalf("error names an environment variable that does not exist: %v", err)
	}
}

// What the embedder supplies is not validated: the database (Options.DB or
// Store) and the mailer (Options.Mailer); the rest still is.
func TestValidateWith_WhatTheEmbedderSuppliesIsNotChecked(t *testing.T) {
	c := valid()
	c.Database.DSN = ""
	if err := c.ValidateWith(config.ValidateOptions{DatabaseSupplied: true}); err != nil {
		t.Fatalf("empty database.dsn with a supplied database: %v", err)
	}
	if got := keysOf(keyErrors(t, c.ValidateWith(config.ValidateOptions{}))); !reflect.DeepEqual(got, []string{"database.dsn"}) {
		t.Fatalf("empty database.dsn without a supplied database: %v", got)
	}
	c = valid()
	c.Mail = config.Mail{}
	if err := c.ValidateWith(config.ValidateOptions{MailerSupplied: true}); err != nil {
		t.Fatalf("empty mail.* with a supplied mailer: %v", err)
	}
	c.Mail.OutboxLease = time.Second
	c.OTP.Length = 4
	got := keysOf(keyErrors(t, c.ValidateWith(config.ValidateOptions{MailerSupplied: true, DatabaseSupplied: true})))
	if want := []string{"otp.length", "mail.outbox_lease"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

// A command that uses one part of the configuration (otpstep migrate: the
// database) validates only the sections of its scope, every problem of them.
func TestValidateWith_ScopeLimitsWhatIsChecked(t *testing.T) {
	c := config.Default() // mail.driver log and no secret: refused outside --dev
	c.Database.MaxOpenConns = -1
	c.Database.PurgeInterval = time.Millisecond
	got := keysOf(keyErrors(t, c.ValidateWith(config.ValidateOptions{Scope: config.ScopeDatabase})))
	if want := []string{"database.max_open_conns", "database.purge_interval"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

// Load reports every key it cannot read at once: unknown keys, values of
// the wrong type in the file and in the environment.
func TestLoad_ReportsEveryErrorInOnePass(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("server:\n  listne: x\notp:\n  ttl: forever\n  return_in_response: maybe\nlinked_identity:\n  reauth_max_age: 1y\nupstreams:\n  - name: a\n    issuer_url: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(p, envOf(map[string]string{"OTPSTEP_OTP_LENGTH": "six", "OTPSTEP_DATABASE_MIGRATE_ON_START": "sometimes"}))
	got := keysOf(keyErrors(t, err))
	want := []string{"server.listne", "database.migrate_on_start", "otp.length", "otp.ttl", "otp.return_in_response", "linked_identity.reauth_max_age", "upstreams[0].issuer_url"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v (err %v)", got, want, err)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "otp.length") && !strings.Contains(line, "OTPSTEP_OTP_LENGTH") {
			t.Errorf("%q does not name OTPSTEP_OTP_LENGTH", line)
		}
		if strings.Contains(line, "otp.ttl") && !strings.Contains(line, `"forever"`) {
			t.Errorf("%q does not quote the value", line)
		}
	}
}

// Environment values are typed as the file's are: comma-separated lists,
// true/false/1/0, whole numbers, durations.
func TestLoad_EnvValuesAreTyped(t *testing.T) {
	cfg, err := config.Load("", envOf(map[string]string{
		"OTPSTEP_LINKED_IDENTITY_PROVIDERS":  " a ,b,, c",
		"OTPSTEP_LINKED_IDENTITY_REQUIRED":   "1",
		"OTPSTEP_SERVER_TRUST_FORWARDED_FOR": "TRUE",
		"OTPSTEP_OTP_MAX_ATTEMPTS":           "7",
		"OTPSTEP_MAIL_OUTBOX_LEASE":          "1m30s",
		"OTPSTEP_SECRETS_SYSTEM":             "0123",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.LinkedIdentity.Providers, []string{"a", "b", "c"}) || !cfg.LinkedIdentity.Required ||
		!cfg.Server.TrustForwardedFor || cfg.OTP.MaxAttempts != 7 || cfg.Mail.OutboxLease != 90*time.Second || cfg.Secrets.System != "0123" {
		t.Fatalf("got %+v", cfg)
	}
	for key, v := range map[string]string{"otp.max_attempts": "7.5", "otp.length": "0x10", "linked_identity.required": "maybe"} {
		_, err := config.Load("", envOf(map[string]string{config.EnvVar(key): v}))
		if got := keysOf(keyErrors(t, err)); !reflect.DeepEqual(got, []string{key}) {
			t.Errorf("%s=%s: keys %v (%v)", config.EnvVar(key), v, got, err)
		}
	}
}

// Errors come in the order of the file because Config declares its keys in
// that order: config.example.yaml names them in the order Keys walks them.
func TestExampleFileListsTheKeysInTheirDeclarationOrder(t *testing.T) {
	raw, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	last, lastKey := -1, ""
	for _, key := range config.Keys() {
		needle := config.EnvVar(key)
		if config.FileOnly(key) {
			needle = "\n" + key + ":"
		}
		at := strings.Index(string(raw), needle)
		if at < last {
			t.Errorf("config.example.yaml documents %s before %s; Config declares it after", key, lastKey)
		}
		last, lastKey = at, key
	}
}

// Embedded, server.public_url is the host's: standalone otpstep's default
// is refused, and the dev relaxations are named as the embedder knows them.
func TestValidateWith_Embedded(t *testing.T) {
	c := valid()
	err := c.ValidateWith(config.ValidateOptions{Embedded: true, DevSwitch: "Options.Dev"})
	if got := keysOf(keyErrors(t, err)); !reflect.DeepEqual(got, []string{"server.public_url"}) || !strings.Contains(err.Error(), "embedded") {
		t.Fatalf("default public_url embedded: %v", err)
	}
	c.Server.PublicURL = "http://host.example.com"
	c.Mail.Driver = "log"
	err = c.ValidateWith(config.ValidateOptions{Embedded: true, DevSwitch: "Options.Dev"})
	if got := keysOf(keyErrors(t, err)); !reflect.DeepEqual(got, []string{"server.public_url", "mail.driver"}) ||
		strings.Count(err.Error(), "Options.Dev") != 2 || strings.Contains(err.Error(), "--dev") {
		t.Fatalf("dev relaxations embedded: %v", err)
	}
	c.Server.PublicURL = "https://host.example.com"
	c.Mail.Driver = "smtp"
	if err := c.ValidateWith(config.ValidateOptions{Embedded: true}); err != nil {
		t.Fatalf("the host's public_url: %v", err)
	}
}

// api.prefixes lists every prefix the user API is served under; api.prefix,
// the form before it, still sets one; both set is refused naming both.
func TestAPIPrefixes_LoadAndValidate(t *testing.T) {
	load := func(t *testing.T, yaml string, env map[string]string) config.Config {
		t.Helper()
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(p, envOf(env))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Secrets.System = strings.Repeat("s", config.MinSecretLength)
		return cfg
	}
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		want    []string
		wantErr string
	}{
		{name: "default", yaml: "log:\n  level: info\n", want: []string{"/user/2024-2", "/user/2024-3"}},
		{name: "prefixes in the file", yaml: "api:\n  prefixes: [/v1]\n", want: []string{"/v1"}},
		{name: "prefix in the file", yaml: "api:\n  prefix: /user/2024-3\n", want: []string{"/user/2024-3"}},
		{name: "prefix in the environment", yaml: "log:\n  level: info\n", env: map[string]string{"OTPSTEP_API_PREFIX": "/x"}, want: []string{"/x"}},
		{name: "prefixes in the environment", yaml: "log:\n  level: info\n", env: map[string]string{"OTPSTEP_API_PREFIXES": "/a, /b"}, want: []string{"/a", "/b"}},
		{name: "both in the file", yaml: "api:\n  prefix: /x\n  prefixes: [/y]\n", wantErr: "api.prefix and api.prefixes are both set"},
		{name: "file and environment", yaml: "api:\n  prefixes: [/y]\n", env: map[string]string{"OTPSTEP_API_PREFIX": "/x"}, wantErr: "api.prefix and api.prefixes are both set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := load(t, tc.yaml, tc.env)
			err := cfg.Validate(true)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.API.Paths(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("paths %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoad_ScopeDescriptionsFromTheEnvironmentAsJSON(t *testing.T) {
	cfg, err := config.Load("", envOf(map[string]string{"OTPSTEP_UI_SCOPE_DESCRIPTIONS": `{"shop:orders":"See your orders"}`,
		"OTPSTEP_UI_PRIMARY_COLOR": "#5b21b6", "OTPSTEP_UI_TIME_ZONE": "Europe/Berlin"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UI.ScopeDescriptions["shop:orders"] != "See your orders" || cfg.UI.PrimaryColor != "#5b21b6" || cfg.UI.Location().String() != "Europe/Berlin" {
		t.Fatalf("ui = %+v", cfg.UI)
	}
	if _, err := config.Load("", envOf(map[string]string{"OTPSTEP_UI_SCOPE_DESCRIPTIONS": `shop:orders=x`})); err == nil ||
		!strings.Contains(err.Error(), "ui.scope_descriptions") {
		t.Fatalf("a non-JSON value: %v", err)
	}
}
