package storage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// purgeFixture stores expired login sessions and live ones on s and returns
// the live ones' IDs.
func purgeFixture(t *testing.T, s *storage.Store, expired, live int) []string {
	t.Helper()
	ctx := t.Context()
	u := &storage.User{Email: uuid.NewString() + "@example.com"}
	require.NoError(t, s.CreateUser(ctx, u))
	now := time.Now().UTC()
	var kept []string
	for i := range expired + live {
		ls := &storage.LoginSession{ID: uuid.NewString(), UserID: u.ID, AMR: []string{"pwd"}, AuthTime: now,
			ExpiresAt: now.Add(-time.Hour)}
		if i >= expired {
			ls.ExpiresAt = now.Add(time.Hour)
			kept = append(kept, ls.ID)
		}
		require.NoError(t, s.CreateLoginSession(ctx, ls))
	}
	return kept
}

func requireLive(t *testing.T, s *storage.Store, ids []string) {
	t.Helper()
	for _, id := range ids {
		_, err := s.GetLoginSession(t.Context(), id)
		require.NoError(t, err, "live session %s", id)
	}
}

// PurgeExpired deletes batch after batch until a table has nothing expired
// left, and counts every row once.
func TestPurgeExpired_InBatches(t *testing.T) {
	for name, open := range map[string]func(*testing.T) *storage.Store{"SQLite": storagetest.NewSQLite, "Postgres": storagetest.NewPostgres} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			s.SetPurgeBatch(4)
			live := purgeFixture(t, s, 25, 3) // 6 full batches and one of 1
			n, err := s.PurgeExpired(t.Context(), time.Now())
			require.NoError(t, err)
			assert.Equal(t, int64(25), n)
			requireLive(t, s, live)
			n, err = s.PurgeExpired(t.Context(), time.Now())
			require.NoError(t, err)
			assert.Zero(t, n, "nothing left to purge")
		})
	}
}

// Three instances purging one PostgreSQL database at once delete every
// expired row exactly once between them, without an error.
func TestPurgeExpired_ConcurrentPurgersSplitTheRows(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	var stores []*storage.Store
	for range 3 {
		s, err := storage.Open(t.Context(), dsn, storage.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		s.SetPurgeBatch(7)
		stores = append(stores, s)
	}
	require.NoError(t, stores[0].Migrate(t.Context()))
	live := purgeFixture(t, stores[0], 400, 5)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	for _, s := range stores {
		wg.Go(func() {
			n, err := s.PurgeExpired(t.Context(), time.Now())
			mu.Lock()
			defer mu.Unlock()
			total += n
			errs = append(errs, err)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	assert.Equal(t, int64(400), total)
	requireLive(t, stores[0], live)
	n, err := stores[0].PurgeExpired(t.Context(), time.Now())
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A cancelled context stops the purge between batches.
func TestPurgeExpired_StopsWhenCancelled(t *testing.T) {
	s := storagetest.NewSQLite(t)
	s.SetPurgeBatch(2)
	purgeFixture(t, s, 10, 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n, err := s.PurgeExpired(ctx, time.Now())
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, n)
}

// PurgeAuditEvents deletes the events recorded before the cutoff, in
// batches, and keeps the later ones.
func TestPurgeAuditEvents_BeforeTheCutoff(t *testing.T) {
	for name, open := range map[string]func(*testing.T) *storage.Store{"SQLite": storagetest.NewSQLite, "Postgres": storagetest.NewPostgres} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			s.SetPurgeBatch(2)
			ctx := t.Context()
			now := time.Now().UTC()
			var events []*storage.AuditEvent
			for i := range 7 {
				at := now.Add(-48 * time.Hour).Add(time.Duration(i) * time.Minute)
				if i >= 5 {
					at = now
				}
				events = append(events, &storage.AuditEvent{At: at, Type: "session.created", UserID: "u"})
			}
			require.NoError(t, s.AddAuditEvents(ctx, events...))
			n, err := s.PurgeAuditEvents(ctx, now.Add(-24*time.Hour))
			require.NoError(t, err)
			assert.Equal(t, int64(5), n)
			left, err := s.ListAuditEvents(ctx, "", 100)
			require.NoError(t, err)
			require.Len(t, left, 2)
			for _, e := range left {
				assert.True(t, e.At.Equal(now.Truncate(time.Microsecond)), "kept %v", e.At)
			}
		})
	}
}
