package storagetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/otpstep/otpstep/storage"
)

// The hot paths of token introspection: one GetClient (client authentication)
// and one GetAccessTokenSession per request.

func BenchmarkGetAccessTokenSession(b *testing.B) {
	for name, open := range map[string]func(testing.TB) *storage.Store{"SQLite": newSQLite, "Postgres": newPostgres} {
		b.Run(name, func(b *testing.B) {
			// Join: the client row joined in. ClientLoader: the client from
			// a loader (as the provider's cache serves it).
			b.Run("Join", func(b *testing.B) { benchmarkGetAccessTokenSession(b, open(b), false) })
			b.Run("ClientLoader", func(b *testing.B) { benchmarkGetAccessTokenSession(b, open(b), true) })
		})
	}
}

func benchmarkGetAccessTokenSession(b *testing.B, s *storage.Store, loader bool) {
	clk := newClock()
	c := &storage.Client{ID: "rp", Scopes: []string{"openid"}, GrantTypes: []string{"authorization_code"}}
	if err := s.CreateClient(b.Context(), c); err != nil {
		b.Fatal(err)
	}
	if loader {
		s = s.WithClientLoader(func(context.Context, string) (fosite.Client, error) { return c, nil })
	}
	const tokens = 1000
	for i := range tokens {
		if err := s.CreateAccessTokenSession(b.Context(), fmt.Sprintf("at-%d", i), newTestRequest(clk, c, "alice")); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(8) // like an HTTP server: more requests in flight than cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sig := fmt.Sprintf("at-%d", n.Add(1)%tokens)
			if _, err := s.GetAccessTokenSession(b.Context(), sig, openid.NewDefaultSession()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetClient(b *testing.B) {
	for name, open := range map[string]func(testing.TB) *storage.Store{"SQLite": newSQLite, "Postgres": newPostgres} {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			c := &storage.Client{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}, Scopes: []string{"openid"}}
			if err := s.CreateClient(b.Context(), c); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8) // like an HTTP server: more requests in flight than cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.GetClient(b.Context(), "rp"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
