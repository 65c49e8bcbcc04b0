package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/plugin"
)

func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := a.loadConfig(plugin.ScopeServe)
			if err != nil {
				return err
			}
			// Bind first: a taken port fails before the database is
			// touched or the --dev banner printed.
			ln, err := net.Listen("tcp", cfg.Server.Listen)
			if err != nil {
				return fmt.Errorf("server.listen: %w", err)
			}
			defer ln.Close()
			log := a.logger(cfg)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			// Tracing is off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
			tp, err := plugin.TracerProviderFromEnv(ctx, a.lookupEnv)
			if err != nil {
				return err
			}
			defer func() {
				// After Shutdown's flush: whatever the last lines added.
				flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := plugin.ShutdownTracerProvider(flush, tp); err != nil {
					log.Warn("tracing: exporting the last spans failed", "error", err)
				}
			}()
			p, err := plugin.New(ctx, plugin.Options{Config: cfg, Dev: a.dev, Logger: log, Registerer: reg, Gatherer: reg, TracerProvider: tp})
			if err != nil {
				return err
			}
			defer p.Close()
			// The background work outlives the signal: Shutdown stops it
			// after the drain, so mail of the last requests still goes out.
			if err := p.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			if a.dev {
				if err := a.printDemo(ctx, p, cfg); err != nil {
					return fmt.Errorf("demo data: %w", err)
				}
			}
			r := mux.NewRouter()
			p.Mount(r)
			srv := &http.Server{
				Handler:           r,
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       120 * time.Second,
				MaxHeaderBytes:    64 << 10,
			}
			errc := make(chan error, 2)
			go func() { errc <- srv.Serve(ln) }()
			admin, err := serveAdmin(cfg.Server.AdminListen, p.AdminHandler(), errc)
			if err != nil {
				_ = srv.Close()
				return err
			}
			if admin != nil {
				// Up with the public listener, down after it: readiness
				// answers 503 through the shutdown's grace and drain.
				defer shutdownAdmin(admin, cfg.Server.ShutdownTimeout)
				log.Info("otpstep admin listener (metrics, health, pprof when server.admin_pprof)", "addr", cfg.Server.AdminListen)
			}
			log.Info("otpstep listening", "addr", ln.Addr().String(), "issuer", cfg.Server.PublicURL, "database", p.Store().Dialect())
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			// A second signal ends the grace at once.
			again, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := p.Shutdown(again, srv); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}

// serveAdmin serves h on addr (server.admin_listen; "" serves nothing and
// returns nil), sending Serve's end to errc.
func serveAdmin(addr string, h http.Handler, errc chan<- error) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.admin_listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// pprof's profile and trace run for their seconds parameter (30s by default).
		WriteTimeout:   90 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	go func() { errc <- srv.Serve(ln) }()
	return srv, nil
}

// shutdownAdmin stops the admin listener, waiting at most timeout for the
// requests it is serving (a scrape, a profile).
func shutdownAdmin(srv *http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
}
