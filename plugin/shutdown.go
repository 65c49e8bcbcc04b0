package plugin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Shutdown takes srv, the server the plugin is mounted on, and the
// plugin's background work down in this order, so that no request and no
// mail is lost on the way:
//
//  1. Grace: readiness (/health/ready) answers 503 and every answer of the
//     plugin's routes says Connection: close, while requests are still
//     served as usual, for server.shutdown_grace, so a load balancer stops
//     sending and clients open their next connection elsewhere. ctx ending
//     cuts the grace short (otpstep serve: a second signal), so pass one
//     that is still live, not the context the first signal ended.
//  2. Drain: srv.Shutdown closes the listener and waits for the requests in
//     flight, within server.shutdown_timeout. Requests still running then
//     are cut off (srv.Close) and logged, their count and the method and
//     path of each; that is not an error. The outbox keeps sending
//     meanwhile, so mail of requests that finish during the drain goes out.
//  3. Mail: the outbox dispatcher stops claiming, then one last pass sends
//     what is due within what is left of server.shutdown_timeout. What it
//     cannot send stays queued for another instance or the next start.
//  4. Traces: Options.TracerProvider, when it can (an SDK provider),
//     exports the spans it still buffers, within the same budget.
//
// It returns srv.Shutdown's error other than its timeout (a listener that
// failed to close). Start refuses afterwards; Close still closes the
// storage New opened. An embedding host passes its own server: its other
// routes drain with it, and its own readiness should answer 503 once
// Draining is true.
func (p *Plugin) Shutdown(ctx context.Context, srv *http.Server) error {
	cfg := p.Provider.Config().Server
	inflight := p.web.InFlight()
	inflight.Drain()
	p.log.Info("shutting down: not ready, still serving during the grace", slog.Duration("grace", cfg.ShutdownGrace))
	if cfg.ShutdownGrace > 0 {
		grace := time.NewTimer(cfg.ShutdownGrace)
		select {
		case <-grace.C:
		case <-ctx.Done():
			grace.Stop()
		}
	}

	// One budget for the drain and the outbox's last pass.
	budget, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Last, within what is left of the budget: the spans of the drained
	// requests and of the last pass's sends.
	defer func() {
		if err := p.flushTracing(budget); err != nil {
			p.log.Warn("shutting down: flushing the trace spans failed", slog.Any("error", err))
		}
	}()
	p.log.Info("shutting down: draining", slog.Int("in_flight", len(inflight.Requests())), slog.Duration("budget", cfg.ShutdownTimeout))
	var serveErr error
	switch err := srv.Shutdown(budget); {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		cut := inflight.Requests()
		_ = srv.Close()
		names := make([]string, len(cut))
		for i, r := range cut {
			names[i] = r.String()
		}
		p.log.Warn("shutting down: drain timed out, requests cut off",
			slog.Int("count", len(cut)), slog.Any("requests", names), slog.Duration("budget", cfg.ShutdownTimeout))
	default:
		serveErr = err
	}

	if !p.stopBackground(budget) {
		p.log.Warn("shutting down: the outbox had not stopped when the budget ended (a send still running is finished if the process lives on, else its message goes again after its lease); no last pass")
		return serveErr
	}
	done := make(chan struct{})
	var (
		sent     int
		flushErr error
	)
	go func() {
		defer close(done)
		sent, flushErr = p.Provider.FlushOutbox(budget)
	}()
	const cutOff = "shutting down: outbox last pass cut off by the budget; unsent mail stays queued for another instance or the next start"
	switch {
	case !waitFor(budget, done):
		p.log.Warn(cutOff) // sent may not be read while the pass runs
	case budget.Err() != nil:
		p.log.Warn(cutOff, slog.Int("sent", sent))
	case flushErr != nil:
		p.log.Error("shutting down: outbox last pass failed; unsent mail stays queued", slog.Int("sent", sent), slog.Any("error", flushErr))
	default:
		p.log.Info("shutting down: outbox last pass done", slog.Int("sent", sent))
	}
	return serveErr
}

// Draining reports whether Shutdown has begun: readiness answers 503 from
// then on. An embedding host's own readiness should do the same.
func (p *Plugin) Draining() bool { return p.web.InFlight().Draining() }

// stopBackground stops what Start started and waits for it, at most until
// ctx ends; it reports whether it stopped in time (true when nothing was
// started). Start refuses afterwards.
func (p *Plugin) stopBackground(ctx context.Context) bool {
	p.mu.Lock()
	stop, stopped := p.stop, p.stopped
	p.stop, p.shutDown = nil, true
	p.mu.Unlock()
	if stop == nil {
		return true
	}
	stop()
	return waitFor(ctx, stopped)
}

// waitFor waits until done is closed or ctx ends, and reports whether done
// was closed (also when both happened).
func waitFor(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}
