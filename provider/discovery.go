package provider

import "context"

// Discovery is the OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3).
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ACRValuesSupported                []string `json:"acr_values_supported"`
	// OpenID Connect Prompt Create 1.0 §4.
	PromptValuesSupported []string `json:"prompt_values_supported"`
	UILocalesSupported    []string `json:"ui_locales_supported"`
	// Client authentication per endpoint (RFC 8414 §2).
	TokenEndpointAuthSigningAlgValuesSupported         []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethodsSupported          []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethodsSupported             []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgValuesSupported    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	// Back-Channel Logout 1.0 §2.1.
	BackchannelLogoutSupported        bool `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool `json:"backchannel_logout_session_supported"`
	RequestParameterSupported         bool `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool `json:"request_uri_parameter_supported"`
}

// Discovery describes this provider. id_token_signing_alg_values_supported
// lists only the algorithms that have an active key (otpstep keys rotate
// --alg adds one), so a relying party is never told of one nothing signs.
func (p *Provider) Discovery(ctx context.Context) (Discovery, error) {
	iss := p.Issuer()
	algs, err := p.Keys.Algorithms(ctx)
	if err != nil {
		return Discovery{}, err
	}
	return Discovery{
		Issuer:                            iss,
		AuthorizationEndpoint:             iss + PathAuthorize,
		TokenEndpoint:                     iss + PathToken,
		UserinfoEndpoint:                  iss + PathUserinfo,
		JWKSURI:                           iss + PathJWKS,
		IntrospectionEndpoint:             iss + PathIntrospect,
		RevocationEndpoint:                iss + PathRevoke,
		EndSessionEndpoint:                iss + PathEndSession,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               supportedGrants,
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  algs,
		ScopesSupported:                   []string{"openid", "offline_access", "email"},
		TokenEndpointAuthMethodsSupported: TokenEndpointAuthMethods,
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported:                   []string{"sub", "iss", "aud", "exp", "iat", "jti", "auth_time", "nonce", "at_hash", "acr", "amr", "sid", "email", "email_verified"},
		ACRValuesSupported:                []string{ACRPassword, ACRSecondFactor},
		PromptValuesSupported:             PromptValues,
		UILocalesSupported:                p.uiLocales(),
		// The same strategy authenticates clients at all three endpoints.
		TokenEndpointAuthSigningAlgValuesSupported:         ClientAssertionSigningAlgs,
		IntrospectionEndpointAuthMethodsSupported:          IntrospectionEndpointAuthMethods,
		IntrospectionEndpointAuthSigningAlgValuesSupported: ClientAssertionSigningAlgs,
		RevocationEndpointAuthMethodsSupported:             RevocationEndpointAuthMethods,
		RevocationEndpointAuthSigningAlgValuesSupported:    ClientAssertionSigningAlgs,
		// Every logout token carries sid.
		BackchannelLogoutSupported:        p.logouts != nil,
		BackchannelLogoutSessionSupported: p.logouts != nil,
	}, nil
}

// uiLocales are the languages of the pages, the default first.
func (p *Provider) uiLocales() []string {
	var out []string
	for _, l := range p.catalogs.Locales() {
		out = append(out, l.Tag())
	}
	return out
}
