package web

import (
	"net/http"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing returns a middleware giving each request a server span through
// tp (otelhttp), a child of the caller's span when the request carries a
// W3C traceparent. The span is named after the method and the gorilla/mux
// route template ("PUT /api/v1/sessions/{sessionId}"), never the raw path;
// an unmatched request's is the method alone. Install it first, so that
// everything after it, the access log included, sees the span in the
// request's context.
func Tracing(tp trace.TracerProvider) func(http.Handler) http.Handler {
	return otelhttp.NewMiddleware("http",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if tpl := routeTemplate(r); tpl != "" {
				return r.Method + " " + tpl
			}
			return r.Method
		}),
	)
}

// routeTemplate is the path template of the mux route r matched, "" when none.
func routeTemplate(r *http.Request) string {
	route := mux.CurrentRoute(r)
	if route == nil {
		return ""
	}
	tpl, err := route.GetPathTemplate()
	if err != nil {
		return ""
	}
	return tpl
}

// traced puts the tracing middleware (Options.TracerProvider) before chain;
// without a TracerProvider, chain as it is.
func (s *Server) traced(chain []mux.MiddlewareFunc) []mux.MiddlewareFunc {
	if s.opts.TracerProvider == nil {
		return chain
	}
	return append([]mux.MiddlewareFunc{Tracing(s.opts.TracerProvider), routeAttribute}, chain...)
}

// routeAttribute sets http.route on the request's span.
func routeAttribute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tpl := routeTemplate(r); tpl != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("http.route", tpl))
		}
		next.ServeHTTP(w, r)
	})
}
