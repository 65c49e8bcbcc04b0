package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/otpstep/otpstep/storage"
)

// clientAuthenticator is the part of *fosite.Fosite that authenticates a
// client at the token endpoint (client_secret_basic, client_secret_post,
// private_key_jwt, none).
type clientAuthenticator interface {
	AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error)
}

// IntrospectAnyClient is a fosite.Client that says whether it may introspect
// every token; storage.Client is one (its IntrospectAny field).
type IntrospectAnyClient interface {
	MayIntrospectAny() bool
}

// Introspect answers an RFC 7662 introspection request, as a list of steps:
//
//  1. the form is read (a POST body; "token" is required, §2.1);
//  2. the caller authenticates as a client, as at the token endpoint: §2.1
//     "the endpoint MUST also require some form of authorization", and a
//     bearer token is a user's credential, not the caller's, so one in the
//     Authorization header is refused as invalid_client, as is a public
//     client (it has no credentials);
//  3. the token is introspected;
//  4. §2.2 "a token the protected resource is not allowed to know about"
//     is inactive: a client sees the tokens issued to it and those whose
//     granted audience names it, a client registered IntrospectAny every
//     token.
//
// Errors are fosite errors for WriteAccessError (invalid_request,
// invalid_client, server_error); an inactive or foreign token is an inactive
// response, never an error.
func (p *Provider) Introspect(ctx context.Context, r *http.Request) (fosite.IntrospectionResponder, error) {
	inactive := &fosite.IntrospectionResponse{Active: false}
	auth, ok := p.OAuth2.(clientAuthenticator)
	if !ok {
		return inactive, fosite.ErrServerError.WithDebug("the OAuth2 provider cannot authenticate clients")
	}
	if r.Method != http.MethodPost {
		return inactive, fosite.ErrInvalidRequest.WithHintf("HTTP method is '%s' but expected 'POST'.", r.Method)
	}
	if err := r.ParseForm(); err != nil {
		return inactive, fosite.ErrInvalidRequest.WithHint("Unable to parse the HTTP body as a form.").WithWrap(err)
	}
	if BearerToken(r) != "" {
		return inactive, fosite.ErrInvalidClient.WithHint("Introspection requires client authentication; a bearer token is not a client credential.")
	}
	// RFC 6749 §5.2: no client authentication included is invalid_client.
	if r.Header.Get("Authorization") == "" && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return inactive, fosite.ErrInvalidClient.WithHint("Introspection requires client authentication.")
	}
	client, err := auth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return inactive, err
	}
	if client.IsPublic() {
		return inactive, fosite.ErrInvalidClient.WithHint("A public client cannot authenticate, so it cannot introspect.")
	}
	token := r.PostForm.Get("token")
	if token == "" {
		return inactive, fosite.ErrInvalidRequest.WithHint("The token parameter is required.")
	}
	scopes := fosite.RemoveEmpty(strings.Split(r.PostForm.Get("scope"), " "))
	use, ar, err := p.OAuth2.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), EmptySession(), scopes...)
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) || errors.Is(err, storage.ErrUnavailable) {
			return inactive, err
		}
		return inactive, nil
	}
	if !mayIntrospect(client, ar) {
		return inactive, nil
	}
	resp := &fosite.IntrospectionResponse{Active: true, AccessRequester: ar, TokenUse: use}
	if use == fosite.AccessToken {
		resp.AccessTokenType = fosite.BearerAccessToken
	}
	return resp, nil
}

// mayIntrospect says whether caller may learn about the token ar: it was
// issued to caller, its granted audience names caller, or caller may
// introspect any token.
func mayIntrospect(caller fosite.Client, ar fosite.Requester) bool {
	if ic, ok := caller.(IntrospectAnyClient); ok && ic.MayIntrospectAny() {
		return true
	}
	if owner := ar.GetClient(); owner != nil && owner.GetID() == caller.GetID() {
		return true
	}
	return ar.GetGrantedAudience().Has(caller.GetID())
}
