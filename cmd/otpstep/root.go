package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/plugin"
)

// app carries what every subcommand shares: the flags and the streams.
type app struct {
	out, errOut io.Writer
	lookupEnv   func(string) (string, bool)
	configPath  string
	dev         bool
}

func newRootCommand(out, errOut io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	a := &app{out: out, errOut: errOut, lookupEnv: lookupEnv}
	root := &cobra.Command{
		Use:           "otpstep",
		Short:         "OpenID Connect provider with an emailed one-time-password second factor",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "YAML configuration file (see config.example.yaml)")
	root.PersistentFlags().BoolVar(&a.dev, "dev", false, "development mode: plain http, mail to the log, a generated secret kept in .otpstep-dev-secret, demo user and client")
	root.AddCommand(a.serveCommand(), a.migrateCommand(), a.clientsCommand(), a.usersCommand(), a.keysCommand(), a.auditCommand(), a.identitiesCommand(), a.totpCommand(), a.purgeCommand(), a.versionCommand())
	return root
}

// loadConfig reads the file and environment and validates the keys of
// scope (what the command uses); with --dev it starts from the development
// defaults and fills secrets.system from a generated file kept beside the
// working directory.
func (a *app) loadConfig(scope plugin.Scope) (plugin.Config, error) {
	defaults := plugin.DefaultConfig()
	if a.dev {
		defaults = plugin.DevDefaultConfig()
	}
	cfg, loadErr := plugin.LoadConfigOnto(defaults, a.configPath, a.lookupEnv)
	var keyErr *plugin.KeyError
	if loadErr != nil && !errors.As(loadErr, &keyErr) {
		return cfg, loadErr // no file, or not YAML
	}
	// A key that could not be read keeps its default: the rest is still
	// validated below, so that every mistake is reported at once.

	// --dev: a listen address changed without a public URL is where the
	// server is reached; the default public URL would name the wrong port.
	if a.dev && cfg.Server.Listen != defaults.Server.Listen && cfg.Server.PublicURL == defaults.Server.PublicURL {
		cfg.Server.PublicURL = devPublicURL(cfg.Server.Listen)
	}
	if a.dev && cfg.Secrets.System == "" && loadErr == nil {
		secret, err := devSecret(".otpstep-dev-secret")
		if err != nil {
			return cfg, fmt.Errorf("--dev secret: %w", err)
		}
		cfg.Secrets.System = secret
	}
	if err := errors.Join(loadErr, cfg.ValidateWith(plugin.ValidateOptions{Dev: a.dev, Scope: scope})); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// devPublicURL is http://host:port of a listen address; a wildcard host
// (0.0.0.0 or empty: 127.0.0.1, :: : localhost) is reached on loopback. A
// listen address that is not host:port is returned as it is, for
// validation to name server.listen.
func devPublicURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func devSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= plugin.MinSecretLength {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(raw)
	if err := os.WriteFile(filepath.Clean(path), []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

func (a *app) logger(cfg plugin.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(a.errOut, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(a.errOut, opts)
	}
	// trace_id and span_id on the lines of a traced request.
	return slog.New(plugin.LogHandlerWithTrace(h))
}

// openPlugin builds an instance for a management command: it validates
// ScopeManage only and sends no mail.
func (a *app) openPlugin(ctx context.Context) (*plugin.Plugin, plugin.Config, error) {
	cfg, err := a.loadConfig(plugin.ScopeManage)
	if err != nil {
		return nil, cfg, err
	}
	p, err := plugin.New(ctx, plugin.Options{Config: cfg, Dev: a.dev, Scope: plugin.ScopeManage, Logger: a.logger(cfg)})
	return p, cfg, err
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
