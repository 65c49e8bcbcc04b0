package outbox

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A mail is queued by a request and sent later by a dispatcher, often in
// another process: the request's trace context travels in the payload
// (Payload.Traceparent, sealed with the rest), so the send is part of the
// request's trace.

// Traceparent is the W3C traceparent of the span ctx carries, "" when it
// carries none (or one not sampled: its trace is not recorded anyway).
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

// TraceContext is ctx carrying traceparent as its remote parent span, so
// that the spans started under it (the SMTP send's) join that trace; a
// malformed or empty traceparent leaves ctx as it is.
func TraceContext(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
