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
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
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
