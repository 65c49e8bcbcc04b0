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
	"sync"
	"time"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
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

// signingUse is a client's JWK Set with every key that has no "use"
// marked "sig": RFC 7517 §4.2 makes "use" optional, and a key without it
// may sign, but fosite's key lookup takes only keys saying "sig" (an RP
// such as Apache's mod_auth_openidc publishes its key without "use"). A key
// of another use ("enc") stays as it is and never verifies an assertion.
func signingUse(set *jose3.JSONWebKeySet) *jose3.JSONWebKeySet {
	out := &jose3.JSONWebKeySet{Keys: make([]jose3.JSONWebKey, 0, len(set.Keys))}
	for _, k := range set.Keys {
		if k.Use == "" {
			k.Use = "sig"
		}
		out.Keys = append(out.Keys, k)
	}
	return out
}

// jwksHTTPClient fetches private_key_jwt clients' jwks_uri: fosite's
// default retryablehttp client logs every request to stderr ("[DEBUG] GET
// …", outside otpstep's log) and retries for up to minutes with no overall
// timeout, holding the token request. This one logs nothing, tries twice
// and gives each try 5 seconds.
func jwksHTTPClient() *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 1
	c.RetryWaitMax = time.Second
	c.HTTPClient.Timeout = 5 * time.Second
	return c
}

// unsetUseSigns is the JWKSFetcherStrategy for a client's jwks_uri:
// fosite's default one (with jwksHTTPClient), each fetched set read with
// signingUse. It is made at the first fetch, as fosite makes its own: its
// cache runs goroutines that nothing stops, which a provider without
// jwks_uri clients should not carry.
type unsetUseSigns struct {
	once    sync.Once
	fetcher fosite.JWKSFetcherStrategy
}

func (s *unsetUseSigns) Resolve(ctx context.Context, location string, ignoreCache bool) (*jose3.JSONWebKeySet, error) {
	s.once.Do(func() {
		s.fetcher = fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(jwksHTTPClient()))
	})
	set, err := s.fetcher.Resolve(ctx, location, ignoreCache)
	if err != nil {
		return nil, err
	}
	return signingUse(set), nil
}

// checkClientJWKS parses a client's JWK Set for private_key_jwt: public
// keys only, and at least one signing key (use "sig" or unset) of the type
// alg needs. It returns the set as stored, keys without "use" marked "sig"
// (signingUse), and the algorithm (alg, or when empty the one the first
// signing key implies).
func checkClientJWKS(raw []byte, alg string) (string, string, error) {
	var parsed jose3.JSONWebKeySet
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return "", "", fmt.Errorf("not a JWK Set: %v", err)
	}
	if len(parsed.Keys) == 0 {
		return "", "", fmt.Errorf("the JWK Set has no keys")
	}
	for _, k := range parsed.Keys {
		if !k.IsPublic() {
			return "", "", fmt.Errorf("key %q is private: register public keys only", k.KeyID)
		}
	}
	set := signingUse(&parsed)
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
			return "", "", fmt.Errorf(`no signing key ("use" "sig" or unset) is an RSA or P-256 key`)
		}
	}
	if !slices.ContainsFunc(set.Keys, func(k jose3.JSONWebKey) bool { return fits(k, alg) }) {
		return "", "", fmt.Errorf(`no signing key ("use" "sig" or unset) fits %s`, alg)
	}
	out, err := json.Marshal(set)
	if err != nil {
		return "", "", err
	}
	return string(out), alg, nil
}
