package web

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds each of readiness's database reads.
const readyTimeout = 2 * time.Second

// alive answers as long as the process serves HTTP.
func (s *Server) alive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyReport is /health/ready's answer on the admin listener.
type readyReport struct {
	Status string `json:"status"` // "ready" or "unavailable"
	// ShuttingDown is set from the start of a shutdown on.
	ShuttingDown bool           `json:"shutting_down,omitempty"`
	Database     *databaseCheck `json:"database,omitempty"`
	Outbox       *outboxInfo    `json:"outbox,omitempty"`
}

type databaseCheck struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// outboxInfo is information, not a check: an SMTP outage loses no mail.
// Depth and OldestAgeSeconds are left out when the backlog cannot be read.
type outboxInfo struct {
	Depth            *int       `json:"depth,omitempty"`
	OldestAgeSeconds *float64   `json:"oldest_age_seconds,omitempty"`
	LastDeliveryAt   *time.Time `json:"last_delivery_at"`
}

// ready answers 200 when the database answers, 503 otherwise, with the
// outbox backlog and the last delivery as information: readiness does not
// fail on the mail server (README: the alerts to set instead).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	// From the start of a shutdown (InFlight.Drain) on: 503, whatever the
	// database says, so a load balancer stops sending before the drain.
	if s.inflight.Draining() {
		setUnavailableRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, readyReport{Status: "unavailable", ShuttingDown: true})
		return
	}
	ctx := r.Context()
	report := readyReport{Status: "ready", Database: &databaseCheck{OK: true}, Outbox: &outboxInfo{}}
	if last := s.p.LastMailDelivery(); !last.IsZero() {
		utc := last.UTC()
		report.Outbox.LastDeliveryAt = &utc
	}
	// The database is reachable and, after a failure, takes writes again
	// (storage.Store.Ready).
	pctx, cancel := context.WithTimeout(ctx, readyTimeout)
	err := s.p.Store().Ready(pctx)
	cancel()
	if err != nil {
		s.log.WarnContext(ctx, "not ready", "request_id", RequestIDFrom(ctx), "err", err)
		report.Status = "unavailable"
		report.Database = &databaseCheck{Error: "the database did not answer (logged with request id " + RequestIDFrom(ctx) + ")"}
		setUnavailableRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, report)
		return
	}
	octx, cancel := context.WithTimeout(ctx, readyTimeout)
	st, err := s.p.OutboxStatus(octx)
	cancel()
	if err != nil {
		s.log.WarnContext(ctx, "readiness: outbox backlog not read", "request_id", RequestIDFrom(ctx), "err", err)
	} else {
		age := st.OldestAge.Seconds()
		report.Outbox.Depth, report.Outbox.OldestAgeSeconds = &st.Depth, &age
	}
	writeJSON(w, http.StatusOK, report)
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
