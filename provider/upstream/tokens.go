package upstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// ErrRefreshRejected means the token endpoint refused a refresh token
// (RFC 6749 §5.2, typically invalid_grant: expired, revoked or reused).
var ErrRefreshRejected = errors.New("upstream: refresh token rejected")

// Tokens are what the upstream's token endpoint issued (RFC 6749 §5.1).
type Tokens struct {
	AccessToken  string
	TokenType    string
	RefreshToken string // "" when none was issued
	// Scope is the granted scope; when the answer omits it, the scope
	// otpstep asked for (RFC 6749 §5.1: then it is "identical to the scope
	// requested by the client").
	Scope string
	// ExpiresIn is expires_in as sent (0: the upstream named no lifetime).
	ExpiresIn time.Duration
	// IDToken is the raw ID token, unverified ("" when the answer has none).
	IDToken string
}

// tokensOf reads x/oauth2's token. Its Expiry is computed with the wall
// clock, so the lifetime is taken from expires_in and the caller adds it to
// the injected clock.
func (p *Provider) tokensOf(tok *oauth2.Token) *Tokens {
	t := &Tokens{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken,
		ExpiresIn: time.Duration(tok.ExpiresIn) * time.Second}
	t.IDToken, _ = tok.Extra("id_token").(string)
	t.Scope, _ = tok.Extra("scope").(string)
	if t.Scope == "" {
		t.Scope = strings.Join(p.requestedScopes(), " ")
	}
	return t
}

// requestedScopes are the scopes otpstep asks the upstream for: the
// configured ones, openid first if they lack it.
func (p *Provider) requestedScopes() []string {
	scopes := p.cfg.Scopes
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	return scopes
}

// Refresh redeems refreshToken at the token endpoint (RFC 6749 §6) with
// otpstep's client credentials, through the upstream HTTP client and its
// timeout. The answer's refresh token replaces the old one; when it has none
// the old one stays (§6: the server MAY issue a new one). A refused refresh
// token is ErrRefreshRejected; an unreachable upstream, or one answering a
// server error, ErrUnavailable.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	conf, err := p.oauth2Config(ctx, "")
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.opts.HTTPClient)
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			p.log.WarnContext(ctx, "upstream refused the refresh token", "status", re.Response.StatusCode, "error", re.ErrorCode)
			return nil, fmt.Errorf("%w: %s: %v", ErrRefreshRejected, p.cfg.Name, err)
		}
		p.log.WarnContext(ctx, "upstream token endpoint failed", "err", err)
		return nil, fmt.Errorf("%w: %s: token endpoint: %v", ErrUnavailable, p.cfg.Name, err)
	}
	t := p.tokensOf(tok)
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}
