package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/otpstep/otpstep/storage"
)

// LogoutRequest is an RP-initiated logout request's parameters (OpenID
// Connect RP-Initiated Logout 1.0 §2). UILocales is the pages' business.
type LogoutRequest struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
}

// Logout is a checked logout request.
type Logout struct {
	// ClientID is the client the request is for: the hint's audience, or
	// client_id ("" when neither names one).
	ClientID string
	// SessionID and Subject are the hint's sid and sub ("" without a hint).
	SessionID string
	Subject   string
	// RedirectTo is the registered post-logout redirect URI with state
	// added, where the browser goes once signed out ("" for none).
	RedirectTo string
}

// ErrInvalidLogoutRequest is what CheckLogout refuses a request with; the
// wrapped text says why (for the log, not the user).
var ErrInvalidLogoutRequest = errors.New("invalid logout request")

// idTokenHintAlgs are the algorithms an ID token of ours is signed with.
var idTokenHintAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// CheckLogout checks an RP-initiated logout request, in the order of
// RP-Initiated Logout 1.0 §2 and §3:
//
//  1. id_token_hint, when present, is an ID token we issued: its signature
//     verifies with a key of our key set and its iss is ours. Its expiry is
//     not checked (§2: "the OP SHOULD accept ID Tokens when the RP
//     identified by the ID Token's aud claim and/or sid claim has a current
//     session or had a recent session at the OP, even when the exp time has
//     passed").
//  2. client_id, when present with a hint, is one of the hint's audiences
//     (§2: "the OP MUST verify that it matches the ID Token's aud").
//  3. post_logout_redirect_uri, when present, is one the client registered,
//     compared exactly (§3.1); without a hint or client_id there is no client
//     to compare it with, and it is refused (§3: the OP "MUST NOT perform
//     post-logout redirection" to an unverified URI).
//  4. state goes onto that URI (§3: "the OP passes this value to the RP
//     using the state parameter when redirecting").
//
// Every refusal is ErrInvalidLogoutRequest wrapping its reason.
func (p *Provider) CheckLogout(ctx context.Context, req LogoutRequest) (*Logout, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidLogoutRequest, fmt.Sprintf(format, a...))
	}
	lo := &Logout{ClientID: req.ClientID}
	if req.IDTokenHint != "" {
		hint, err := p.verifyIDTokenHint(ctx, req.IDTokenHint)
		if err != nil {
			if storage.IsUnavailable(ctx, err) {
				return nil, err
			}
			return nil, bad("id_token_hint: %v", err)
		}
		switch {
		case req.ClientID != "" && !slices.Contains(hint.Audience, req.ClientID):
			return nil, bad("client_id %q is not the id_token_hint's audience %q", req.ClientID, hint.Audience)
		case req.ClientID == "" && len(hint.Audience) == 1:
			lo.ClientID = hint.Audience[0]
		case req.ClientID == "":
			lo.ClientID = hint.AuthorizedParty
		}
		lo.SessionID, lo.Subject = hint.SessionID, hint.Subject
	}
	if req.PostLogoutRedirectURI == "" {
		return lo, nil
	}
	if lo.ClientID == "" {
		return nil, bad("post_logout_redirect_uri without an id_token_hint or client_id to check it against")
	}
	c, err := p.Client(ctx, lo.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, bad("client %q: not found", lo.ClientID)
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.Logout.PostLogoutRedirectURIs, req.PostLogoutRedirectURI) {
		return nil, bad("post_logout_redirect_uri %q is not registered for client %q", req.PostLogoutRedirectURI, c.ID)
	}
	u, err := url.Parse(req.PostLogoutRedirectURI)
	if err != nil {
		return nil, bad("post_logout_redirect_uri: %v", err)
	}
	if req.State != "" {
		q := u.Query()
		q.Set("state", req.State)
		u.RawQuery = q.Encode()
	}
	lo.RedirectTo = u.String()
	return lo, nil
}

// idTokenHint is what a logout reads of an ID token.
type idTokenHint struct {
	Issuer          string   `json:"iss"`
	Subject         string   `json:"sub"`
	Audience        audience `json:"aud"`
	AuthorizedParty string   `json:"azp"`
	SessionID       string   `json:"sid"`
}

// audience is a JWT aud: one string or an array of them (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// verifyIDTokenHint verifies raw's signature with the published key its kid
// names and checks its issuer; it reads no expiry (see CheckLogout).
func (p *Provider) verifyIDTokenHint(ctx context.Context, raw string) (*idTokenHint, error) {
	if p.Keys == nil {
		return nil, errors.New("this instance keeps no signing keys")
	}
	return verifyIDTokenHint(ctx, p.Keys, p.Issuer(), raw)
}

// verifyIDTokenHint is an ID token of issuer verified with the key of keys
// its kid names, whatever that key's algorithm: an authorize request's
// id_token_hint and a logout's. Expiry is not read.
func verifyIDTokenHint(ctx context.Context, keys *KeySet, issuer, raw string) (*idTokenHint, error) {
	jws, err := jose.ParseSigned(raw, idTokenHintAlgs)
	if err != nil {
		return nil, fmt.Errorf("not a signed JWT: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not one signature")
	}
	set, err := keys.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	kid := jws.Signatures[0].Header.KeyID
	published := set.Key(kid)
	if kid == "" || len(published) == 0 {
		return nil, fmt.Errorf("no key of ours has kid %q", kid)
	}
	payload, err := jws.Verify(published[0])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var h idTokenHint
	if err := json.Unmarshal(payload, &h); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if h.Issuer != issuer {
		return nil, fmt.Errorf("iss %q is not ours", h.Issuer)
	}
	return &h, nil
}
