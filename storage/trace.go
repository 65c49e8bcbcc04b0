package storage

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing: a span per transaction (BeginTX to Commit or Rollback, so InTx
// and fosite's transactions alike), per statement (exec, query, queryRow,
// readRow) and per pgx batch. Each is a child of the span ctx carries and
// is started only when that span records: the statements of a traced
// request are traced, a background poll outside any trace (the outbox's
// claims, the purge) starts none, and with the no-op provider, or a
// sampled-out request, nothing is allocated.

// tracerName is the instrumentation scope of the storage spans.
const tracerName = "github.com/otpstep/otpstep/storage"

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// WithTracerProvider returns a Store that shares s's connection pools (and
// its transactions) but records its spans through tp (nil: none).
func (s *Store) WithTracerProvider(tp trace.TracerProvider) *Store {
	c := *s
	c.tracer = newTracer(tp)
	return &c
}

// dbSystem is the OpenTelemetry db.system.name of the store's dialect.
func (s *Store) dbSystem() string {
	if s.dialect == DialectPostgres {
		return "postgresql"
	}
	return "sqlite"
}

// startSpan starts a client span named name under the recording span ctx
// carries; without one it returns ctx and nil.
func (s *Store) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if s.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	attrs = append(attrs, attribute.String("db.system.name", s.dbSystem()))
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// startStmtSpan starts the span of one statement, named after its operation
// ("SELECT", "INSERT", …) and carrying its text: otpstep's statements hold
// placeholders, never values.
func (s *Store) startStmtSpan(ctx context.Context, query string) (context.Context, trace.Span) {
	if s.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	op := operation(query)
	return s.startSpan(ctx, "db "+op, attribute.String("db.operation.name", op), attribute.String("db.query.text", query))
}

// operation is the first keyword of a statement, upper-cased.
func operation(query string) string {
	q := strings.TrimLeft(query, " \t\r\n(")
	if i := strings.IndexAny(q, " \t\r\n("); i > 0 {
		q = q[:i]
	}
	return strings.ToUpper(q)
}

// endSpan ends span (nil: none), marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// endScanSpan ends the span of a one-row query once scanned: no row is an
// answer, not a failure (pgx's ErrNoRows is sql.ErrNoRows too).
func endScanSpan(span trace.Span, err error) {
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	endSpan(span, err)
}
