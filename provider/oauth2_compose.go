package provider

import (
	"context"
	"fmt"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/storage"
)

// composeOAuth2 builds otpstep's own authorization server: the signing keys
// (one is created when none exists) and fosite composed over storage.
func composeOAuth2(ctx context.Context, cfg config.Config, store *storage.Store, clients *clientCache, clock Clock, m *metrics.Metrics) (fosite.OAuth2Provider, *fosite.Config, *KeySet, error) {
	secret := []byte(cfg.Secrets.System)
	hmacSecret, err := DeriveKey(secret, "fosite-hmac", 32)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secrets.system: %w", err)
	}
	keySealer, err := NewSealer(secret, "signing-keys")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secrets.system: %w", err)
	}
	longest := cfg.OAuth2.IDTokenLifespan
	if cfg.OAuth2.AccessTokenLifespan > longest {
		longest = cfg.OAuth2.AccessTokenLifespan
	}
	keys, err := NewKeySet(store, keySealer, clock, cfg.OAuth2.SigningAlg, longest)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := keys.Ensure(ctx); err != nil {
		return nil, nil, nil, fmt.Errorf("signing key: %w", err)
	}

	issuer := cfg.Server.PublicURL
	fc := &fosite.Config{
		AccessTokenLifespan:      cfg.OAuth2.AccessTokenLifespan,
		RefreshTokenLifespan:     cfg.OAuth2.RefreshTokenLifespan,
		AuthorizeCodeLifespan:    cfg.OAuth2.AuthorizeCodeLifespan,
		IDTokenLifespan:          cfg.OAuth2.IDTokenLifespan,
		IDTokenIssuer:            issuer,
		AccessTokenIssuer:        issuer,
		TokenURL:                 issuer + PathToken,
		GlobalSecret:             hmacSecret,
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		// RFC 9700 §2.1.1: PKCE for every client unless the operator relaxes it.
		EnforcePKCE:                    cfg.OAuth2.EnforcePKCE == "all",
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ClientSecretsHasher:            ClientSecretHasher{},
		SendDebugMessagesToClients:     false,
		MinParameterEntropy:            fosite.MinParameterEntropy,
		RefreshTokenScopes:             []string{"offline_access", "offline"},
		OmitRedirectScopeParam:         true,
		// A private_key_jwt client's jwks_uri: a key without "use" signs
		// (RFC 7517 §4.2), which fosite alone would refuse; fetched
		// without retryablehttp's log lines on stderr, in bounded time.
		JWKSFetcherStrategy: &unsetUseSigns{},
	}
	// Token reads outside a transaction (introspection) take their client
	// from the cache instead of joining the client row.
	st := &fositeStore{Store: store.WithClientLoader(clients.loader()), clients: clients, metrics: m}
	signer := &jwt.DefaultSigner{GetPrivateKey: keys.FositeKey}
	strategy := &compose.CommonStrategy{
		CoreStrategy: compose.NewOAuth2HMACStrategy(fc),
		// ID tokens on the provider's clock (openid_token.go).
		OpenIDConnectTokenStrategy: idTokenStrategy{signer: signer, issuer: issuer, lifespan: cfg.OAuth2.IDTokenLifespan, clock: clock},
		Signer:                     signer,
	}
	oauth2 := compose.Compose(fc, st, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory, // after the explicit-code factory
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		openIDConnectExplicitFactory(keys, issuer, clock),
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	// Every endpoint that authenticates clients (token, introspection,
	// revocation) goes through clientAuthentication, and a client assertion
	// may name the token endpoint or the issuer as its audience.
	f, ok := oauth2.(*fosite.Fosite)
	if !ok {
		return nil, nil, nil, fmt.Errorf("compose: %T is not *fosite.Fosite", oauth2)
	}
	f.Config = assertionAudienceConfig{Config: fc, audiences: []string{issuer + PathToken, issuer}}
	fc.ClientAuthenticationStrategy = clientAuthentication(f)
	return oauth2, fc, keys, nil
}

// openIDConnectExplicitFactory is compose.OpenIDConnectExplicitFactory with
// otpstep's authorize-side checks (openIDConnectExplicit).
func openIDConnectExplicitFactory(keys *KeySet, issuer string, clock Clock) compose.Factory {
	return func(config fosite.Configurator, storage interface{}, strategy interface{}) interface{} {
		fositeHandler := compose.OpenIDConnectExplicitFactory(config, storage, strategy).(*openid.OpenIDConnectExplicitHandler)
		return &openIDConnectExplicit{
			OpenIDConnectExplicitHandler: fositeHandler,
			storage:                      fositeHandler.OpenIDConnectRequestStorage,
			keys:                         keys,
			issuer:                       issuer,
			clock:                        clock,
			entropy:                      config.GetMinParameterEntropy(context.Background()),
		}
	}
}
