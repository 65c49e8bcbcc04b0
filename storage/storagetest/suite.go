// Package storagetest is the one conformance suite of storage.Store, run
// against SQLite and PostgreSQL, plus helpers that give other packages' tests a
// migrated store.
package storagetest

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// conformanceTest is one behaviour of the store. s runs on clk.
type conformanceTest struct {
	name string
	run  func(t *testing.T, s *storage.Store, clk *clock)
}

// RunTests runs the conformance suite: one named subtest per behaviour, each
// on its own store from newStore (which must return a migrated store and
// clean it up), so subtests run in parallel. Times come from a fake clock
// (Store.WithClock); nothing sleeps.
func RunTests(t *testing.T, newStore func(t *testing.T) *storage.Store) {
	var tests []conformanceTest
	for _, group := range [][]conformanceTest{
		migrateTests(), userTests(), clientTests(), clientAssertionTests(),
		authorizeCodeTests(), accessTokenTests(), refreshTokenTests(), pkceTests(), openIDConnectTests(),
		transactionTests(), loginSessionTests(), signingKeyTests(), auditTests(), rateCounterTests(), rateReservationTests(), purgeTests(),
		fositeFlowTests(), clientLoaderTests(), sessionChallengeTests(), otpChallengeTests(), otpVerifyTests(), outboxTests(), linkedIdentityTests(), federatedTokenTests(), externalUserTests(), endsTests(),
		passwordResetTests(),
		logoutTests(),
		userPINTests(),
		totpCredentialTests(),
	} {
		tests = append(tests, group...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			s := newStore(t).WithClock(clk.Now)
			tc.run(t, s, clk)
		})
	}
}

// clock is a fake clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts just before a second boundary, so that comparisons of
// stored timestamps are exercised across it.
func newClock() *clock { return &clock{t: time.Date(2024, 5, 6, 7, 8, 59, 999_900_000, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newTestClient stores a client with every field set.
func newTestClient(t *testing.T, s *storage.Store, id string) *storage.Client {
	t.Helper()
	c := &storage.Client{
		ID:                      id,
		SecretHash:              "sha256$00ff",
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://rp.example/cb", "http://127.0.0.1:8080/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scopes:                  []string{"openid", "offline_access", "user:sessions:update"},
		Audience:                []string{"https://api.example"},
		SkipConsent:             true,
		RequireSecondFactor:     true,
		TokenEndpointAuthMethod: "client_secret_post",
	}
	require.NoError(t, s.CreateClient(t.Context(), c))
	return c
}

// newTestRequest is an authorize/token request of client with an OpenID
// Connect session for subject, as fosite would store it.
func newTestRequest(clk *clock, client *storage.Client, subject string) *fosite.Request {
	now := clk.Now()
	session := &openid.DefaultSession{
		Claims: &jwt.IDTokenClaims{
			Issuer:                              "https://id.example",
			Subject:                             subject,
			Audience:                            []string{client.ID},
			Nonce:                               "n-0S6_WzA2Mj",
			RequestedAt:                         now,
			AuthTime:                            now.Add(-time.Minute),
			AuthenticationContextClassReference: "otp",
			AuthenticationMethodsReferences:     []string{"pwd", "otp"},
			Extra:                               map[string]any{"sid": uuid.NewString()},
		},
		Headers: &jwt.Headers{Extra: map[string]any{"kid": "key-1"}},
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AuthorizeCode: now.Add(10 * time.Minute),
			fosite.AccessToken:   now.Add(time.Hour),
			fosite.RefreshToken:  now.Add(30 * 24 * time.Hour),
		},
		Username: subject + "@example.com",
		Subject:  subject,
	}
	return &fosite.Request{
		ID:                uuid.NewString(),
		RequestedAt:       now,
		Client:            client,
		RequestedScope:    fosite.Arguments{"openid", "offline_access"},
		GrantedScope:      fosite.Arguments{"openid"},
		Form:              url.Values{"redirect_uri": {"https://rp.example/cb"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}},
		Session:           session,
		RequestedAudience: fosite.Arguments{"https://api.example"},
		GrantedAudience:   fosite.Arguments{"https://api.example"},
	}
}

// requireRequest asserts that got is want restored from the store. With
// wantSession false, got must carry no session.
func requireRequest(t *testing.T, want *fosite.Request, got fosite.Requester, wantSession bool) {
	t.Helper()
	require.NotNil(t, got)
	assert.Equal(t, want.ID, got.GetID())
	assert.True(t, want.RequestedAt.Equal(got.GetRequestedAt()), "requested at: want %s, got %s", want.RequestedAt, got.GetRequestedAt())
	assert.Equal(t, want.Client, got.GetClient())
	assert.Equal(t, want.RequestedScope, got.GetRequestedScopes())
	assert.Equal(t, want.GrantedScope, got.GetGrantedScopes())
	assert.Equal(t, want.RequestedAudience, got.GetRequestedAudience())
	assert.Equal(t, want.GrantedAudience, got.GetGrantedAudience())
	assert.Equal(t, want.Form, got.GetRequestForm())
	if wantSession {
		assert.Equal(t, want.Session, got.GetSession())
	} else {
		assert.Nil(t, got.GetSession())
	}
}

// requireNotFound asserts err matches both storage.ErrNotFound and fosite.ErrNotFound.
func requireNotFound(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrNotFound)
	assert.ErrorIs(t, err, fosite.ErrNotFound)
}
