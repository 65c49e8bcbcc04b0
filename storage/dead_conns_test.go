package storage_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
	"github.com/otpstep/otpstep/storage/storagetest/faultproxy"
)

// deadConns is how many idle connections each pool holds when the proxy
// resets them: more than database/sql's two retries on pooled connections.
const deadConns = 4

// After PostgreSQL reset every connection and answers again, the pools'
// idle connections are dead, and nothing has told the pools yet (each one
// was used less than a second ago, so neither pool pings it). A dead
// connection is found when a statement is written to it, before anything
// reached the server (pgconn.SafeToRetry): it is discarded and the
// statement runs on another connection. The first request after the
// recovery succeeds: a transaction (BEGIN; database/sql retried it only for
// plain statements), a hot read and the pipelined new-session transaction
// (both on the native pgx pool, which retried nothing). No request is
// noted unavailable, and the store is ready.
func TestPostgres_DeadPooledConnectionsAfterRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test through a fault proxy: skipped under -short")
	}
	ctx := context.Background()
	u, err := url.Parse(storagetest.PostgresDSN(t))
	require.NoError(t, err)
	proxy := faultproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	migrated, err := storage.Open(ctx, u.String(), storage.Options{})
	require.NoError(t, err)
	require.NoError(t, migrated.Migrate(ctx))
	user := &storage.User{Email: "dead-conns@example.com", PasswordHash: "x"}
	require.NoError(t, migrated.CreateUser(ctx, user))
	require.NoError(t, migrated.Close())

	// deadPools opens a store whose pools hold deadConns idle connections
	// each, then resets them all and lets the database answer again.
	// When noted, a statement finds the database down before it answers
	// again, as a request during an outage does.
	deadPools := func(t *testing.T, noted bool) *storage.Store {
		t.Helper()
		s, err := storage.Open(ctx, u.String(), storage.Options{QueryTimeout: 2 * time.Second, MaxOpenConns: 2 * deadConns})
		require.NoError(t, err)
		t.Cleanup(func() {
			assert.NoError(t, s.Ready(ctx), "ready after the recovery")
			_ = s.Close()
		})
		var wg sync.WaitGroup
		hold := make(chan struct{})
		began := make(chan error, deadConns)
		for range deadConns { // database/sql: transactions open at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				ran := false
				err := s.InTx(ctx, func(ctx context.Context) error {
					ran = true
					_, err := s.GetUser(ctx, user.ID)
					began <- err
					<-hold
					return err
				})
				if !ran {
					began <- err
				}
			}()
		}
		var errs []error
		for range deadConns {
			errs = append(errs, <-began)
		}
		var reads []*pgxpool.Conn // the read pool: connections acquired at once
		for range deadConns {
			c, err := s.ReadPool().Acquire(ctx)
			if err == nil {
				err = c.Ping(ctx)
				reads = append(reads, c)
			}
			errs = append(errs, err)
		}
		close(hold)
		wg.Wait()
		for _, c := range reads {
			c.Release()
		}
		for _, err := range errs {
			require.NoError(t, err, "filling the pools")
		}
		require.Equal(t, int32(deadConns), s.ReadPool().Stat().IdleConns())
		proxy.Down()
		if noted {
			require.ErrorIs(t, s.Ping(ctx), storage.ErrUnavailable)
		}
		proxy.Pass()
		return s
	}

	for _, noted := range []bool{false, true} {
		name := map[bool]string{false: "", true: "/noted"}[noted]
		t.Run("transaction"+name, func(t *testing.T) {
			s := deadPools(t, noted)
			for i := range deadConns + 1 {
				rctx := storage.WithUnavailableNote(ctx)
				err := s.InTx(rctx, func(ctx context.Context) error {
					_, err := s.GetUser(ctx, user.ID)
					return err
				})
				require.NoError(t, err, "transaction %d after the recovery", i)
				assert.False(t, storage.IsUnavailable(rctx, nil), "transaction %d noted unavailable", i)
			}
		})
		t.Run("read"+name, func(t *testing.T) {
			s := deadPools(t, noted)
			for i := range deadConns + 1 {
				rctx := storage.WithUnavailableNote(ctx)
				_, err := s.GetUser(rctx, user.ID)
				require.NoError(t, err, "read %d after the recovery", i)
				assert.False(t, storage.IsUnavailable(rctx, nil), "read %d noted unavailable", i)
			}
		})
	}
	// A write runs again only when nothing of it reached the server; after
	// a noted outage the pools ping the connections idle since.
	t.Run("pipelined/noted", func(t *testing.T) {
		s := deadPools(t, true)
		for i := range deadConns + 1 {
			sid := uuid.NewString()
			now := time.Now()
			noted := storage.WithUnavailableNote(ctx)
			err := s.CreateSessionChallenge(noted, &storage.NewSessionChallenge{
				Session: &storage.LoginSession{ID: sid, UserID: user.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)},
				NewChallenge: storage.NewChallenge{
					Hits: []storage.RateHit{{Key: "resend:" + sid, Window: 30 * time.Second, Max: 1}},
					Challenge: &storage.OTPChallenge{Kind: "login", UserID: user.ID, SessionID: sid, ClientID: "rp",
						CodeHash: []byte{1, 2, 3}, MaxAttempts: 5, ExpiresAt: now.Add(5 * time.Minute)},
					Mail: &storage.OutboxMessage{Sealed: []byte("sealed")},
				},
			})
			require.NoError(t, err, "new session %d after the recovery", i)
			assert.False(t, storage.IsUnavailable(noted, nil), "new session %d noted unavailable", i)
			_, err = s.GetLoginSession(ctx, sid)
			require.NoError(t, err, "new session %d stored once", i)
		}
	})
}
