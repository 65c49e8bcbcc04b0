package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/resource"
)

// The example against a real otpstep: discovery gives the introspection
// endpoint; a password-only (aal1) token reads the balance and is asked to
// step up for a payment. plugin's TestStepUp_ResourceServerLoop follows the
// challenge to the end.
func TestAPI_BalanceTakesAal1AndPaymentsAskForAal2(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			ctx := context.Background()
			rs, secret, err := srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{GrantTypes: []string{"client_credentials"}, IntrospectAny: true})
			if err != nil {
				t.Fatal(err)
			}
			endpoint, err := introspectionEndpoint(ctx, http.DefaultClient, srv.URL)
			if err != nil || endpoint != srv.URL+"/oauth2/introspect" {
				t.Fatalf("introspection endpoint %q, %v", endpoint, err)
			}
			g, err := resource.New(resource.Config{IntrospectionURL: endpoint, ClientID: rs.ID, ClientSecret: secret})
			if err != nil {
				t.Fatal(err)
			}
			api := httptest.NewServer(NewAPI(g))
			defer api.Close()
			login := srv.LoginWithPassword(t, srv.NewClient(t, false), srv.NewUser(t))
			call := func(method, path string) *http.Response {
				req, _ := http.NewRequest(method, api.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+login.Token.AccessToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			if resp := call(http.MethodGet, "/balance"); resp.StatusCode != http.StatusOK {
				t.Fatalf("balance: %d", resp.StatusCode)
			}
			resp := call(http.MethodPost, "/payments")
			const want = `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="aal2", max_age="300"`
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
				t.Fatalf("payments: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}
