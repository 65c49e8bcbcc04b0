package provider

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

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
		if errors.Is(err, fosite.ErrServerError) || storage.IsUnavailable(ctx, err) {
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

// WithLoginClaims returns the introspection answer with the token's login
// claims added to the response: RFC 9470 §6.2 lets a resource server learn
// from introspection how and when the user authenticated, as the ID token
// tells the client, so the response of an active access token carries
//
//	acr        the level the login session had reached when the token was issued
//	auth_time  when the user logged in (seconds since the epoch)
//	amr        the methods used (RFC 8176)
//
// taken from the ID token claims fosite stored with the token's session.
// Other answers (inactive tokens, refresh tokens, client-credentials tokens,
// which have no login) are returned unchanged.
func WithLoginClaims(ir fosite.IntrospectionResponder) fosite.IntrospectionResponder {
	if ir == nil || !ir.IsActive() || ir.GetTokenUse() != fosite.AccessToken || ir.GetAccessRequester() == nil {
		return ir
	}
	ar := ir.GetAccessRequester()
	claims := LoginClaims(ar.GetSession())
	if len(claims) == 0 {
		return ir
	}
	return loginClaimsIntrospection{IntrospectionResponder: ir, ar: loginClaimsRequester{AccessRequester: ar, session: loginClaimsSession{Session: ar.GetSession(), extra: claims}}}
}

// LoginClaims are acr, auth_time and amr of a token's session, each only when
// the session holds it (a client-credentials session holds none).
func LoginClaims(s fosite.Session) map[string]any {
	os, ok := s.(openid.Session)
	if !ok || os == nil {
		return nil
	}
	c := os.IDTokenClaims()
	if c == nil {
		return nil
	}
	out := map[string]any{}
	if c.AuthenticationContextClassReference != "" {
		out["acr"] = c.AuthenticationContextClassReference
	}
	if !c.AuthTime.IsZero() {
		out["auth_time"] = c.AuthTime.Unix()
	}
	if len(c.AuthenticationMethodsReferences) > 0 {
		out["amr"] = c.AuthenticationMethodsReferences
	}
	return out
}

// The three wrappers below only change what fosite's
// WriteIntrospectionResponse reads: it copies a session's GetExtraClaims
// into the response (all but the RFC 7662 members it sets itself).

type loginClaimsIntrospection struct {
	fosite.IntrospectionResponder
	ar fosite.AccessRequester
}

func (i loginClaimsIntrospection) GetAccessRequester() fosite.AccessRequester { return i.ar }

type loginClaimsRequester struct {
	fosite.AccessRequester
	session fosite.Session
}

func (r loginClaimsRequester) GetSession() fosite.Session { return r.session }

type loginClaimsSession struct {
	fosite.Session
	extra map[string]any
}

// GetExtraClaims implements fosite.ExtraClaimsSession.
func (s loginClaimsSession) GetExtraClaims() map[string]any {
	out := map[string]any{}
	if e, ok := s.Session.(fosite.ExtraClaimsSession); ok {
		maps.Copy(out, e.GetExtraClaims())
	}
	maps.Copy(out, s.extra)
	return out
}

var _ fosite.ExtraClaimsSession = loginClaimsSession{}
