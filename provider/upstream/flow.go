package upstream

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/oauth2"
)

// Flow is what otpstep sends in one authorization request to an upstream and
// needs again at the callback.
type Flow struct {
	// RedirectURI is otpstep's callback for this upstream.
	RedirectURI string
	// State binds the callback to the browser (RFC 6749 §10.12).
	State string
	// Nonce binds the ID token to the request (OpenID Connect Core §3.1.2.1).
	Nonce string
	// Verifier is the PKCE code verifier (RFC 7636); its S256 challenge is sent.
	Verifier string
}

// oauth2Config is the x/oauth2 client for this upstream, from discovery.
func (p *Provider) oauth2Config(ctx context.Context, redirectURI string) (*oauth2.Config, error) {
	m, err := p.discovery(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: m.AuthorizationEndpoint, TokenURL: m.TokenEndpoint},
		RedirectURL:  redirectURI,
		Scopes:       p.requestedScopes(),
	}, nil
}

// AuthCodeURL is the upstream authorization URL for f (authorization code,
// state, nonce, PKCE S256). It needs discovery: ErrUnavailable when the
// upstream cannot be reached.
func (p *Provider) AuthCodeURL(ctx context.Context, f Flow) (string, error) {
	conf, err := p.oauth2Config(ctx, f.RedirectURI)
	if err != nil {
		return "", err
	}
	return conf.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oauth2.SetAuthURLParam("nonce", f.Nonce)), nil
}

// Exchange redeems an authorization code at the token endpoint (RFC 6749
// §4.1.3, with the PKCE verifier) and returns what the upstream issued, the
// raw ID token unverified: pass Tokens.IDToken to VerifyIDToken with f.Nonce.
// A refused code, or an answer without an ID token, is ErrCodeRejected; an
// unreachable upstream is ErrUnavailable.
func (p *Provider) Exchange(ctx context.Context, f Flow, code string) (*Tokens, error) {
	conf, err := p.oauth2Config(ctx, f.RedirectURI)
	if err != nil {
		return nil, err
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.opts.HTTPClient), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			p.log.WarnContext(ctx, "upstream refused the authorization code", "status", re.Response.StatusCode, "error", re.ErrorCode)
			return nil, fmt.Errorf("%w: %s: %v", ErrCodeRejected, p.cfg.Name, err)
		}
		p.log.WarnContext(ctx, "upstream token endpoint failed", "err", err)
		return nil, fmt.Errorf("%w: %s: token endpoint: %v", ErrUnavailable, p.cfg.Name, err)
	}
	t := p.tokensOf(tok)
	if t.IDToken == "" {
		p.log.WarnContext(ctx, "upstream token response without an id_token")
		return nil, fmt.Errorf("%w: %s: no id_token in the token response", ErrCodeRejected, p.cfg.Name)
	}
	return t, nil
}
