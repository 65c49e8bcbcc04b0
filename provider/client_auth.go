package provider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Client authentication methods (OpenID Connect Core §9, RFC 7591 §2).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
	AuthNone              = "none"
)

// TokenEndpointAuthMethods are the methods a client may register, each
// served at the token endpoint; discovery lists them.
var TokenEndpointAuthMethods = []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone}

// IntrospectionEndpointAuthMethods: every method but none, since a public
// client cannot authenticate and Introspect refuses it (RFC 7662 §2.1).
var IntrospectionEndpointAuthMethods = []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT}

// RevocationEndpointAuthMethods: every method; a public client revokes its
// own tokens with its client_id (RFC 7009 §2.1).
var RevocationEndpointAuthMethods = TokenEndpointAuthMethods

// ClientAssertionSigningAlgs are the algorithms a private_key_jwt client may
// register for its assertions (fosite verifies RS256 with an RSA key, ES256
// with a P-256 key).
var ClientAssertionSigningAlgs = []string{"RS256", "ES256"}

// clientAuthMethodOf is the method a token, introspection or revocation
// request uses. RFC 6749 §2.3: "The client MUST NOT use more than one
// authentication method in each request", so two at once is an error.
func clientAuthMethodOf(r *http.Request, form url.Values) (string, error) {
	var used []string
	if h := r.Header.Get("Authorization"); len(h) > 6 && strings.EqualFold(h[:6], "basic ") {
		used = append(used, AuthClientSecretBasic)
	}
	if form.Get("client_secret") != "" {
		used = append(used, AuthClientSecretPost)
	}
	if form.Get("client_assertion_type") != "" || form.Get("client_assertion") != "" {
		used = append(used, AuthPrivateKeyJWT)
	}
	switch len(used) {
	case 0:
		return AuthNone, nil
	case 1:
		return used[0], nil
	}
	return "", fosite.ErrInvalidRequest.WithHintf("The request uses more than one client authentication method (%s).", strings.Join(used, ", "))
}

// registeredMethodClient is the part of a fosite.Client that names its
// registered method (fosite.OpenIDConnectClient has it).
type registeredMethodClient interface {
	GetTokenEndpointAuthMethod() string
}

// clientAuthentication is fosite's ClientAuthenticationStrategy for every
// endpoint that authenticates clients (token, introspection, revocation):
//
//  1. the request's method is found (at most one, RFC 6749 §2.3);
//  2. fosite authenticates the client by it (the secret in constant time;
//     for private_key_jwt, RFC 7523 §3: iss and sub are the client, aud
//     the token endpoint or the issuer, exp set, the signature by the
//     client's registered key and algorithm, and the jti recorded once in
//     storage so a replay fails on every instance);
//  3. the method must be the one the client registered: a client_secret_post
//     client's secret in a Basic header, or a confidential client sending
//     only its client_id, is invalid_client.
func clientAuthentication(f *fosite.Fosite) fosite.ClientAuthenticationStrategy {
	return func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		used, err := clientAuthMethodOf(r, form)
		if err != nil {
			return nil, err
		}
		client, err := f.DefaultClientAuthenticationStrategy(ctx, r, form)
		if err != nil {
			return nil, err
		}
		registered := AuthClientSecretBasic
		if rc, ok := client.(registeredMethodClient); ok {
			registered = rc.GetTokenEndpointAuthMethod()
		}
		if used != registered {
			return nil, fosite.ErrInvalidClient.WithHintf("The client is registered with token_endpoint_auth_method '%s' and authenticated with '%s'.", registered, used)
		}
		return client, nil
	}
}

// assertionAudienceConfig is fosite's configuration with the audiences a
// client assertion may name: RFC 7523 §3 "the token endpoint URL of the
// authorization server MAY be used", and OpenID Connect Core §9 accepts the
// issuer too.
type assertionAudienceConfig struct {
	*fosite.Config
	audiences []string
}

func (c assertionAudienceConfig) GetTokenURLs(context.Context) []string { return c.audiences }

// checkClientJWKS parses a client's JWK Set for private_key_jwt: public
// keys only, and at least one signing key (use "sig", which fosite
// requires) of the type alg needs. It returns the set as stored and the
// algorithm (alg, or when empty the one the first signing key implies).
func checkClientJWKS(raw []byte, alg string) (string, string, error) {
	var set jose3.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return "", "", fmt.Errorf("not a JWK Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return "", "", fmt.Errorf("the JWK Set has no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return "", "", fmt.Errorf("key %q is private: register public keys only", k.KeyID)
		}
	}
	fits := func(k jose3.JSONWebKey, alg string) bool {
		if k.Use != "sig" || (k.Algorithm != "" && k.Algorithm != alg) {
			return false
		}
		switch alg {
		case "RS256":
			_, ok := k.Key.(*rsa.PublicKey)
			return ok
		case "ES256":
			ek, ok := k.Key.(*ecdsa.PublicKey)
			return ok && ek.Curve == elliptic.P256()
		}
		return false
	}
	if alg == "" {
		for _, k := range set.Keys {
			for _, a := range ClientAssertionSigningAlgs {
				if alg == "" && fits(k, a) {
					alg = a
				}
			}
		}
		if alg == "" {
			return "", "", fmt.Errorf(`no key with "use":"sig" is an RSA or P-256 key`)
		}
	}
	if !slices.ContainsFunc(set.Keys, func(k jose3.JSONWebKey) bool { return fits(k, alg) }) {
		return "", "", fmt.Errorf(`no key with "use":"sig" fits %s`, alg)
	}
	out, err := json.Marshal(set)
	if err != nil {
		return "", "", err
	}
	return string(out), alg, nil
}
