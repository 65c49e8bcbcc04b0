package storagetest

import (
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func clientTests() []conformanceTest {
	return []conformanceTest{
		{"TestClients_CreateGetRoundTrip", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestClient(t, s, "rp-1")
			assert.Equal(t, clk.Now(), want.CreatedAt)

			got, err := s.GetClient(t.Context(), "rp-1")
			require.NoError(t, err)
			require.IsType(t, &storage.Client{}, got)
			assert.Equal(t, want, got)

			got2, err := s.GetOAuth2Client(t.Context(), "rp-1")
			require.NoError(t, err)
			assert.Equal(t, want, got2)
		}},
		{"TestClients_PublicClientWithEmptyListsRoundTrips", func(t *testing.T, s *storage.Store, _ *clock) {
			want := &storage.Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example/cb"}}
			require.NoError(t, s.CreateClient(t.Context(), want))
			got, err := s.GetOAuth2Client(t.Context(), "spa")
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.Equal(t, "none", got.GetTokenEndpointAuthMethod())
			assert.False(t, got.RequireSecondFactor)
		}},
		{"TestClients_PermissionsRoundTrip", func(t *testing.T, s *storage.Store, clk *clock) {
			// login_ui and introspect_any are stored, listed, and come
			// back with the client a token read joins in.
			plain := newTestClient(t, s, "plain")
			ui := &storage.Client{ID: "ui", LoginUI: true}
			rs := &storage.Client{ID: "rs", IntrospectAny: true, ClientURI: "https://rs.example/home"}
			require.NoError(t, s.CreateClient(t.Context(), ui))
			require.NoError(t, s.CreateClient(t.Context(), rs))
			for _, want := range []*storage.Client{plain, ui, rs} {
				got, err := s.GetOAuth2Client(t.Context(), want.ID)
				require.NoError(t, err)
				assert.Equal(t, want.LoginUI, got.LoginUI, want.ID)
				assert.Equal(t, want.IntrospectAny, got.IntrospectAny, want.ID)
				assert.Equal(t, want.ClientURI, got.ClientURI, want.ID)
			}
			clients, err := s.ListClients(t.Context())
			require.NoError(t, err)
			byID := map[string]storage.Client{}
			for _, c := range clients {
				byID[c.ID] = c
			}
			assert.True(t, byID["ui"].LoginUI && !byID["ui"].IntrospectAny)
			assert.True(t, byID["rs"].IntrospectAny && !byID["rs"].LoginUI)
			assert.False(t, byID["plain"].LoginUI || byID["plain"].IntrospectAny)
			assert.Equal(t, "https://rs.example/home", byID["rs"].ClientURI)

			req := newTestRequest(clk, ui, "user-1")
			require.NoError(t, s.CreateAccessTokenSession(t.Context(), "sig-ui", req))
			got, err := s.GetAccessTokenSession(t.Context(), "sig-ui", &openid.DefaultSession{})
			require.NoError(t, err)
			assert.True(t, got.GetClient().(*storage.Client).LoginUI)
		}},
		{"TestClients_KeyRegistrationRoundTrips", func(t *testing.T, s *storage.Store, _ *clock) {
			// The private_key_jwt and ID-token signing fields are stored and
			// read back; the inline set is what fosite verifies against.
			jwks := `{"keys":[{"use":"sig","kty":"EC","kid":"k1","crv":"P-256","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
			want := &storage.Client{ID: "pk", TokenEndpointAuthMethod: "private_key_jwt", JWKS: jwks,
				TokenEndpointAuthSigningAlg: "ES256", IDTokenSignedResponseAlg: "ES256"}
			byURI := &storage.Client{ID: "pk-uri", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "https://rp.example/jwks"}
			require.NoError(t, s.CreateClient(t.Context(), want))
			require.NoError(t, s.CreateClient(t.Context(), byURI))
			got, err := s.GetOAuth2Client(t.Context(), "pk")
			require.NoError(t, err)
			assert.Equal(t, want, got)
			require.NotNil(t, got.GetJSONWebKeys())
			assert.Len(t, got.GetJSONWebKeys().Key("k1"), 1)
			assert.Equal(t, "ES256", got.GetTokenEndpointAuthSigningAlgorithm())
			got, err = s.GetOAuth2Client(t.Context(), "pk-uri")
			require.NoError(t, err)
			assert.Nil(t, got.GetJSONWebKeys())
			assert.Equal(t, "https://rp.example/jwks", got.GetJSONWebKeysURI())
			assert.Equal(t, "RS256", got.GetTokenEndpointAuthSigningAlgorithm())
		}},
		{"TestClients_DuplicateIDIsAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			newTestClient(t, s, "rp-1")
			err := s.CreateClient(t.Context(), &storage.Client{ID: "rp-1"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
		}},
		{"TestClients_GetMissingIsNotFoundForFositeToo", func(t *testing.T, s *storage.Store, _ *clock) {
			_, err := s.GetClient(t.Context(), "nope")
			requireNotFound(t, err)
			_, err = s.GetOAuth2Client(t.Context(), "nope")
			requireNotFound(t, err)
		}},
		{"TestClients_ListOrderedByCreatedAt", func(t *testing.T, s *storage.Store, clk *clock) {
			clk.Add(time.Second)
			newTestClient(t, s, "b")
			clk.Add(-2 * time.Second)
			newTestClient(t, s, "a")
			clients, err := s.ListClients(t.Context())
			require.NoError(t, err)
			require.Len(t, clients, 2)
			assert.Equal(t, "a", clients[0].ID)
			assert.Equal(t, "b", clients[1].ID)
			assert.Equal(t, []string{"code"}, clients[0].ResponseTypes)
		}},
		{"TestClients_DeleteRemovesItsCodesTokensPKCEAndOIDCSessions", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			gone, kept := newTestClient(t, s, "gone"), newTestClient(t, s, "kept")
			for _, c := range []*storage.Client{gone, kept} {
				r := newTestRequest(clk, c, "sub")
				require.NoError(t, s.CreateAuthorizeCodeSession(ctx, "code-"+c.ID, r))
				require.NoError(t, s.CreateAccessTokenSession(ctx, "at-"+c.ID, r))
				require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-"+c.ID, "at-"+c.ID, r))
				require.NoError(t, s.CreatePKCERequestSession(ctx, "pkce-"+c.ID, r))
				require.NoError(t, s.CreateOpenIDConnectSession(ctx, "raw-code-"+c.ID, r))
			}

			require.NoError(t, s.DeleteClient(ctx, "gone"))
			_, err := s.GetClient(ctx, "gone")
			requireNotFound(t, err)
			for id, wantGone := range map[string]bool{"gone": true, "kept": false} {
				check := func(_ fosite.Requester, err error) {
					t.Helper()
					if wantGone {
						requireNotFound(t, err)
					} else {
						assert.NoError(t, err)
					}
				}
				check(s.GetAuthorizeCodeSession(ctx, "code-"+id, openid.NewDefaultSession()))
				check(s.GetAccessTokenSession(ctx, "at-"+id, openid.NewDefaultSession()))
				check(s.GetRefreshTokenSession(ctx, "rt-"+id, openid.NewDefaultSession()))
				check(s.GetPKCERequestSession(ctx, "pkce-"+id, openid.NewDefaultSession()))
				check(s.GetOpenIDConnectSession(ctx, "raw-code-"+id, fosite.NewAccessRequest(openid.NewDefaultSession())))
			}

			requireNotFound(t, s.DeleteClient(ctx, "gone"))
		}},
	}
}

func clientAssertionTests() []conformanceTest {
	return []conformanceTest{
		{"TestClientAssertionJWT_KnownJTIRejectedUntilExpiry", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			require.NoError(t, s.ClientAssertionJWTValid(ctx, "jti-1"))
			require.NoError(t, s.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Minute)))

			assert.ErrorIs(t, s.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
			assert.ErrorIs(t, s.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Hour)), fosite.ErrJTIKnown)
			assert.NoError(t, s.ClientAssertionJWTValid(ctx, "jti-2"))

			clk.Add(time.Minute + time.Second)
			assert.NoError(t, s.ClientAssertionJWTValid(ctx, "jti-1"), "an expired jti may be seen again")
			assert.NoError(t, s.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Minute)), "expired jtis are deleted before the insert")
			assert.ErrorIs(t, s.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
		}},
	}
}
