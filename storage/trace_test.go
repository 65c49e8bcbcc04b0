package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// Under a recording span, a transaction is a span (committed, or failed and
// marked rolled back) with a span per statement under it, and a statement
// outside a transaction (the pgx read pool's on PostgreSQL included) is a
// span of its own; a missing row is no error. Without a recording span in
// the context, nothing is recorded: the background work outside any trace
// makes no traces. On both databases.
func TestTracing_TransactionsAndStatementsAreSpansOfTheCallersTrace(t *testing.T) {
	for name, open := range map[string]func(*testing.T) *storage.Store{"sqlite": storagetest.NewSQLite, "postgres": storagetest.NewPostgres} {
		t.Run(name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			s := open(t).WithTracerProvider(tp)
			root, span := tp.Tracer("test").Start(context.Background(), "request")

			err := s.InTx(root, func(ctx context.Context) error {
				return s.CreateUser(ctx, &storage.User{Email: uuid.NewString() + "@example.test", PasswordHash: "x"})
			})
			if err != nil {
				t.Fatal(err)
			}
			boom := errors.New("boom")
			if err := s.InTx(root, func(ctx context.Context) error {
				if err := s.CreateUser(ctx, &storage.User{Email: uuid.NewString() + "@example.test", PasswordHash: "x"}); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("InTx = %v", err)
			}
			if _, err := s.GetUser(root, uuid.NewString()); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("GetUser of nobody = %v", err)
			}
			span.End()
			// No recording span: no spans.
			if _, err := s.GetUser(context.Background(), uuid.NewString()); !errors.Is(err, storage.ErrNotFound) {
				t.Fatal(err)
			}
			if err := s.InTx(context.Background(), func(ctx context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}

			spans := exp.GetSpans()
			rootID := span.SpanContext().SpanID()
			var txs []tracetest.SpanStub
			for _, sp := range spans {
				if sp.SpanContext.TraceID() != span.SpanContext().TraceID() {
					t.Errorf("span %q outside the caller's trace", sp.Name)
				}
				if sp.Name == "db transaction" {
					txs = append(txs, sp)
					if sp.Parent.SpanID() != rootID {
						t.Errorf("transaction span's parent is not the caller's span")
					}
				}
			}
			if len(txs) != 2 {
				t.Fatalf("%d transaction spans, want 2; spans %v", len(txs), names(spans))
			}
			committed, rolledBack := txs[0], txs[1]
			if committed.Status.Code == codes.Error || hasAttr(committed, "db.rolled_back") {
				t.Errorf("committed transaction span: status %v, attributes %v", committed.Status, committed.Attributes)
			}
			if !hasAttr(rolledBack, "db.rolled_back") {
				t.Errorf("rolled-back transaction span has no db.rolled_back: %v", rolledBack.Attributes)
			}
			inserts := 0
			for _, sp := range spans {
				if sp.Name != "db INSERT" {
					continue
				}
				inserts++
				if p := sp.Parent.SpanID(); p != committed.SpanContext.SpanID() && p != rolledBack.SpanContext.SpanID() {
					t.Errorf("INSERT span not under its transaction")
				}
				if !hasAttr(sp, "db.query.text") {
					t.Errorf("INSERT span without its statement: %v", sp.Attributes)
				}
			}
			if inserts != 2 {
				t.Errorf("%d INSERT spans, want 2; spans %v", inserts, names(spans))
			}
			var read *tracetest.SpanStub
			for i, sp := range spans {
				if sp.Name == "db SELECT" && sp.Parent.SpanID() == rootID {
					read = &spans[i]
				}
			}
			if read == nil {
				t.Fatalf("no SELECT span under the caller's span; spans %v", names(spans))
			}
			if read.Status.Code == codes.Error {
				t.Errorf("a missing row marked the read failed: %v", read.Status)
			}
			if len(spans) != 6 { // the caller's, 2 transactions, 2 inserts, 1 read, and no more
				t.Errorf("%d spans, want 6: %v", len(spans), names(spans))
			}
		})
	}
}

func hasAttr(s tracetest.SpanStub, key string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return true
		}
	}
	return false
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
