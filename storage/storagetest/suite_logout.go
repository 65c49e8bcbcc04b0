package storagetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func logoutTests() []conformanceTest {
	return []conformanceTest{
		{"TestLogout_ClientRegistrationRoundTrips", func(t *testing.T, s *storage.Store, clk *clock) {
			// The logout registration comes back from every read of the
			// client: GetClient, ListClients, and a token read's join.
			want := storage.ClientLogout{
				PostLogoutRedirectURIs:           []string{"https://rp.example/bye", "http://127.0.0.1:9/bye?x=1"},
				BackchannelLogoutURI:             "https://rp.example/backchannel",
				BackchannelLogoutSessionRequired: true,
			}
			c := &storage.Client{ID: "rp-logout", RedirectURIs: []string{"https://rp.example/cb"}, Logout: want}
			require.NoError(t, s.CreateClient(t.Context(), c))
			plain := newTestClient(t, s, "rp-plain")
			got, err := s.GetOAuth2Client(t.Context(), c.ID)
			require.NoError(t, err)
			assert.Equal(t, want, got.Logout)
			got, err = s.GetOAuth2Client(t.Context(), plain.ID)
			require.NoError(t, err)
			assert.Equal(t, storage.ClientLogout{}, got.Logout)
			list, err := s.ListClients(t.Context())
			require.NoError(t, err)
			require.Len(t, list, 2)
			for _, l := range list {
				if l.ID == c.ID {
					assert.Equal(t, want, l.Logout)
				}
			}
			req := newTestRequest(clk, c, "user-1")
			require.NoError(t, s.CreateAccessTokenSession(t.Context(), "sig-logout", req))
			back, err := s.GetAccessTokenSession(t.Context(), "sig-logout", nil)
			require.NoError(t, err)
			assert.Equal(t, want, back.GetClient().(*storage.Client).Logout)
		}},
		{"TestLogout_EndsQueueOneBackchannelLogoutPerClientAndSession", func(t *testing.T, s *storage.Store, clk *clock) {
			// A client that exchanged a code of the session, with a back
			// channel, is queued once by the end (twice exchanged, ended,
			// then disabled); one without a back channel never is.
			ctx := t.Context()
			bc := &storage.Client{ID: "bc", RedirectURIs: []string{"https://rp.example/cb"},
				Logout: storage.ClientLogout{BackchannelLogoutURI: "https://rp.example/bc"}}
			require.NoError(t, s.CreateClient(ctx, bc))
			plain := newTestClient(t, s, "plain")
			ls := newTestLoginSession(t, s, clk)
			for _, c := range []*storage.Client{bc, bc, plain} {
				g := newGrantSet(t, s, clk, c, ls)
				require.NoError(t, s.InvalidateAuthorizeCodeSession(ctx, g.code))
			}
			require.NoError(t, s.EndLoginSession(ctx, ls.ID))
			require.NoError(t, s.DisableUser(ctx, ls.UserID))
			rows, err := s.BackchannelLogouts(ctx, ls.ID)
			require.NoError(t, err)
			require.Len(t, rows, 1)
			assert.Equal(t, "bc", rows[0].ClientID)
			assert.Equal(t, ls.UserID, rows[0].Subject)

			claimed, err := s.ClaimBackchannelLogouts(ctx, 10, time.Minute)
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			assert.Equal(t, "https://rp.example/bc", claimed[0].URI)
			assert.Equal(t, 1, claimed[0].Attempts)
			again, err := s.ClaimBackchannelLogouts(ctx, 10, time.Minute)
			require.NoError(t, err)
			assert.Empty(t, again, "leased")
			require.NoError(t, s.RescheduleBackchannelLogout(ctx, claimed[0].ID, clk.Now(), "503"))
			again, err = s.ClaimBackchannelLogouts(ctx, 10, time.Minute)
			require.NoError(t, err)
			require.Len(t, again, 1)
			assert.Equal(t, 2, again[0].Attempts)
			require.NoError(t, s.SettleBackchannelLogout(ctx, again[0].ID, ""))
			clk.Add(time.Hour)
			again, err = s.ClaimBackchannelLogouts(ctx, 10, time.Minute)
			require.NoError(t, err)
			assert.Empty(t, again, "settled")
		}},
		{"TestLogout_PurgeOfAnExpiredSessionQueuesItsLogouts", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			bc := &storage.Client{ID: "bc", RedirectURIs: []string{"https://rp.example/cb"},
				Logout: storage.ClientLogout{BackchannelLogoutURI: "https://rp.example/bc"}}
			require.NoError(t, s.CreateClient(ctx, bc))
			expiring, ended := newTestLoginSession(t, s, clk), newTestLoginSession(t, s, clk)
			for _, ls := range []*storage.LoginSession{expiring, ended} {
				require.NoError(t, s.InvalidateAuthorizeCodeSession(ctx, newGrantSet(t, s, clk, bc, ls).code))
			}
			require.NoError(t, s.EndLoginSession(ctx, ended.ID))
			claimed, err := s.ClaimBackchannelLogouts(ctx, 10, time.Minute)
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			require.NoError(t, s.SettleBackchannelLogout(ctx, claimed[0].ID, ""))

			clk.Add(2 * time.Hour)
			_, err = s.PurgeExpired(ctx, clk.Now())
			require.NoError(t, err)
			rows, err := s.BackchannelLogouts(ctx, expiring.ID)
			require.NoError(t, err)
			require.Len(t, rows, 1, "the expired session's end is its purge")
			assert.Nil(t, rows[0].SettledAt)
			rows, err = s.BackchannelLogouts(ctx, ended.ID)
			require.NoError(t, err)
			assert.Empty(t, rows, "settled and its session gone: purged, not queued again")
		}},
	}
}
