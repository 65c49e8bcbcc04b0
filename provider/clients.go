package provider

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/otpstep/otpstep/storage"
)

// NewClient describes a client to register.
type NewClient struct {
	ID           string
	Name         string
	RedirectURIs []string
	GrantTypes   []string
	Scopes       []string
	Audience     []string
	Public       bool
	SkipConsent  bool
	// RequireSecondFactor defaults to true; nil means the default.
	RequireSecondFactor *bool
	// LoginUI registers a login UI: it may pass a login session's second
	// factor itself (PUT /sessions/{id} passedLoginOTP:true) and receive the
	// login code in the response (otp.return_in_response).
	LoginUI bool
	// IntrospectAny registers a resource server that may introspect every
	// token; any other client only those issued to it or naming it in their
	// audience (RFC 7662 §2.1).
	IntrospectAny bool
	// ClientURI is the client's home page, an absolute http(s) URL, which
	// the error pages link back to; empty for none.
	ClientURI string
	// Secret is an operator-supplied secret (stored with argon2id); empty
	// means otpstep generates a 256-bit one (stored as SHA-256).
	Secret string
	// Client authentication (TokenEndpointAuthMethods): empty means
	// client_secret_basic, or none for a Public client; none makes the
	// client public. private_key_jwt needs exactly one of JWKS (a JWK Set
	// of public keys, JSON) and JWKSURI; TokenEndpointAuthSigningAlg is
	// its assertions' algorithm (ClientAssertionSigningAlgs; empty: what
	// the first signing key of JWKS implies, else RS256).
	TokenEndpointAuthMethod     string
	JWKS                        []byte
	JWKSURI                     string
	TokenEndpointAuthSigningAlg string
	// Logout is the client's logout registration (checkClientLogout).
	Logout storage.ClientLogout
	// IDTokenSignedResponseAlg is the algorithm of the client's ID tokens
	// (AlgRS256 or AlgES256; empty: oauth2.signing_alg). A key of it must
	// exist (otpstep keys rotate --alg).
	IDTokenSignedResponseAlg string
}

var supportedGrants = []string{"authorization_code", "refresh_token", "client_credentials"}

// CreateClient validates and registers a client. It returns the client and,
// for confidential clients whose secret otpstep generated, the secret in
// clear: it is shown once and never stored.
func (p *Provider) CreateClient(ctx context.Context, nc NewClient) (*storage.Client, string, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, a...))
	}
	if nc.TokenEndpointAuthMethod == AuthNone {
		nc.Public = true // a client that cannot authenticate is public
	}
	if nc.ID == "" {
		id, err := randomToken(p.random, 16)
		if err != nil {
			return nil, "", err
		}
		nc.ID = id
	}
	if len(nc.ID) > 128 || strings.ContainsAny(nc.ID, " :/?#") {
		return nil, "", bad("client id %q must be at most 128 characters without spaces, ':', '/', '?' or '#'", nc.ID)
	}
	if len(nc.GrantTypes) == 0 {
		nc.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	for _, g := range nc.GrantTypes {
		if !slices.Contains(supportedGrants, g) {
			return nil, "", bad("grant type %q is not one of %s", g, strings.Join(supportedGrants, ", "))
		}
	}
	if nc.Public && slices.Contains(nc.GrantTypes, "client_credentials") {
		return nil, "", bad("a public client cannot use client_credentials")
	}
	if nc.Public && nc.IntrospectAny {
		return nil, "", bad("a public client cannot authenticate, so it cannot introspect")
	}
	if nc.Public && nc.Secret != "" {
		return nil, "", bad("a public client has no secret")
	}
	if err := checkClientLogout(nc.Logout); err != nil {
		return nil, "", bad("%v", err)
	}
	if nc.ClientURI != "" {
		if u, err := url.Parse(nc.ClientURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, "", bad("client URI %q is not an absolute http(s) URL", nc.ClientURI)
		}
	}
	auth, err := checkClientAuth(&nc)
	if err != nil {
		return nil, "", bad("%v", err)
	}
	needsRedirect := slices.Contains(nc.GrantTypes, "authorization_code")
	if needsRedirect && len(nc.RedirectURIs) == 0 {
		return nil, "", bad("authorization_code needs at least one redirect URI")
	}
	for _, ru := range nc.RedirectURIs {
		if err := checkRedirectURI(ru); err != nil {
			return nil, "", bad("redirect URI %q: %v", ru, err)
		}
	}
	if len(nc.Scopes) == 0 {
		nc.Scopes = []string{"openid", "offline_access", "email", "profile"}
	}
	for _, sc := range nc.Scopes {
		if err := CheckScopeToken(sc); err != nil {
			return nil, "", bad("scope %q: %v", sc, err)
		}
	}
	c := &storage.Client{
		ID:                  nc.ID,
		Name:                nc.Name,
		RedirectURIs:        nc.RedirectURIs,
		GrantTypes:          nc.GrantTypes,
		ResponseTypes:       []string{"code"},
		Scopes:              nc.Scopes,
		Audience:            nc.Audience,
		Public:              nc.Public,
		SkipConsent:         nc.SkipConsent,
		RequireSecondFactor: nc.RequireSecondFactor == nil || *nc.RequireSecondFactor,
		LoginUI:             nc.LoginUI,
		IntrospectAny:       nc.IntrospectAny,
		ClientURI:           nc.ClientURI,
	}
	c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.TokenEndpointAuthSigningAlg = auth.method, auth.jwks, auth.jwksURI, auth.alg
	c.Logout = nc.Logout
	if nc.IDTokenSignedResponseAlg != "" {
		if err := p.checkIDTokenAlg(ctx, nc.IDTokenSignedResponseAlg); err != nil {
			return nil, "", err
		}
		c.IDTokenSignedResponseAlg = nc.IDTokenSignedResponseAlg
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	var shown string
	switch {
	case nc.Public, auth.method == AuthPrivateKeyJWT:
	case nc.Secret != "":
		if len(nc.Secret) < 16 {
			return nil, "", bad("a supplied secret needs at least 16 characters")
		}
		h, err := ClientSecretHasher{}.Hash(ctx, []byte(nc.Secret))
		if err != nil {
			return nil, "", err
		}
		c.SecretHash = string(h)
	default:
		secret, hash, err := GenerateClientSecret(p.random)
		if err != nil {
			return nil, "", err
		}
		c.SecretHash, shown = hash, secret
	}
	if err := p.store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	return c, shown, nil
}

// checkIDTokenAlg accepts an id_token_signed_response_alg that a stored key
// can sign: a client registered for an algorithm without a key would get
// no ID token at all.
func (p *Provider) checkIDTokenAlg(ctx context.Context, alg string) error {
	if alg != AlgRS256 && alg != AlgES256 {
		return fmt.Errorf("%w: ID token signing alg %q is not one of %s, %s", ErrInvalidInput, alg, AlgRS256, AlgES256)
	}
	if p.Keys == nil {
		return fmt.Errorf("%w: this provider signs no ID tokens (embedded)", ErrInvalidInput)
	}
	algs, err := p.Keys.Algorithms(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(algs, alg) {
		return fmt.Errorf("%w: ID token signing alg %s has no key yet: run otpstep keys rotate --alg %s first", ErrInvalidInput, alg, alg)
	}
	return nil
}

// clientAuth is a client's checked authentication registration.
type clientAuth struct{ method, jwks, jwksURI, alg string }

// checkClientAuth checks how nc will authenticate: a known method, none
// exactly for public clients, a secret only for the secret methods, and
// for private_key_jwt one key source whose keys fit the algorithm.
func checkClientAuth(nc *NewClient) (clientAuth, error) {
	a := clientAuth{method: nc.TokenEndpointAuthMethod}
	if a.method == "" {
		a.method = AuthClientSecretBasic
		if nc.Public {
			a.method = AuthNone
		}
	}
	if !slices.Contains(TokenEndpointAuthMethods, a.method) {
		return a, fmt.Errorf("token endpoint auth method %q is not one of %s", a.method, strings.Join(TokenEndpointAuthMethods, ", "))
	}
	if nc.Public && a.method != AuthNone {
		return a, fmt.Errorf("a public client authenticates with none, not %s", a.method)
	}
	keyed := len(nc.JWKS) > 0 || nc.JWKSURI != "" || nc.TokenEndpointAuthSigningAlg != ""
	if a.method != AuthPrivateKeyJWT {
		if keyed {
			return a, fmt.Errorf("a JWK Set and its signing algorithm are for private_key_jwt, not %s", a.method)
		}
		return a, nil
	}
	if nc.Secret != "" {
		return a, fmt.Errorf("a private_key_jwt client has no secret")
	}
	if (len(nc.JWKS) > 0) == (nc.JWKSURI != "") {
		return a, fmt.Errorf("private_key_jwt needs exactly one of a JWK Set and a JWK Set URI")
	}
	a.alg = nc.TokenEndpointAuthSigningAlg
	if a.alg != "" && !slices.Contains(ClientAssertionSigningAlgs, a.alg) {
		return a, fmt.Errorf("token endpoint auth signing alg %q is not one of %s", a.alg, strings.Join(ClientAssertionSigningAlgs, ", "))
	}
	if nc.JWKSURI != "" {
		if err := checkRedirectURI(nc.JWKSURI); err != nil {
			return a, fmt.Errorf("JWK Set URI %q: %v", nc.JWKSURI, err)
		}
		a.jwksURI = nc.JWKSURI
		if a.alg == "" {
			a.alg = "RS256"
		}
		return a, nil
	}
	jwks, alg, err := checkClientJWKS(nc.JWKS, a.alg)
	if err != nil {
		return a, fmt.Errorf("JWK Set: %v", err)
	}
	a.jwks, a.alg = jwks, alg
	return a, nil
}

// DeleteClient removes a client and its tokens.
func (p *Provider) DeleteClient(ctx context.Context, id string) error {
	if err := p.store.DeleteClient(ctx, id); err != nil {
		return err
	}
	p.clients.Forget(id)
	return nil
}

// Client returns a registered client (cached for oauth2.client_cache_ttl).
func (p *Provider) Client(ctx context.Context, id string) (*storage.Client, error) {
	return p.clients.Get(ctx, id)
}

// checkRedirectURI follows RFC 6749 §3.1.2: absolute, no fragment; https, or
// http only on a loopback host (RFC 8252 §7.3).
// CheckScopeToken checks one scope value: RFC 6749 §3.3, scope-token =
// 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E (no space, '"' or '\'). A
// value with a space would be split into two scopes by every request.
func CheckScopeToken(s string) error {
	if s == "" {
		return fmt.Errorf("a scope may not be empty")
	}
	for _, r := range s {
		if r == ' ' {
			return fmt.Errorf("a scope may not contain a space (RFC 6749 §3.3)")
		}
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return fmt.Errorf("%q is not an RFC 6749 §3.3 NQCHAR (printable ASCII but space, '\"' and '\\')", r)
		}
	}
	return nil
}

// CheckRedirectURI checks a redirect URI as CreateClient does: absolute,
// no fragment, https or http on a loopback host.
func CheckRedirectURI(raw string) error { return checkRedirectURI(raw) }

func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("not an absolute URI")
	}
	if u.Fragment != "" {
		return fmt.Errorf("must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("http is only allowed for loopback hosts")
		}
	default:
		return fmt.Errorf("scheme must be https (or http on loopback)")
	}
	return nil
}
