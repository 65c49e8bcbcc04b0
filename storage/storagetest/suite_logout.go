package storagetest

import (
	"testing"

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
	}
}
