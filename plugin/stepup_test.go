package plugin_test

import (
	"context"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// RFC 9470 §6.2: introspecting an access token of a login answers that
// login's acr, auth_time and amr, as the ID token does; a client-credentials
// token has no login and carries none of them.
func TestIntrospection_CarriesTheLoginsACRAuthTimeAndAMR(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newRP(t, srv, provider.NewClient{})
		tok, idt, _ := r.codeFlow(t)
		var claims struct {
			AuthTime int64 `json:"auth_time"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		in := r.introspect(t, tok.AccessToken)
		amr, _ := in["amr"].([]any)
		if in["active"] != true || in["acr"] != "aal1" || len(amr) != 1 || amr[0] != "pwd" || in["auth_time"] != float64(claims.AuthTime) {
			t.Fatalf("introspection = %v, want acr aal1, amr [pwd], auth_time %d", in, claims.AuthTime)
		}
		if in := r.introspect(t, tok.RefreshToken); in["active"] != true || in["acr"] != nil {
			t.Fatalf("refresh token introspection = %v, want active without login claims", in)
		}

		cc := clientcredentials.Config{ClientID: r.conf.ClientID, ClientSecret: r.secret, TokenURL: srv.URL + "/oauth2/token"}
		ct, err := cc.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		in = r.introspect(t, ct.AccessToken)
		if in["active"] != true || in["acr"] != nil || in["auth_time"] != nil || in["amr"] != nil {
			t.Fatalf("client-credentials introspection = %v, want no login claims", in)
		}
	})
}
