package plugintest

import (
	"context"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/web"
)

// Federation is two running otpsteps: Down links its users to Up, a real
// OpenID Connect peer configured as Down's upstream Name.
type Federation struct {
	Down *Server
	Up   *Server
	// Name is the upstream's name in Down's configuration.
	Name string
	// UpClient is Down's client at Up. Its redirect URIs are Down's callback
	// and RedirectURI, so a test can also fetch ID tokens for Down directly
	// (Up.LoginWithPassword(t, UpClient, …)).
	UpClient *Client
}

// Callback is Down's callback URL for the upstream.
func (f *Federation) Callback() string {
	return f.Down.URL + web.PathFederatedIdentities + f.Name + "/callback"
}

// StartFederation starts the upstream first (its URL is Down's issuer), then
// Down with upstreams: [{name, issuer: Up.URL, client_id, client_secret,
// allow_login}], then registers Down's client at Up with Down's callback.
// Up's cookies carry other names, since a cookie jar shares cookies between
// ports of one host. mutate may change Down's configuration further.
func StartFederation(t *testing.T, dialect, name string, allowLogin bool, mutate func(*plugin.Config)) *Federation {
	t.Helper()
	up := Start(t, dialect, func(c *plugin.Config) { c.Login.CookieName = "upstream_session" })
	clientID, secret := "otpstep-down-"+RandomString(6), RandomString(24)
	down := Start(t, dialect, func(c *plugin.Config) {
		c.Upstreams = append(c.Upstreams, config.Upstream{
			Name: name, Issuer: up.URL, ClientID: clientID, ClientSecret: secret,
			Scopes: []string{"openid", "email"}, AllowLogin: allowLogin,
		})
		if mutate != nil {
			mutate(c)
		}
	})
	f := &Federation{Down: down, Up: up, Name: name}
	f.UpClient = up.NewClientWith(t, provider.NewClient{
		ID: clientID, Secret: secret, RedirectURIs: []string{f.Callback(), RedirectURI},
	})
	return f
}

// NewClientWith registers a confidential client as NewClient does (code
// flow, refresh, client credentials; no consent; no second factor; openid,
// offline_access and email), with the id, secret, redirect URIs and extra
// scopes nc gives. The returned Conf redirects to RedirectURI.
func (s *Server) NewClientWith(t *testing.T, nc provider.NewClient) *Client {
	t.Helper()
	off := false
	if nc.RedirectURIs == nil {
		nc.RedirectURIs = []string{RedirectURI}
	}
	if nc.GrantTypes == nil {
		nc.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
	}
	nc.Scopes = append([]string{"openid", "offline_access", "email"}, nc.Scopes...)
	nc.SkipConsent = true
	if nc.RequireSecondFactor == nil {
		nc.RequireSecondFactor = &off
	}
	c, secret, err := s.Plugin.Provider.CreateClient(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	if secret == "" {
		secret = nc.Secret
	}
	return &Client{Client: c, Secret: secret, Conf: oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, RedirectURL: RedirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + web.PathAuthorize, TokenURL: s.URL + web.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   nc.Scopes,
	}}
}
