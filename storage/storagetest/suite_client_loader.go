package storagetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// withCountingLoader returns s with a ClientLoader that reads through
// s.GetClient and counts its calls.
func withCountingLoader(s *storage.Store) (*storage.Store, *atomic.Int64) {
	var n atomic.Int64
	return s.WithClientLoader(func(ctx context.Context, id string) (fosite.Client, error) {
		n.Add(1)
		return s.GetClient(ctx, id)
	}), &n
}

// clientLoaderTests are the token reads of a Store with a ClientLoader
// (Store.WithClientLoader): outside a transaction the client comes from the
// loader, inside one from the transaction.
func clientLoaderTests() []conformanceTest {
	return []conformanceTest{
		{"TestClientLoader_TokenReadsTakeTheClientFromTheLoader", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-sig", want))
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-sig", "at-sig", want))
			require.NoError(t, s.CreateAuthorizeCodeSession(ctx, "code-sig", want))
			cached := &storage.Client{ID: "rp", Name: "from the loader"}
			var calls atomic.Int64
			ls := s.WithClientLoader(func(_ context.Context, id string) (fosite.Client, error) {
				calls.Add(1)
				assert.Equal(t, "rp", id)
				return cached, nil
			})
			got, err := ls.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			assert.Same(t, cached, got.GetClient())
			assert.Equal(t, want.Session, got.GetSession())
			assert.Equal(t, want.GrantedScope, got.GetGrantedScopes())
			_, err = ls.GetRefreshTokenSession(ctx, "rt-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			_, err = ls.GetAuthorizeCodeSession(ctx, "code-sig", nil)
			require.NoError(t, err)
			assert.EqualValues(t, 3, calls.Load())

			// The loader's Store still reads clients itself, and s is unchanged.
			c, err := ls.GetClient(ctx, "rp")
			require.NoError(t, err)
			assert.Equal(t, "Client rp", c.(*storage.Client).Name)
			got, err = s.GetAccessTokenSession(ctx, "at-sig", nil)
			require.NoError(t, err)
			assert.Equal(t, want.Client, got.GetClient())
			assert.EqualValues(t, 3, calls.Load())
		}},
		{"TestClientLoader_InsideATransactionTheClientIsJoined", func(t *testing.T, s *storage.Store, clk *clock) {
			ls, calls := withCountingLoader(s)
			txCtx, err := ls.BeginTX(t.Context())
			require.NoError(t, err)
			defer func() { _ = ls.Rollback(txCtx) }()
			// Written and read inside the transaction: the token's client too.
			client := &storage.Client{ID: "tx-rp", Scopes: []string{"openid"}}
			require.NoError(t, ls.CreateClient(txCtx, client))
			want := newTestRequest(clk, client, "alice")
			require.NoError(t, ls.CreateAccessTokenSession(txCtx, "at-sig", want))
			got, err := ls.GetAccessTokenSession(txCtx, "at-sig", openid.NewDefaultSession())
			require.NoError(t, err, "a transaction sees its own writes")
			assert.Equal(t, "tx-rp", got.GetClient().GetID())
			assert.Zero(t, calls.Load(), "no loader inside a transaction")
			_, err = ls.GetAccessTokenSession(t.Context(), "at-sig", openid.NewDefaultSession())
			requireNotFound(t, err)
			require.NoError(t, ls.Commit(txCtx))
			_, err = ls.GetAccessTokenSession(t.Context(), "at-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			assert.EqualValues(t, 1, calls.Load())
		}},
		{"TestClientLoader_RevocationIsImmediate", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls, _ := withCountingLoader(s)
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-sig", want))
			_, err := ls.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			require.NoError(t, s.RevokeAccessToken(ctx, want.ID))
			_, err = ls.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			requireNotFound(t, err)

			// Deleting the client deletes its tokens, whatever the loader still holds.
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-2", newTestRequest(clk, want.Client.(*storage.Client), "alice")))
			stale := s.WithClientLoader(func(context.Context, string) (fosite.Client, error) { return want.Client, nil })
			require.NoError(t, s.DeleteClient(ctx, "rp"))
			_, err = stale.GetAccessTokenSession(ctx, "at-2", openid.NewDefaultSession())
			requireNotFound(t, err)
		}},
		{"TestClientLoader_SubjectUserComesWithTheToken", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls, _ := withCountingLoader(s)
			client := newTestClient(t, s, "rp")
			u := newTestUser(t, s)
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-user", newTestRequest(clk, client, u.ID)))
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-nobody", newTestRequest(clk, client, "no-such-user")))
			want, err := s.GetUser(ctx, u.ID)
			require.NoError(t, err)

			var su storage.SubjectUser
			got, err := ls.GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "at-user", openid.NewDefaultSession())
			require.NoError(t, err)
			assert.Equal(t, u.ID, got.GetSession().GetSubject())
			assert.True(t, su.Read)
			assert.Equal(t, want, su.User, "the user as GetUser returns it")

			// Disabled since: the next read says so.
			require.NoError(t, s.SetUserDisabled(ctx, u.ID, true))
			su = storage.SubjectUser{}
			_, err = ls.GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "at-user", openid.NewDefaultSession())
			require.NoError(t, err)
			require.NotNil(t, su.User)
			assert.True(t, su.User.Disabled)

			su = storage.SubjectUser{}
			_, err = ls.GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "at-nobody", openid.NewDefaultSession())
			require.NoError(t, err)
			assert.True(t, su.Read)
			assert.Nil(t, su.User, "a subject that names no user")

			// Not read: without a loader, or inside a transaction.
			su = storage.SubjectUser{}
			_, err = s.WithClientLoader(nil).GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "at-user", openid.NewDefaultSession())
			require.NoError(t, err)
			assert.False(t, su.Read)
			require.NoError(t, ls.InTx(ctx, func(ctx context.Context) error {
				_, err := ls.GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "at-user", openid.NewDefaultSession())
				return err
			}))
			assert.False(t, su.Read)

			// A missing token: not found, and nothing read.
			su = storage.SubjectUser{}
			_, err = ls.GetAccessTokenSession(storage.WithSubjectUser(ctx, &su), "missing", openid.NewDefaultSession())
			requireNotFound(t, err)
			assert.False(t, su.Read)
		}},
		{"TestClientLoader_Errors", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-sig", want))

			gone := s.WithClientLoader(func(context.Context, string) (fosite.Client, error) {
				return nil, fosite.ErrNotFound
			})
			_, err := gone.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			requireNotFound(t, err)

			errBoom := errors.New("boom")
			failing := s.WithClientLoader(func(context.Context, string) (fosite.Client, error) { return nil, errBoom })
			_, err = failing.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			assert.ErrorIs(t, err, errBoom)
			assert.NotErrorIs(t, err, storage.ErrNotFound)

			// A missing token is not found without asking the loader.
			_, err = failing.GetAccessTokenSession(ctx, "missing", openid.NewDefaultSession())
			requireNotFound(t, err)
		}},
	}
}
