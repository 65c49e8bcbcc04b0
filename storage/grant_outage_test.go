package storage_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
	"github.com/otpstep/otpstep/storage/storagetest/faultproxy"
)

// A code exchange or a refresh whose database fails inside its transaction
// (at the grant check's user-row lock, the first statement after BEGIN)
// fails with ErrUnavailable, noted in the context, and never with a
// verdict about the grant (not found, ended, inactive, invalidated), which
// fosite would answer invalid_grant; nothing changed, and the same grant
// works once the database answers again. Both ways of failing: connections
// reset, and a database that stalls past the query timeout.
func TestPostgres_GrantCheckUnderOutageIsUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test through a fault proxy: skipped under -short")
	}
	ctx := context.Background()
	u, err := url.Parse(storagetest.PostgresDSN(t))
	require.NoError(t, err)
	proxy := faultproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	s, err := storage.Open(ctx, u.String(), storage.Options{QueryTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(ctx))

	client := &storage.Client{ID: "rp-" + uuid.NewString(), SecretHash: "sha256$00ff", Name: "rp",
		RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: "client_secret_basic"}
	require.NoError(t, s.CreateClient(ctx, client))
	user := &storage.User{Email: uuid.NewString() + "@example.com"}
	require.NoError(t, s.CreateUser(ctx, user))
	now := time.Now()
	ls := &storage.LoginSession{UserID: user.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, s.CreateLoginSession(ctx, ls))

	for _, fault := range []struct {
		name string
		fail func()
	}{{"reset", proxy.Down}, {"stall", proxy.Stall}} {
		t.Run(fault.name, func(t *testing.T) {
			req := &fosite.Request{ID: uuid.NewString(), RequestedAt: now, Client: &fosite.DefaultClient{ID: client.ID},
				RequestedScope: fosite.Arguments{"openid"}, GrantedScope: fosite.Arguments{"openid"},
				Session: &openid.DefaultSession{Subject: user.ID, Claims: &jwt.IDTokenClaims{Subject: user.ID,
					Extra: map[string]any{"sid": ls.ID}}, Headers: &jwt.Headers{},
					ExpiresAt: map[fosite.TokenType]time.Time{fosite.AuthorizeCode: now.Add(time.Hour),
						fosite.AccessToken: now.Add(time.Hour), fosite.RefreshToken: now.Add(time.Hour)}}}
			code, access, refresh := "code-"+uuid.NewString(), "at-"+uuid.NewString(), "rt-"+uuid.NewString()
			require.NoError(t, s.CreateAuthorizeCodeSession(ctx, code, req))
			require.NoError(t, s.CreateAccessTokenSession(ctx, access, req))
			require.NoError(t, s.CreateRefreshTokenSession(ctx, refresh, access, req))

			for name, use := range map[string]func(ctx context.Context) error{
				"code exchange": func(ctx context.Context) error { return s.InvalidateAuthorizeCodeSession(ctx, code) },
				"refresh":       func(ctx context.Context) error { return s.RotateRefreshToken(ctx, req.ID, refresh) },
			} {
				noted := storage.WithUnavailableNote(ctx)
				err := s.InTx(noted, func(ctx context.Context) error {
					fault.fail() // after BEGIN: the grant check's statements meet it
					return use(ctx)
				})
				proxy.Pass()
				require.Error(t, err, name)
				assert.ErrorIs(t, err, storage.ErrUnavailable, name)
				assert.True(t, storage.IsUnavailable(noted, nil), name)
				for _, verdict := range []error{fosite.ErrNotFound, storage.ErrGrantEnded, fosite.ErrInactiveToken, fosite.ErrInvalidatedAuthorizeCode} {
					assert.NotErrorIs(t, err, verdict, name)
				}
			}
			// Nothing changed: both grants work now.
			require.NoError(t, s.InTx(ctx, func(ctx context.Context) error { return s.InvalidateAuthorizeCodeSession(ctx, code) }))
			require.NoError(t, s.InTx(ctx, func(ctx context.Context) error { return s.RotateRefreshToken(ctx, req.ID, refresh) }))
			require.NoError(t, s.Ready(ctx))
		})
	}
}
