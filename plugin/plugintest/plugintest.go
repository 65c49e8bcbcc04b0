// Package plugintest starts a real otpstep server for tests: a listener on
// loopback, a throwaway database (SQLite or PostgreSQL), the full router.
package plugintest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// Clock is a settable clock; it starts at the real time and only moves when
// told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a Clock at the real time, for a plugin a test builds itself
// (a host's, plugin.Options.Clock); Start makes its own.
func NewClock() *Clock { return &Clock{now: time.Now()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Server is a running otpstep.
type Server struct {
	URL    string
	Plugin *plugin.Plugin
	Store  *storage.Store
	Clock  *Clock
	HTTP   *httptest.Server
	// Logs is what the server logged (also on stderr with OTPSTEP_TEST_LOG).
	Logs *Logs
	// Admin serves Plugin.AdminHandler (the admin listener: /metrics,
	// /health/ready, pprof) at AdminURL; Registry holds the metrics.
	Admin    *httptest.Server
	AdminURL string
	Registry *prometheus.Registry
}

// Dialects are the databases every integration test runs on.
var Dialects = []string{"sqlite", "postgres"}

// NewStore opens a migrated throwaway store of the dialect.
func NewStore(t *testing.T, dialect string) *storage.Store {
	t.Helper()
	switch dialect {
	case "sqlite":
		return storagetest.NewSQLite(t)
	case "postgres":
		return storagetest.NewPostgres(t)
	}
	t.Fatalf("unknown dialect %q", dialect)
	return nil
}

// Start runs a server on a fresh database of the dialect. mutate may change
// the configuration before the plugin is built.
func Start(t *testing.T, dialect string, mutate func(*plugin.Config)) *Server {
	t.Helper()
	return StartOn(t, NewStore(t, dialect), mutate)
}

// StartOn runs a server on an existing store.
func StartOn(t *testing.T, store *storage.Store, mutate func(*plugin.Config)) *Server {
	t.Helper()
	return StartOnWith(t, store, mutate, nil)
}

// StartOnWith is StartOn with options: withOptions may change the
// plugin.Options (a Logger, a TracerProvider) before the plugin is built.
func StartOnWith(t *testing.T, store *storage.Store, mutate func(*plugin.Config), withOptions func(*plugin.Options)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	cfg := plugin.DefaultConfig()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Server.PublicURL = url
	cfg.Secrets.System = strings.Repeat("test-secret-", 4)
	cfg.Database.MigrateOnStart = false
	cfg.Mail.Driver = "log"
	// No purge at a random moment of a test that moves the clock; a test of
	// the purge sets an interval.
	cfg.Database.PurgeInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	clock := &Clock{now: time.Now()}
	logs := &Logs{}
	var out io.Writer = logs
	if os.Getenv("OTPSTEP_TEST_LOG") != "" {
		out = io.MultiWriter(logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	opts := plugin.Options{Config: cfg, Dev: true, Store: store, Logger: logger, Clock: clock.Now, Registerer: reg, Gatherer: reg}
	if withOptions != nil {
		withOptions(&opts)
	}
	p, err := plugin.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	p.Mount(r)
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	admin := httptest.NewServer(p.AdminHandler())
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		admin.Close()
		_ = p.Close()
	})
	return &Server{URL: url, Plugin: p, Store: p.Store(), Clock: clock, HTTP: srv, Logs: logs, Admin: admin, AdminURL: admin.URL, Registry: reg}
}

// NoRedirectClient is a cookie-keeping client that stops at every redirect,
// so a test can follow the flow step by step.
func NoRedirectClient(jar http.CookieJar) *http.Client {
	return &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
