package web

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// AdminHandler serves the private admin listener (server.admin_listen):
// /metrics from g (none when g is nil), /health/alive, /health/ready (the
// JSON report, see ready) and, when pprof is set (server.admin_pprof),
// net/http/pprof under /debug/pprof/. Everything else is 404. The public
// routes (Mount) serve none of these but /health/alive.
func (s *Server) AdminHandler(g prometheus.Gatherer, withPprof bool) http.Handler {
	r := mux.NewRouter()
	// Traced like the public routes (otelhttp outermost) when tracing is on.
	r.Use(s.traced([]mux.MiddlewareFunc{RequestID, s.recoverer()})...)
	r.NotFoundHandler = RequestID(http.HandlerFunc(s.notFound))
	r.HandleFunc(PathAlive, s.alive).Methods(http.MethodGet)
	r.HandleFunc(PathReady, s.ready).Methods(http.MethodGet)
	if g != nil {
		r.Handle(PathMetrics, metricsHandler(g)).Methods(http.MethodGet)
	}
	if withPprof {
		r.HandleFunc(PathPprof+"cmdline", pprof.Cmdline)
		r.HandleFunc(PathPprof+"profile", pprof.Profile)
		r.HandleFunc(PathPprof+"symbol", pprof.Symbol)
		r.HandleFunc(PathPprof+"trace", pprof.Trace)
		r.PathPrefix(PathPprof).HandlerFunc(pprof.Index)
	}
	return r
}
