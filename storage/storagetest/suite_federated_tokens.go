package storagetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func federatedTokenTests() []conformanceTest {
	linked := func(t *testing.T, s *storage.Store, provider, subject string) *storage.User {
		t.Helper()
		u := newTestUser(t, s)
		require.NoError(t, s.CreateLinkedIdentity(t.Context(), &storage.LinkedIdentity{UserID: u.ID, Provider: provider, Subject: subject}))
		return u
	}
	return []conformanceTest{
		{"TestFederatedTokens_PutGetReplaceAndOnlyForTheLinksSubject", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := linked(t, s, "partner", "sub-1")
			_, err := s.GetFederatedToken(ctx, u.ID, "partner")
			requireNotFound(t, err)
			requireNotFound(t, s.PutFederatedToken(ctx, &storage.FederatedToken{UserID: u.ID, Provider: "partner", Subject: "sub-2", Sealed: []byte("x")}))
			requireNotFound(t, s.PutFederatedToken(ctx, &storage.FederatedToken{UserID: u.ID, Provider: "other", Subject: "sub-1", Sealed: []byte("x")}))

			ft := &storage.FederatedToken{UserID: u.ID, Provider: "partner", Subject: "sub-1", Sealed: []byte{0, 1, 2, 255}}
			require.NoError(t, s.PutFederatedToken(ctx, ft))
			got, err := s.GetFederatedToken(ctx, u.ID, "partner")
			require.NoError(t, err)
			assert.Equal(t, ft, got)
			assert.Equal(t, clk.Now().Truncate(time.Microsecond), got.UpdatedAt)

			clk.Add(time.Second)
			took, err := s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "lease-a", clk.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, took)
			ft.Sealed = []byte("replaced")
			require.NoError(t, s.PutFederatedToken(ctx, ft))
			got, err = s.GetFederatedToken(ctx, u.ID, "partner")
			require.NoError(t, err)
			assert.Equal(t, []byte("replaced"), got.Sealed)
			assert.Empty(t, got.RefreshLeaseID, "a put ends the lease")
			assert.True(t, got.RefreshLeaseUntil.IsZero())

			// Relinked to another upstream account: the old tokens are not its.
			require.NoError(t, s.UpsertLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: "sub-3"}))
			_, err = s.GetFederatedToken(ctx, u.ID, "partner")
			requireNotFound(t, err)
		}},
		{"TestFederatedTokens_OneLeaseAtATimeUntilItEnds", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := linked(t, s, "partner", "sub-1")
			_, err := s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "lease-a", clk.Now().Add(time.Minute))
			requireNotFound(t, err)
			require.NoError(t, s.PutFederatedToken(ctx, &storage.FederatedToken{UserID: u.ID, Provider: "partner", Subject: "sub-1", Sealed: []byte("old")}))

			const n = 8
			var wg sync.WaitGroup
			wins := make([]bool, n)
			for i := range n {
				wg.Go(func() {
					took, err := s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "lease-"+string(rune('a'+i)), clk.Now().Add(time.Minute))
					assert.NoError(t, err)
					wins[i] = took
				})
			}
			wg.Wait()
			winner := -1
			for i, w := range wins {
				if w {
					require.Equal(t, -1, winner, "two leases at once")
					winner = i
				}
			}
			require.NotEqual(t, -1, winner, "no lease taken")
			holder := "lease-" + string(rune('a'+winner))

			requireNotFound(t, s.CompleteFederatedTokenRefresh(ctx, u.ID, "partner", "not-the-holder", []byte("new")))
			require.NoError(t, s.ReleaseFederatedTokenRefresh(ctx, u.ID, "partner", "not-the-holder"))
			took, err := s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "late", clk.Now().Add(time.Minute))
			require.NoError(t, err)
			assert.False(t, took, "a release by another ended the lease")

			require.NoError(t, s.CompleteFederatedTokenRefresh(ctx, u.ID, "partner", holder, []byte("new")))
			got, err := s.GetFederatedToken(ctx, u.ID, "partner")
			require.NoError(t, err)
			assert.Equal(t, []byte("new"), got.Sealed)
			assert.Empty(t, got.RefreshLeaseID)

			// Released: free again; expired: taken over.
			took, err = s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "b", clk.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, took)
			require.NoError(t, s.ReleaseFederatedTokenRefresh(ctx, u.ID, "partner", "b"))
			took, err = s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "c", clk.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, took)
			clk.Add(time.Minute)
			took, err = s.LeaseFederatedTokenRefresh(ctx, u.ID, "partner", "d", clk.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, took, "an expired lease is taken over")
			requireNotFound(t, s.CompleteFederatedTokenRefresh(ctx, u.ID, "partner", "c", []byte("late")))
		}},
		{"TestFederatedTokens_GoneWithTheLink", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := linked(t, s, "partner", "sub-1")
			put := func() {
				require.NoError(t, s.PutFederatedToken(ctx, &storage.FederatedToken{UserID: u.ID, Provider: "partner", Subject: "sub-1", Sealed: []byte("x")}))
			}
			put()
			require.NoError(t, s.DeleteFederatedToken(ctx, u.ID, "partner"))
			requireNotFound(t, s.DeleteFederatedToken(ctx, u.ID, "partner"))
			put()
			require.NoError(t, s.DeleteLinkedIdentity(ctx, u.ID, "partner"))
			requireNotFound(t, s.DeleteFederatedToken(ctx, u.ID, "partner"))
		}},
	}
}
