package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the admin connection

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/storage"
)

// env is what scenarios run against.
type env struct {
	baseURL      string
	client       *http.Client
	clientID     string
	clientSecret string

	// Plugin is the in-process server; nil with -url.
	Plugin *plugin.Plugin
	// dsn is the throwaway database (floors connect to it with pgx), secret
	// the server's secrets.system (floors seal outbox mail with it), peer
	// the SMTP server the server's OTP mail goes to; all unset with -url.
	dsn    string
	secret string
	peer   *smtpPeer
	// maxOpenConns is the server's database pool size (floors use as many).
	maxOpenConns int
	// Set up on first use by the scenarios that need them (users.go).
	users     []benchUser
	appClient *storage.Client
	floorPool *pgxpool.Pool
	cleanups  *[]func()
	f         flags

	where           string // for the header line
	postgresVersion string
}

// newEnv starts the in-process server on a throwaway database, or points at
// -url. cleanup, when not nil, must run even when err is not nil.
func newEnv(ctx context.Context, f flags) (e *env, cleanup func(), err error) {
	e = &env{client: newHTTPClient(f.workers, f.timeout), f: f}
	if f.url != "" {
		if f.clientID == "" || f.clientSecret == "" {
			return nil, nil, errors.New("-url needs -client-id and -client-secret (a confidential client with the client_credentials grant)")
		}
		e.baseURL = strings.TrimSuffix(f.url, "/")
		e.clientID, e.clientSecret = f.clientID, f.clientSecret
		e.where = "external server at " + e.baseURL
		e.postgresVersion = "unknown (external server)"
		return e, nil, nil
	}

	var cleanups []func()
	e.cleanups = &cleanups
	cleanup = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}

	dsn, version, drop, err := createDatabase(ctx, f.postgres)
	if err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, drop)
	e.postgresVersion = version
	e.dsn = dsn
	// storage.Open's default pool size for PostgreSQL, unless -max-open-conns.
	e.maxOpenConns = f.maxOpenConns
	if e.maxOpenConns <= 0 {
		e.maxOpenConns = max(10, 4*runtime.GOMAXPROCS(0))
	}

	store, err := storage.Open(ctx, dsn, storage.Options{MaxOpenConns: f.maxOpenConns})
	if err != nil {
		return nil, cleanup, fmt.Errorf("open storage: %w", err)
	}
	cleanups = append(cleanups, func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		return nil, cleanup, fmt.Errorf("migrate: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, cleanup, err
	}
	e.baseURL = "http://" + ln.Addr().String()

	cfg := plugin.DefaultConfig()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Server.PublicURL = e.baseURL
	cfg.Database.DSN = dsn
	cfg.Database.MigrateOnStart = false
	cfg.Database.MaxOpenConns = f.maxOpenConns
	cfg.Secrets.System, err = randomHex(32)
	if err != nil {
		_ = ln.Close()
		return nil, cleanup, err
	}
	e.secret = cfg.Secrets.System
	// OTP scenarios spread their requests over many users (-users), but a run
	// still sends each user more codes than the default 5 an hour; the check
	// is a comparison with the counter the same statement returns, so the
	// SQL is what it is with the default.
	cfg.OTP.MaxSendsPerHour = 1 << 30
	// A purge pass at a random moment of a run would move its figures; a
	// run lasts minutes and purges nothing worth measuring in them.
	cfg.Database.PurgeInterval = 0
	// OTP mail goes through the outbox, whose dispatcher (p.Start) delivers
	// it with otpstep's SMTP mailer to an SMTP peer in this process; Dev
	// relaxes validation only.
	if e.peer, err = startSMTPPeer(); err != nil {
		_ = ln.Close()
		return nil, cleanup, fmt.Errorf("smtp peer: %w", err)
	}
	cleanups = append(cleanups, e.peer.close)
	mailer, err := e.newMailer(cfg.Mail.SMTPMaxConnections)
	if err != nil {
		_ = ln.Close()
		return nil, cleanup, err
	}
	p, err := plugin.New(ctx, plugin.Options{Config: cfg, Dev: true, Store: store, Mailer: mailer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		_ = ln.Close()
		return nil, cleanup, fmt.Errorf("plugin: %w", err)
	}
	cleanups = append(cleanups, func() { _ = p.Close() })
	if err := p.Start(ctx); err != nil {
		_ = ln.Close()
		return nil, cleanup, fmt.Errorf("plugin start: %w", err)
	}
	e.Plugin = p

	r := mux.NewRouter()
	p.Mount(r)
	srv := &http.Server{
		Handler:           serverLabel(r),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	cleanups = append(cleanups, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})

	c, secret, err := p.Provider.CreateClient(ctx, provider.NewClient{
		Name:       "otpstep bench",
		GrantTypes: []string{"client_credentials"},
		Scopes:     []string{"bench"},
	})
	if err != nil {
		return nil, cleanup, fmt.Errorf("create client: %w", err)
	}
	if secret == "" {
		return nil, cleanup, errors.New("create client: no generated secret returned")
	}
	e.clientID, e.clientSecret = c.ID, secret
	e.where = "in-process otpstep (net/http, same process as the load generator) on " + e.baseURL
	return e, cleanup, nil
}

// newMailer is otpstep's SMTP mailer to the bench's peer.
func (e *env) newMailer(connections int) (*mail.SMTP, error) {
	m, err := mail.NewSMTP(mail.SMTPConfig{URL: e.peer.url(), TLS: mail.TLSNone, From: "otpstep <no-reply@bench.localhost>",
		Timeout: 30 * time.Second, MaxConnections: connections})
	if err != nil {
		return nil, fmt.Errorf("smtp mailer: %w", err)
	}
	return m, nil
}

// serverLabel tags the server's handler goroutines so a -cpuprofile can
// separate the server (-tagfocus side=server) from vegeta, which runs in this
// process too, and one endpoint from another (-tagfocus path=/oauth2/token).
func serverLabel(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.Do(r.Context(), pprof.Labels("side", "server", "path", labelPath(r.URL.Path)), func(ctx context.Context) {
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	})
}

// labelPath is path with its UUID segments (PUT /sessions/{sessionId})
// replaced by {id}, so that one endpoint is one label value.
func labelPath(path string) string {
	if !strings.Contains(path, "-") {
		return path
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if len(s) == 36 && uuid.Validate(s) == nil {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

// createDatabase creates otpstep_bench_<random> on the server at base with
// the server's own settings (synchronous_commit included: the bench measures
// durable commits), and returns its DSN, the server's version and a func
// that drops it.
func createDatabase(ctx context.Context, base string) (dsn, version string, drop func(), err error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", nil, fmt.Errorf("%s: %q is not a postgres:// URL", PostgresEnv, base)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", "", nil, fmt.Errorf("PostgreSQL at %s: %w", u.Redacted(), err)
	}
	defer admin.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := admin.PingContext(pctx); err != nil {
		return "", "", nil, fmt.Errorf("PostgreSQL not reachable at %s (set %s or -postgres to a server the bench may create databases on): %w",
			u.Redacted(), PostgresEnv, err)
	}
	var sc string
	if err := admin.QueryRowContext(pctx, "SELECT current_setting('server_version'), current_setting('synchronous_commit')").Scan(&version, &sc); err != nil {
		return "", "", nil, fmt.Errorf("PostgreSQL at %s: %w", u.Redacted(), err)
	}
	version += " synchronous_commit=" + sc
	suffix, err := randomHex(8)
	if err != nil {
		return "", "", nil, err
	}
	name := "otpstep_bench_" + suffix
	if _, err := admin.ExecContext(pctx, "CREATE DATABASE "+name); err != nil {
		return "", "", nil, fmt.Errorf("create database %s on %s: %w", name, u.Redacted(), err)
	}
	drop = func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			fmt.Printf("bench: drop database %s: %v\n", name, err)
			return
		}
		defer db.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Printf("bench: drop database %s: %v\n", name, err)
		}
	}
	dbURL := *u
	dbURL.Path = "/" + name
	return dbURL.String(), version, drop, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
