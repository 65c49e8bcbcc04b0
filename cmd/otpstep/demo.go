package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/storage"
)

// The demo data --dev creates on first start. They exist only in a dev
// database; the values are printed so a newcomer can paste them.
const (
	demoEmail        = "demo@example.com"
	demoPassword     = "demo-password"
	demoClientID     = "demo-rp"
	demoClientSecret = "demo-secret-0123456789"
	demoRedirectURI  = "http://127.0.0.1:5555/callback"
	demoVerifier     = "demo-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
)

func (a *app) printDemo(ctx context.Context, p *plugin.Plugin, cfg config.Config) error {
	prov := p.Provider
	if _, err := p.Store().GetUserByEmail(ctx, demoEmail); errors.Is(err, storage.ErrNotFound) {
		if _, err := prov.CreateUser(ctx, demoEmail, demoPassword); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if _, err := p.Store().GetOAuth2Client(ctx, demoClientID); errors.Is(err, storage.ErrNotFound) {
		if _, _, err := prov.CreateClient(ctx, provider.NewClient{
			ID:           demoClientID,
			Name:         "Demo relying party",
			RedirectURIs: []string{demoRedirectURI},
			GrantTypes:   []string{"authorization_code", "refresh_token", "client_credentials"},
			Scopes:       []string{"openid", "offline_access", "email", "profile"},
			SkipConsent:  true,
			Secret:       demoClientSecret,
		}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(demoVerifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	base := cfg.Server.PublicURL
	auth := base + "/oauth2/auth?" + url.Values{
		"client_id":             {demoClientID},
		"response_type":         {"code"},
		"scope":                 {"openid offline_access email"},
		"redirect_uri":          {demoRedirectURI},
		"state":                 {"demo-state-12345678"},
		"nonce":                 {"demo-nonce-12345678"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}.Encode()
	fmt.Fprintf(a.out, `
otpstep is running in --dev mode (never use it in production).

  Demo user:    %s / %s
  Demo client:  %s / %s (redirect URI %s)

1. Open this URL in a browser and log in as the demo user:
   %s
   Nothing listens on %s, so the browser shows an error page there:
   copy the "code" parameter from its address bar.

2. Exchange the code:
   curl -s -u %s:%s -d grant_type=authorization_code -d redirect_uri=%s -d code_verifier=%s -d code=PASTE_CODE %s/oauth2/token

3. A client-credentials token:
   curl -s -u %s:%s -d grant_type=client_credentials %s/oauth2/token

`, demoEmail, demoPassword, demoClientID, demoClientSecret, demoRedirectURI,
		auth, demoRedirectURI,
		demoClientID, demoClientSecret, url.QueryEscape(demoRedirectURI), demoVerifier, base,
		demoClientID, demoClientSecret, base)
	return nil
}
