package storagetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// fositeFlowTests drive real fosite handlers over the store: what the unit
// behaviours above add up to.
func fositeFlowTests() []conformanceTest {
	return []conformanceTest{
		{"TestFositeFlow_CodePKCERefreshReplayRevokesTheGrant", testFositeFlow},
	}
}

func newTestProvider(t *testing.T, s *storage.Store) fosite.OAuth2Provider {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	keyGetter := func(context.Context) (any, error) { return key, nil }
	config := &fosite.Config{
		GlobalSecret:          []byte("0123456789abcdef0123456789abcdef"),
		AccessTokenLifespan:   time.Hour,
		RefreshTokenLifespan:  24 * time.Hour,
		AuthorizeCodeLifespan: 10 * time.Minute,
		IDTokenIssuer:         "https://id.example",
		EnforcePKCE:           true,
	}
	return compose.Compose(config, s, &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(config),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, config),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
}

func tokenRequest(t *testing.T, p fosite.OAuth2Provider, form url.Values) (fosite.AccessResponder, error) {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "https://id.example/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ar, err := p.NewAccessRequest(t.Context(), r, openid.NewDefaultSession())
	if err != nil {
		return nil, err
	}
	return p.NewAccessResponse(t.Context(), ar)
}

func introspect(t *testing.T, p fosite.OAuth2Provider, token string) error {
	t.Helper()
	_, _, err := p.IntrospectToken(t.Context(), token, fosite.AccessToken, openid.NewDefaultSession())
	return err
}

func testFositeFlow(t *testing.T, s *storage.Store, _ *clock) {
	ctx := t.Context()
	require.NoError(t, s.CreateClient(ctx, &storage.Client{
		ID: "spa", Public: true,
		RedirectURIs:  []string{"https://spa.example/cb"},
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scopes:        []string{"openid", "offline_access"},
	}))
	p := newTestProvider(t, s)

	// Authorization request with PKCE (RFC 7636 §4.2: S256 challenge).
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-" + "otpstep"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"https://spa.example/cb"},
		"scope": {"openid offline_access"}, "state": {"state-12345"}, "nonce": {"nonce-12345"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	ar, err := p.NewAuthorizeRequest(ctx, httptest.NewRequestWithContext(ctx, http.MethodGet, "https://id.example/oauth2/auth?"+q.Encode(), nil))
	require.NoError(t, err)
	ar.GrantScope("openid")
	ar.GrantScope("offline_access")
	now := time.Now().UTC()
	session := &openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{Subject: "alice", AuthTime: now.Add(-time.Minute), RequestedAt: now, AuthenticationMethodsReferences: []string{"pwd", "otp"}},
		Headers: &jwt.Headers{Extra: map[string]any{"kid": "key-1"}},
		Subject: "alice",
	}
	aresp, err := p.NewAuthorizeResponse(ctx, ar, session)
	require.NoError(t, err)
	code := aresp.GetParameters().Get("code")
	require.NotEmpty(t, code)

	// Code exchange: access, refresh and ID token.
	codeForm := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"spa"},
		"redirect_uri": {"https://spa.example/cb"}, "code_verifier": {verifier}}
	tok, err := tokenRequest(t, p, codeForm)
	require.NoError(t, err)
	at1, rt1 := tok.GetAccessToken(), tok.GetExtra("refresh_token").(string)
	assert.NotEmpty(t, tok.GetExtra("id_token"))
	require.NoError(t, introspect(t, p, at1))

	// Refresh: a new pair; the old access token is gone.
	tok, err = tokenRequest(t, p, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {"spa"}})
	require.NoError(t, err)
	at2, rt2 := tok.GetAccessToken(), tok.GetExtra("refresh_token").(string)
	require.NoError(t, introspect(t, p, at2))
	assert.Error(t, introspect(t, p, at1), "rotation revokes the previous access token")

	// Replaying the rotated refresh token revokes the whole grant (RFC 6819 §5.2.2.3).
	_, err = tokenRequest(t, p, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {"spa"}})
	assert.ErrorIs(t, err, fosite.ErrInvalidGrant)
	assert.Error(t, introspect(t, p, at2), "the replay revoked the current access token")
	_, err = tokenRequest(t, p, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {"spa"}})
	assert.Error(t, err, "the replay revoked the current refresh token")

	// Replaying the code is refused too.
	_, err = tokenRequest(t, p, codeForm)
	assert.ErrorIs(t, err, fosite.ErrInvalidGrant)
}
