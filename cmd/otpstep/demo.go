package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// The demo data --dev creates on first start. They exist only in a dev
// database; the values are printed so a newcomer can paste them.
const (
	demoEmail        = "demo@example.com"
	demoPassword     = "demo-password"
	demoClientID     = "demo-rp"
	demoLoginUIID    = "demo-login-ui"
	demoClientSecret = "demo-secret-0123456789"
	demoRedirectURI  = "http://127.0.0.1:5555/callback"
	demoVerifier     = "demo-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
)

func (a *app) printDemo(ctx context.Context, p *plugin.Plugin, cfg plugin.Config) error {
	prov := p.Provider
	user, err := p.Store().GetUserByEmail(ctx, demoEmail)
	if errors.Is(err, storage.ErrNotFound) {
		user, err = prov.CreateUser(ctx, demoEmail, demoPassword)
	}
	if err != nil {
		return err
	}
	userScopes := []string{"openid", "offline_access", "email", "user:sessions:update", "user:otp:verify", "user:otp:create"}
	off := false
	for _, c := range []provider.NewClient{
		{ID: demoClientID, Name: "Demo relying party", Scopes: []string{"openid", "offline_access", "email", "profile"}},
		{ID: demoLoginUIID, Name: "Demo login UI", Scopes: userScopes, RequireSecondFactor: &off, LoginUI: true},
	} {
		if _, err := p.Store().GetOAuth2Client(ctx, c.ID); errors.Is(err, storage.ErrNotFound) {
			c.RedirectURIs = []string{demoRedirectURI}
			c.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
			c.SkipConsent = true
			c.Secret = demoClientSecret
			if _, _, err := prov.CreateClient(ctx, c); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	sum := sha256.Sum256([]byte(demoVerifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	base := cfg.Server.PublicURL
	authURL := func(clientID, scope string) string {
		return base + "/oauth2/auth?" + url.Values{
			"client_id":             {clientID},
			"response_type":         {"code"},
			"scope":                 {scope},
			"redirect_uri":          {demoRedirectURI},
			"state":                 {"demo-state-12345678"},
			"nonce":                 {"demo-nonce-12345678"},
			"code_challenge":        {challenge},
			"code_challenge_method": {"S256"},
		}.Encode()
	}
	exchange := func(clientID string) string {
		return fmt.Sprintf("curl -s -u %s:%s -d grant_type=authorization_code -d redirect_uri=%s -d code_verifier=%s -d code=PASTE_CODE %s/oauth2/token",
			clientID, demoClientSecret, url.QueryEscape(demoRedirectURI), demoVerifier, base)
	}
	paths := cfg.API.Paths()
	api := base + paths[len(paths)-1]
	fmt.Fprintf(a.out, `
otpstep is running in --dev mode (never use it in production): mail is
written to this log instead of being sent.

  Demo user:     %s / %s  (id %s)
  Demo clients:  %s and %s, secret %s, redirect URI %s
                 (nothing listens there: after a login, copy "code" from the browser's address bar)

A. Browser login with the second factor (client %s):
   1. Open, log in as the demo user:
      %s
   2. The one-time code appears in this log ("mail: not sent"); type it on the page.
   3. Exchange the code (the ID token has acr=aal2, amr=["pwd","otp"]):
      %s

B. A login UI driving the second factor through the API (client %s):
   1. Open, log in (no OTP page for this client), copy the code:
      %s
   2. Exchange it and keep the tokens:
      TOKENS=$(%s)
      AT=$(echo "$TOKENS" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
      SID=$(echo "$TOKENS" | sed 's/.*"id_token":"[^.]*\.\([^.]*\)\..*/\1/' | tr '_-' '/+' | base64 -d 2>/dev/null | sed 's/.*"sid":"\([^"]*\)".*/\1/')
   3. Ask for a login code (PUT /sessions, the PACE call); it is also mailed (here: logged):
      curl -s -X PUT %s/sessions/$SID -H "Authorization: Bearer $AT" -H 'Content-Type: application/json' -d '{"userId":"%s","passedLoginOTP":false}'
   4. Verify it (204 No Content; the session now counts as aal2):
      curl -s -i -X POST %s/user/otp/verify -H "Authorization: Bearer $AT" -H 'Content-Type: application/json' -d '{"otp":"PASTE_OTP","types":["login"]}'

C. A client-credentials token:
   curl -s -u %s:%s -d grant_type=client_credentials %s/oauth2/token

`, demoEmail, demoPassword, user.ID, demoClientID, demoLoginUIID, demoClientSecret, demoRedirectURI,
		demoClientID, authURL(demoClientID, "openid offline_access email"), exchange(demoClientID),
		demoLoginUIID, authURL(demoLoginUIID, strings.Join(userScopes, " ")), exchange(demoLoginUIID),
		api, user.ID, api,
		demoClientID, demoClientSecret, base)
	return nil
}
