package requestid

import (
	"context"
	"testing"
)

func TestFromContext_ReturnsStoredID(t *testing.T) {
	ctx := NewContext(context.Background(), "abc123")
	if got := FromContext(ctx); got != "abc123" {
		t.Fatalf("FromContext = %q, want %q", got, "abc123")
	}
}

func TestFromContext_EmptyWithoutID(t *testing.T) {
	if got := FromContext(context.Background()); got != "" {
		t.Fatalf("FromContext = %q, want empty", got)
	}
}
