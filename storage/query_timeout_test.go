package storage_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
	"github.com/otpstep/otpstep/storage/storagetest/faultproxy"
)

// A transaction whose database stalls past Options.QueryTimeout fails with
// ErrUnavailable (noted in the context), nothing of it is written, and the
// same Store works again once the database answers: no restart.
func TestPostgres_StalledTransactionPastQueryTimeoutRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("stall test through a fault proxy: skipped under -short")
	}
	ctx := context.Background()
	u, err := url.Parse(storagetest.PostgresDSN(t))
	require.NoError(t, err)
	proxy := faultproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	const timeout = 300 * time.Millisecond
	s, err := storage.Open(ctx, u.String(), storage.Options{QueryTimeout: timeout})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(ctx))
	assert.Equal(t, timeout, s.QueryTimeout())

	noted := storage.WithUnavailableNote(ctx)
	first := &storage.User{Email: "first@example.com", PasswordHash: "x"}
	err = s.InTx(noted, func(ctx context.Context) error {
		if err := s.CreateUser(ctx, first); err != nil {
			return err
		}
		proxy.Stall()
		return s.CreateUser(ctx, &storage.User{Email: "second@example.com", PasswordHash: "x"})
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
	assert.True(t, storage.IsUnavailable(noted, errors.New("what fosite kept of it")), "noted in the context")
	assert.False(t, storage.IsUnavailable(ctx, errors.New("other")), "a context without the note")

	proxy.Pass()
	_, err = s.GetUserByEmail(ctx, "first@example.com")
	assert.ErrorIs(t, err, storage.ErrNotFound, "the stalled transaction's first insert rolled back")
	require.NoError(t, s.CreateUser(ctx, &storage.User{Email: "third@example.com", PasswordHash: "x"}))
	require.NoError(t, s.Ready(ctx))
}
