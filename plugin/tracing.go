package plugin

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracerProviderFromEnv is the tracer provider `otpstep serve` passes as
// Options.TracerProvider, configured by the standard OpenTelemetry
// variables. Tracing is off, and the provider a no-op one that records and
// exports nothing, unless OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is not
// true). On, it is an SDK provider exporting over OTLP/HTTP in batches; the
// exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers,
// timeout, compression, certificates) from the process environment, the
// SDK OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*, and the resource
// OTEL_SERVICE_NAME (default otpstep) and OTEL_RESOURCE_ATTRIBUTES. It
// connects to nothing before the first export.
//
// lookupEnv (nil: os.LookupEnv) decides whether tracing is on. The caller
// shuts an SDK provider down (Shutdown, which flushes) before exit;
// Plugin.Shutdown flushes it (ForceFlush) after the drain.
func TracerProviderFromEnv(ctx context.Context, lookupEnv func(string) (string, bool)) (trace.TracerProvider, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	set := func(name string) bool { v, _ := lookupEnv(name); return strings.TrimSpace(v) != "" }
	if v, _ := lookupEnv("OTEL_SDK_DISABLED"); strings.EqualFold(strings.TrimSpace(v), "true") ||
		(!set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
		return noop.NewTracerProvider(), nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	// Later detectors win: OTEL_SERVICE_NAME over the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "otpstep")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// ShutdownTracerProvider shuts tp down when it is an SDK provider (or any
// with a Shutdown method), exporting what is still buffered within ctx;
// other providers are left alone.
func ShutdownTracerProvider(ctx context.Context, tp trace.TracerProvider) error {
	if s, ok := tp.(interface{ Shutdown(context.Context) error }); ok {
		return s.Shutdown(ctx)
	}
	return nil
}

// flushTracing exports the spans Options.TracerProvider still buffers,
// within ctx, when it can (an SDK provider's ForceFlush).
func (p *Plugin) flushTracing(ctx context.Context) error {
	if f, ok := p.tracerProvider.(interface{ ForceFlush(context.Context) error }); ok {
		return f.ForceFlush(ctx)
	}
	return nil
}
