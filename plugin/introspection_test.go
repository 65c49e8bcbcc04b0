package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/web/openapitest"
)

// introspectAs posts token to /oauth2/introspect with the given
// Authorization header ("" for none) and form fields, validating the
// exchange against web/openapi.yaml.
func introspectAs(t *testing.T, v *openapitest.Validator, srv *plugintest.Server, authorization string, form url.Values) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, body := v.CheckRoundTrip(t, http.DefaultClient, req)
	return resp.StatusCode, resp.Header, string(body)
}

func basic(c *plugintest.Client) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	return r.Header.Get("Authorization")
}

// RFC 7662 §2.1: introspection needs client authentication (a user's access
// token is not one), and a client learns only about the tokens issued to it
// or naming it in their audience; a client registered --introspect-any
// (a resource server) about every token. Everything else is inactive.
func TestIntrospection_ClientAuthenticationAndWhatItSees(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		v := openapitest.Load(t)
		ctx := context.Background()
		rpA := srv.NewClient(t, false)
		rpB := srv.NewClient(t, false)
		rs := srv.NewClientWith(t, provider.NewClient{IntrospectAny: true})
		// rpC may ask for tokens whose audience is rpA.
		rpC := srv.NewClientWith(t, provider.NewClient{Audience: []string{rpA.ID}})
		pub := srv.NewClientWith(t, provider.NewClient{Public: true, GrantTypes: []string{"authorization_code"}})
		alice, bob := srv.NewUser(t), srv.NewUser(t)
		aliceTok := srv.LoginWithPassword(t, rpA, alice).Token.AccessToken
		bobTok := srv.LoginWithPassword(t, rpA, bob).Token.AccessToken
		cc := clientcredentials.Config{ClientID: rpC.ID, ClientSecret: rpC.Secret, TokenURL: srv.URL + "/oauth2/token",
			EndpointParams: url.Values{"audience": {rpA.ID}}}
		ccTok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client credentials with audience: %v", err)
		}
		tokenOf := func(tok string) url.Values { return url.Values{"token": {tok}} }

		refused := []struct {
			name, authorization string
			form                url.Values
		}{
			{"a user's access token as the credential", "Bearer " + aliceTok, tokenOf(bobTok)},
			{"no credentials", "", tokenOf(aliceTok)},
			{"a wrong secret", basic(&plugintest.Client{Client: rpA.Client, Secret: "not-the-secret-0123456789"}), tokenOf(aliceTok)},
			{"a public client", "", url.Values{"token": {aliceTok}, "client_id": {pub.ID}}},
		}
		for _, tc := range refused {
			status, header, body := introspectAs(t, v, srv, tc.authorization, tc.form)
			if status != http.StatusUnauthorized || !strings.Contains(body, `"error":"invalid_client"`) || strings.Contains(body, `"active"`) {
				t.Errorf("%s: %d %s, want 401 invalid_client", tc.name, status, body)
			}
			if tc.authorization != "" && header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: no WWW-Authenticate challenge", tc.name)
			}
		}

		seen := []struct {
			name   string
			caller *plugintest.Client
			token  string
			active bool
		}{
			{"its own user token", rpA, aliceTok, true},
			{"another client's user token", rpB, aliceTok, false},
			{"a token whose audience names it", rpA, ccTok.AccessToken, true},
			{"a token of another client, audience not naming it", rpB, ccTok.AccessToken, false},
			{"its own client-credentials token", rpC, ccTok.AccessToken, true},
			{"any token, as a resource server", rs, aliceTok, true},
			{"any client-credentials token, as a resource server", rs, ccTok.AccessToken, true},
		}
		for _, tc := range seen {
			status, _, body := introspectAs(t, v, srv, basic(tc.caller), tokenOf(tc.token))
			want := `"active":false`
			if tc.active {
				want = `"active":true`
			}
			if status != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("%s: %d %s, want %s", tc.name, status, body, want)
			}
			if !tc.active && body != "{\"active\":false}\n" {
				t.Errorf("%s: an inactive answer tells more: %s", tc.name, body)
			}
		}
	})
}
