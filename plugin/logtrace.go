package plugin

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandlerWithTrace wraps h so that every record logged with a context
// carrying a span (a traced request's, or the trace a queued mail was sent
// in) gets the attributes trace_id and span_id, to go from a log line to
// its trace and back. Records without one pass through unchanged. New wraps
// Options.Logger's handler with it when Options.TracerProvider is set;
// `otpstep serve` always does.
func LogHandlerWithTrace(h slog.Handler) slog.Handler {
	if _, ok := h.(traceLogHandler); ok {
		return h
	}
	return traceLogHandler{h}
}

type traceLogHandler struct{ slog.Handler }

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{h.Handler.WithGroup(name)}
}
