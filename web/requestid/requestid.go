// Package requestid carries the id of the HTTP request being served in its
// context. It is a leaf so that the middleware that assigns the id and the
// JSON:API error writer that reports it can share it without an import cycle.
package requestid

import "context"

// contextKey is unexported so no other package can read or overwrite the value.
type contextKey struct{}

// NewContext returns a copy of ctx carrying the request id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the request id stored in ctx, or "" when there is none.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(contextKey{}).(string)
	return id
}
