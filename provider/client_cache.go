package provider

import (
	"context"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/otpstep/otpstep/storage"
)

// clientCache keeps clients read from storage for at most ttl, so the token
// and introspection endpoints do not read the same client row per request.
// A deleted or changed client is seen after at most ttl (oauth2.client_cache_ttl).
type clientCache struct {
	store *storage.Store
	ttl   time.Duration
	clock Clock

	mu      sync.Mutex
	entries map[string]clientEntry
}

type clientEntry struct {
	client  *storage.Client
	expires time.Time
}

// maxCachedClients bounds memory when many unknown client ids are probed:
// only found clients are cached, and the map is cleared when full.
const maxCachedClients = 10000

func newClientCache(store *storage.Store, ttl time.Duration, clock Clock) *clientCache {
	return &clientCache{store: store, ttl: ttl, clock: clock, entries: map[string]clientEntry{}}
}

func (c *clientCache) Get(ctx context.Context, id string) (*storage.Client, error) {
	if c.ttl <= 0 {
		return c.store.GetOAuth2Client(ctx, id)
	}
	now := c.clock()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.client, nil
	}
	cl, err := c.store.GetOAuth2Client(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedClients {
		c.entries = map[string]clientEntry{}
	}
	c.entries[id] = clientEntry{client: cl, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return cl, nil
}

// loader is the cache as the client source of token reads (see
// storage.Store.WithClientLoader); nil when caching is off, since the token
// read's join is then cheaper than a second query.
func (c *clientCache) loader() storage.ClientLoader {
	if c.ttl <= 0 {
		return nil
	}
	return func(ctx context.Context, id string) (fosite.Client, error) {
		cl, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return cl, nil
	}
}

// Forget drops id so this instance sees a change at once.
func (c *clientCache) Forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}
