package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
)

// Back-Channel Logout 1.0: when a login session ends, every client that got
// tokens for it and registered a backchannel_logout_uri is told so, by a
// signed logout token POSTed to that URI. The end queues the logouts in its
// own transaction (storage: backchannel_logouts); the LogoutDispatcher of
// every instance delivers them.

// BackchannelLogoutEvent is the logout token's event (§2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenType is the logout token's typ header (§2.4: "logout+jwt").
const LogoutTokenType = "logout+jwt"

// logoutTokenLifespan is how long a logout token is valid after it is
// signed; each attempt signs a new one.
const logoutTokenLifespan = 2 * time.Minute

// logoutClaims are a logout token's claims (§2.4): no nonce.
type logoutClaims struct {
	Issuer    string              `json:"iss"`
	Audience  string              `json:"aud"`
	IssuedAt  int64               `json:"iat"`
	Expiry    int64               `json:"exp"`
	ID        string              `json:"jti"`
	Subject   string              `json:"sub"`
	SessionID string              `json:"sid"`
	Events    map[string]struct{} `json:"events"`
}

// newLogoutDispatcher builds the back-channel dispatcher, nil when this
// provider keeps no signing keys (embedded: the host's fosite issues).
func (p *Provider) newLogoutDispatcher() *outbox.LogoutDispatcher {
	if p.Keys == nil {
		return nil
	}
	return outbox.NewLogoutDispatcher(p.store, p, outbox.LogoutOptions{
		Clock: p.clock, Logger: p.log, Observer: p.metrics,
		Timeout: p.cfg.OAuth2.BackchannelLogoutTimeout, // oauth2.backchannel_logout_timeout
		MaxAge:  p.cfg.OAuth2.BackchannelLogoutMaxAge,  // oauth2.backchannel_logout_max_age
	})
}

// SignLogoutToken signs l's logout token with the ID-token key (the newest
// active one, its kid in the header): iss, aud (the client), iat, exp, jti
// (the queued row's ID, the same at every attempt), sub, sid and the
// back-channel logout event; typ logout+jwt (§2.4).
func (p *Provider) SignLogoutToken(ctx context.Context, l storage.BackchannelLogout) (string, error) {
	if p.Keys == nil {
		return "", errors.New("provider: no signing keys")
	}
	kid, key, alg, err := p.Keys.Signer(ctx)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(LogoutTokenType))
	if err != nil {
		return "", fmt.Errorf("provider: logout token signer: %w", err)
	}
	now := p.clock()
	return jwt.Signed(signer).Claims(logoutClaims{
		Issuer: p.Issuer(), Audience: l.ClientID, IssuedAt: now.Unix(), Expiry: now.Add(logoutTokenLifespan).Unix(),
		ID: l.ID, Subject: l.Subject, SessionID: l.SessionID,
		Events: map[string]struct{}{BackchannelLogoutEvent: {}},
	}).Serialize()
}

// RunBackchannelLogout delivers queued back-channel logouts until ctx ends
// (at once when this provider keeps no keys). plugin.Start runs it.
func (p *Provider) RunBackchannelLogout(ctx context.Context) {
	if p.logouts != nil {
		p.logouts.Run(ctx)
	}
}

// DeliverBackchannelLogoutsOnce delivers one batch of what is due now
// (tests); it returns how many logouts it tried.
func (p *Provider) DeliverBackchannelLogoutsOnce(ctx context.Context) (int, error) {
	if p.logouts == nil {
		return 0, nil
	}
	return p.logouts.RunOnce(ctx)
}

func (p *Provider) notifyLogouts() {
	if p.logouts != nil {
		p.logouts.Notify()
	}
}
