package storage

import (
	"context"
	"testing"
)

// Outside a recording span (tracing off, a sampled-out request, background
// work) a statement's tracing costs no allocation.
func TestStartStmtSpan_AllocatesNothingWithoutARecordingSpan(t *testing.T) {
	s := &Store{dialect: DialectPostgres, tracer: newTracer(nil)}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		c, span := s.startStmtSpan(ctx, "SELECT 1")
		endSpan(span, nil)
		_ = c
	})
	if allocs != 0 {
		t.Errorf("%v allocations per statement, want 0", allocs)
	}
}

func TestOperation_IsTheFirstKeyword(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT a FROM b":             "SELECT",
		"\n\t insert into x VALUES":   "INSERT",
		"(SELECT 1) UNION (SELECT 2)": "SELECT",
		"WITH x AS (SELECT 1) DELETE": "WITH",
		"":                            "",
	} {
		if got := operation(q); got != want {
			t.Errorf("operation(%q) = %q, want %q", q, got, want)
		}
	}
}
