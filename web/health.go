package web

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// alive answers as long as the process serves HTTP.
func (s *Server) alive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 200 when the database is reachable and, after a failure,
// takes writes again (storage.Store.Ready); 503 otherwise.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	// From the start of a shutdown (InFlight.Drain) on: 503, whatever the
	// database says, so a load balancer stops sending before the drain.
	if s.inflight.Draining() {
		setUnavailableRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.p.Store().Ready(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "request_id", RequestIDFrom(ctx), "err", err)
		setUnavailableRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
