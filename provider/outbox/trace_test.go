package outbox_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider/outbox"
)

// Traceparent and TraceContext carry a sampled span's context from the
// request to the send: a span started under TraceContext is its child, in
// its trace. No span, or an unsampled one, carries nothing.
func TestTraceparent_RoundTripsTheSpanContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	tparent := outbox.Traceparent(ctx)
	if tparent == "" {
		t.Fatal("no traceparent for a sampled span")
	}
	_, child := tp.Tracer("test").Start(outbox.TraceContext(context.Background(), tparent), "send")
	defer child.End()
	ro := child.(sdktrace.ReadOnlySpan)
	if ro.Parent().SpanID() != span.SpanContext().SpanID() || ro.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("send span: parent %s trace %s, want %s in %s", ro.Parent().SpanID(), ro.SpanContext().TraceID(),
			span.SpanContext().SpanID(), span.SpanContext().TraceID())
	}

	if got := outbox.Traceparent(context.Background()); got != "" {
		t.Errorf("Traceparent without a span = %q", got)
	}
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	uctx, uspan := unsampled.Tracer("test").Start(context.Background(), "request")
	defer uspan.End()
	if got := outbox.Traceparent(uctx); got != "" {
		t.Errorf("Traceparent of an unsampled span = %q", got)
	}
	for _, bad := range []string{"", "garbage", "00-zz-yy-01"} {
		if sc := trace.SpanContextFromContext(outbox.TraceContext(context.Background(), bad)); sc.IsValid() {
			t.Errorf("TraceContext(%q) carries %v", bad, sc)
		}
	}
}
