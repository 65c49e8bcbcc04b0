package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/config"
)

func TestNew_ValidationNamesTheField(t *testing.T) {
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	valid := func() plugin.Options {
		cfg := plugin.DefaultConfig()
		cfg.Secrets.System = strings.Repeat("s", 32)
		cfg.Database.DSN = "sqlite://" + filepath.Join(t.TempDir(), "x.db")
		cfg.Server.PublicURL = "https://host.example.com"
		return plugin.Options{Config: cfg, OAuth2: host, Mailer: plugintest.NewMailbox()}
	}
	for _, tc := range []struct {
		name   string
		change func(*plugin.Options)
		want   string // the field or key the error names
	}{
		{"DB and Store", func(o *plugin.Options) { o.Store = plugintest.NewStore(t, "sqlite"); o.DB = openGormSQLite(t) }, "Options.DB"},
		{"TokenSession without OAuth2", func(o *plugin.Options) { o.OAuth2 = nil; o.TokenSession = func() fosite.Session { return nil } }, "Options.TokenSession"},
		{"SessionFromRequest without OAuth2", func(o *plugin.Options) {
			o.OAuth2 = nil
			o.SessionFromRequest = func(*http.Request) string { return "" }
		}, "Options.SessionFromRequest"},
		{"SecondFactorRequired without OAuth2", func(o *plugin.Options) {
			o.OAuth2 = nil
			o.SecondFactorRequired = func(fosite.AuthorizeRequester) bool { return true }
		}, "Options.SecondFactorRequired"},
		{"an authorize path that is not local", func(o *plugin.Options) { o.AuthorizePaths = []string{"/oauth2/auth", "https://x/auth"} }, "Options.AuthorizePaths[1]"},
		{"empty authorize paths", func(o *plugin.Options) { o.AuthorizePaths = []string{} }, "Options.AuthorizePaths"},
		{"short secret", func(o *plugin.Options) { o.Config.Secrets.System = "short" }, "secrets.system"},
		{"bad api prefix", func(o *plugin.Options) { o.Config.API.Prefixes, o.Config.API.Prefix = nil, "user/" }, "api.prefix"},
		{"log mailer outside dev", func(o *plugin.Options) { o.Mailer = nil; o.Config.Mail.Driver = "log" }, "mail.driver"},
		{"no DSN and no DB", func(o *plugin.Options) { o.Config.Database.DSN = "" }, "database.dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid()
			tc.change(&opts)
			_, err := plugin.New(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
			var optErr *plugin.OptionError
			var keyErr *config.KeyError
			if !errors.As(err, &optErr) && !errors.As(err, &keyErr) {
				t.Fatalf("err %T is neither *plugin.OptionError nor *config.KeyError", err)
			}
		})
	}
	t.Run("valid, with a Mailer and no mail settings", func(t *testing.T) {
		opts := valid()
		opts.Config.Mail = config.Mail{TLS: "starttls", From: "x@example.com"}
		p, err := plugin.New(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("valid, with a DB and no DSN", func(t *testing.T) {
		opts := valid()
		opts.Config.Database.DSN = ""
		opts.DB = openGormSQLite(t)
		p, err := plugin.New(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		// Close leaves the host's pool open.
		sqlDB, _ := opts.DB.DB()
		if err := sqlDB.Ping(); err != nil {
			t.Fatalf("the host's pool was closed: %v", err)
		}
	})
}

func TestNewAndStart_NameTheMigrationsAnUnmigratedDatabaseLacks(t *testing.T) {
	// database.migrate_on_start off and nothing migrated: instead of the first
	// missing table or function, New (standalone: it reads its signing keys)
	// or Start (embedded, where New needs no table) names the migrations and
	// what applies them; after Migrate, Start starts.
	config := func() plugin.Config {
		cfg := plugin.DefaultConfig()
		cfg.Secrets.System = strings.Repeat("s", 32)
		cfg.Database.DSN = "sqlite://" + filepath.Join(t.TempDir(), "x.db")
		cfg.Server.PublicURL = "https://host.example.com"
		cfg.Database.MigrateOnStart = false
		return cfg
	}
	wantNamed := func(t *testing.T, what string, err error) {
		t.Helper()
		for _, want := range []string{"00001_init.sql", "database.migrate_on_start", "otpstep migrate up"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s on an unmigrated database: err = %v, want it to name %q", what, err, want)
			}
		}
	}

	_, err := plugin.New(context.Background(), plugin.Options{Config: config(), Mailer: plugintest.NewMailbox()})
	wantNamed(t, "New (standalone)", err)

	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	p, err := plugin.New(context.Background(), plugin.Options{Config: config(), OAuth2: host, Mailer: plugintest.NewMailbox()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	wantNamed(t, "Start (embedded)", p.Start(context.Background()))
	if err := p.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start after Migrate: %v", err)
	}
}

// What the embedder hands over is not validated, and nothing is made up to
// pass validation: with Options.Store database.dsn may be empty, with
// Options.Mailer every mail.* key but the outbox's may be; the rest of the
// configuration still is validated, every problem reported.
func TestNew_WhatTheEmbedderSuppliesIsNotValidated(t *testing.T) {
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			store := plugintest.NewStore(t, dialect)
			opts := func() plugin.Options {
				cfg := plugin.DefaultConfig()
				cfg.Secrets.System = strings.Repeat("s", 32)
				cfg.Server.PublicURL = "https://host.example.com"
				cfg.Database.DSN = ""
				cfg.Database.MigrateOnStart = false
				return plugin.Options{Config: cfg, Store: store, OAuth2: host, Mailer: plugintest.NewMailbox()}
			}
			o := opts()
			o.Config.Mail = config.Mail{}
			p, err := plugin.New(context.Background(), o)
			if err != nil {
				t.Fatalf("Store, no database.dsn, Mailer, no mail.*: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}

			o = opts()
			o.Mailer = nil
			o.Config.Mail.Driver, o.Config.Mail.SMTPURL = "smtp", "http://mail.example.com"
			o.Config.OTP.Length = 4
			_, err = plugin.New(context.Background(), o)
			var keys []string
			for _, line := range strings.Split(fmt.Sprint(err), "\n") {
				var ke *config.KeyError
				if !errors.As(err, &ke) {
					t.Fatalf("err %v is not a *config.KeyError", err)
				}
				keys = append(keys, strings.Fields(line)[1])
			}
			if want := []string{"otp.length", "mail.smtp_url"}; strings.Join(keys, " ") != strings.Join(want, " ") {
				t.Fatalf("err %v names %v, want %v", err, keys, want)
			}
		})
	}
}

// TestNew_ModeIsDecidedOnceByOAuth2: Options.OAuth2 alone makes the plugin
// embedded; the provider says so (Provider.Embedded) and the web layer and
// the plugin ask it instead of keeping a mode of their own. Embedded, the
// routes are the second factor's only (no authorize endpoint); standalone,
// Handler refuses a prefix.
func TestNew_ModeIsDecidedOnceByOAuth2(t *testing.T) {
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	for _, embedded := range []bool{true, false} {
		t.Run(fmt.Sprint("embedded=", embedded), func(t *testing.T) {
			cfg := plugin.DefaultConfig()
			cfg.Secrets.System = strings.Repeat("s", 32)
			cfg.Database.DSN = "sqlite://" + filepath.Join(t.TempDir(), "x.db")
			cfg.Server.PublicURL = "https://host.example.com"
			opts := plugin.Options{Config: cfg, Mailer: plugintest.NewMailbox()}
			if embedded {
				opts.OAuth2 = host
			}
			p, err := plugin.New(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.Provider.Embedded(); got != embedded {
				t.Fatalf("Provider.Embedded() = %v, want %v", got, embedded)
			}
			rec := httptest.NewRecorder()
			p.Handler("").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/auth", nil))
			if authorizeServed := rec.Code != http.StatusNotFound; authorizeServed == embedded {
				t.Fatalf("GET /oauth2/auth = %d (embedded %v)", rec.Code, embedded)
			}
		})
	}
}
