package provider_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// fakeIntrospector answers every token from a table: token → (use, request).
type fakeIntrospector struct {
	tokens map[string]fosite.AccessRequester
	uses   map[string]fosite.TokenUse
}

func (f *fakeIntrospector) IntrospectToken(_ context.Context, token string, _ fosite.TokenUse, _ fosite.Session, _ ...string) (fosite.TokenUse, fosite.AccessRequester, error) {
	ar, ok := f.tokens[token]
	if !ok {
		return "", nil, fosite.ErrRequestUnauthorized
	}
	return f.uses[token], ar, nil
}

// hostSession is a host's own session type that knows its sid.
type hostSession struct {
	*openid.DefaultSession
	LoginSID string
}

func (s *hostSession) SessionID() string { return s.LoginSID }

func newHostProvider(t *testing.T, host *provider.Host) *provider.Provider {
	t.Helper()
	cfg := config.Default()
	cfg.Secrets.System = strings.Repeat("host-secret-", 4)
	store := storagetest.NewSQLite(t)
	p, err := provider.New(t.Context(), cfg, store, provider.Options{Host: host})
	require.NoError(t, err)
	return p
}

func accessRequest(client string, session fosite.Session, scopes ...string) *fosite.AccessRequest {
	ar := fosite.NewAccessRequest(session)
	ar.Client = &fosite.DefaultClient{ID: client}
	ar.GrantedScope = scopes
	return ar
}

func TestNew_WithHostComposesNoFositeAndKeepsNoKeys(t *testing.T) {
	p := newHostProvider(t, &provider.Host{OAuth2: &fakeIntrospector{}})
	assert.Nil(t, p.OAuth2)
	assert.Nil(t, p.Fosite)
	assert.Nil(t, p.Keys)
	keys, err := p.Store().ListSigningKeys(t.Context())
	require.NoError(t, err)
	assert.Empty(t, keys, "a host's plugin must not create signing keys")
}

func TestNew_WithHostWithoutOAuth2IsAnError(t *testing.T) {
	cfg := config.Default()
	cfg.Secrets.System = strings.Repeat("host-secret-", 4)
	_, err := provider.New(t.Context(), cfg, storagetest.NewSQLite(t), provider.Options{Host: &provider.Host{}})
	require.ErrorContains(t, err, "Host.OAuth2")
}

func TestAuthenticateBearer_WithHostUsesItsIntrospection(t *testing.T) {
	defaultSession := &openid.DefaultSession{Subject: "user-1", Claims: &jwt.IDTokenClaims{Extra: map[string]any{"sid": "sid-1"}}}
	carrier := &hostSession{DefaultSession: &openid.DefaultSession{Subject: "user-2"}, LoginSID: "sid-2"}
	fake := &fakeIntrospector{
		tokens: map[string]fosite.AccessRequester{
			"at-default": accessRequest("rp", defaultSession, "user:otp:verify"),
			"at-carrier": accessRequest("rp", carrier, "user:sessions:update"),
			"rt":         accessRequest("rp", defaultSession),
		},
		uses: map[string]fosite.TokenUse{"at-default": fosite.AccessToken, "at-carrier": fosite.AccessToken, "rt": fosite.RefreshToken},
	}
	p := newHostProvider(t, &provider.Host{OAuth2: fake})
	for _, tc := range []struct {
		name, token          string
		wantSubject, wantSID string
		wantScope            string
		wantErr              error
	}{
		{name: "default session carries sid in Extra", token: "at-default", wantSubject: "user-1", wantSID: "sid-1", wantScope: "user:otp:verify"},
		{name: "a SessionIDCarrier names its sid", token: "at-carrier", wantSubject: "user-2", wantSID: "sid-2", wantScope: "user:sessions:update"},
		{name: "a refresh token is refused", token: "rt", wantErr: provider.ErrTokenInactive},
		{name: "an unknown token is refused", token: "nope", wantErr: provider.ErrTokenInactive},
		{name: "no token", token: "", wantErr: provider.ErrNoBearer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := p.AuthenticateBearer(t.Context(), tc.token)
			if tc.wantErr != nil {
				require.True(t, errors.Is(err, tc.wantErr), "err = %v, want %v", err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantSubject, pr.Subject)
			assert.Equal(t, tc.wantSID, pr.SessionID)
			assert.Equal(t, "rp", pr.ClientID)
			assert.True(t, pr.Scopes.Has(tc.wantScope))
		})
	}
}

func TestAuthenticateBearer_WithHostSessionIDFunc(t *testing.T) {
	session := &openid.DefaultSession{Subject: "user-3", Claims: &jwt.IDTokenClaims{Extra: map[string]any{"login": "sid-3"}}}
	fake := &fakeIntrospector{
		tokens: map[string]fosite.AccessRequester{"at": accessRequest("rp", session)},
		uses:   map[string]fosite.TokenUse{"at": fosite.AccessToken},
	}
	var hydrated int
	p := newHostProvider(t, &provider.Host{
		OAuth2:     fake,
		NewSession: func() fosite.Session { hydrated++; return &openid.DefaultSession{} },
		SessionID: func(s fosite.Session) string {
			sid, _ := s.(*openid.DefaultSession).Claims.Extra["login"].(string)
			return sid
		},
	})
	pr, err := p.AuthenticateBearer(t.Context(), "at")
	require.NoError(t, err)
	assert.Equal(t, "sid-3", pr.SessionID)
	assert.Equal(t, 1, hydrated)
}

func TestSessionID_ReadsEverySessionShape(t *testing.T) {
	withSID := func(sid string) *jwt.IDTokenClaims { return &jwt.IDTokenClaims{Extra: map[string]any{"sid": sid}} }
	type embedded struct{ *openid.DefaultSession }
	for _, tc := range []struct {
		name    string
		session fosite.Session
		want    string
	}{
		{"default session", &openid.DefaultSession{Claims: withSID("a")}, "a"},
		{"default session without claims", &openid.DefaultSession{}, ""},
		{"a host type embedding the default session", embedded{&openid.DefaultSession{Claims: withSID("b")}}, "b"},
		{"a SessionIDCarrier", &hostSession{DefaultSession: &openid.DefaultSession{Claims: withSID("ignored")}, LoginSID: "c"}, "c"},
		{"a session that is not OpenID Connect", &fosite.DefaultSession{Subject: "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, provider.SessionID(tc.session))
		})
	}
}
