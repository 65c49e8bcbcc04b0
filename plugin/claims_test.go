package plugin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// emailVerifiedOf returns email_verified of the ID token and of userinfo.
func emailVerifiedOf(t *testing.T, r *rp, tok *oauth2.Token, idt *oidc.IDToken) (bool, bool) {
	t.Helper()
	var claims struct {
		EmailVerified *bool `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil || claims.EmailVerified == nil {
		t.Fatalf("id token email_verified missing (%v)", err)
	}
	ui, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	return *claims.EmailVerified, ui.EmailVerified
}

// email_verified is false until the user passed an emailed code, true from
// then on (ID token and userinfo); a user created verified has it at once.
func TestClaims_EmailVerifiedOnceAnEmailedCodePassed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		ctx := context.Background()
		r := newRP(t, srv, provider.NewClient{}) // no second factor of its own
		tok, idt, _ := r.codeFlow(t)
		if id, ui := emailVerifiedOf(t, r, tok, idt); id || ui {
			t.Fatalf("before any code: id token %v, userinfo %v", id, ui)
		}

		// acr_values=aal2: the emailed code, then a token that says verified.
		b := plugintest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		page := b.Follow(r.conf.AuthCodeURL("state-1234567", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1234567"), oauth2.SetAuthURLParam("acr_values", "aal2")), rpRedirect)
		page = b.Submit(page, "/login", url.Values{"email": {r.email}, "password": {r.password}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
		if page.URL.Path != "/login/otp" {
			t.Fatalf("after the password: %s", page)
		}
		back := b.Submit(page, "/login/otp", url.Values{"otp": {codeFrom(t, smtpSrv, 1, r.email)}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
		tok, err := r.conf.Exchange(ctx, back.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange after the code: %v (%s)", err, back)
		}
		idt, err = r.provider.Verifier(&oidc.Config{ClientID: r.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		if id, ui := emailVerifiedOf(t, r, tok, idt); !id || !ui {
			t.Fatalf("after the code: id token %v, userinfo %v", id, ui)
		}

		// users create --email-verified: true before any code.
		u, err := srv.Plugin.Provider.CreateVerifiedUser(ctx, "verified-"+randomString(4)+"@example.com", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		r.email, r.userID = u.Email, u.ID
		tok, idt, _ = r.codeFlow(t)
		if id, ui := emailVerifiedOf(t, r, tok, idt); !id || !ui {
			t.Fatalf("created verified: id token %v, userinfo %v", id, ui)
		}
	})
}

// jwsAlg is the "alg" of a compact JWS's header.
func jwsAlg(t *testing.T, raw string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatal(err)
	}
	return header.Alg
}

// Discovery advertises only algorithms that have a key; after keys rotate
// --alg ES256 a client registered for ES256 gets ES256 ID tokens that the
// go-oidc relying party verifies through the JWKS, while other clients keep
// RS256.
func TestIDToken_ES256VerifiedThroughTheJWKS(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		ctx := context.Background()
		algs := func() string {
			resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var d struct {
				Algs []string `json:"id_token_signing_alg_values_supported"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
				t.Fatal(err)
			}
			return strings.Join(d.Algs, ",")
		}
		if got := algs(); got != "RS256" {
			t.Fatalf("advertised before an ES256 key: %s", got)
		}
		if _, _, err := srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect}, IDTokenSignedResponseAlg: "ES256"}); err == nil || !strings.Contains(err.Error(), "keys rotate --alg ES256") {
			t.Fatalf("ES256 client without an ES256 key: %v", err)
		}
		if _, err := srv.Plugin.Provider.Keys.RotateAlg(ctx, provider.AlgES256); err != nil {
			t.Fatal(err)
		}
		if got := algs(); got != "RS256,ES256" {
			t.Fatalf("advertised after keys rotate --alg ES256: %s", got)
		}

		es := newRP(t, srv, provider.NewClient{IDTokenSignedResponseAlg: "ES256"})
		tok, _, _ := es.codeFlow(t)
		raw := tok.Extra("id_token").(string)
		if got := jwsAlg(t, raw); got != "ES256" {
			t.Fatalf("ES256 client's ID token alg = %s", got)
		}
		if _, err := es.provider.Verifier(&oidc.Config{ClientID: es.conf.ClientID, SupportedSigningAlgs: []string{oidc.ES256}}).Verify(ctx, raw); err != nil {
			t.Fatalf("go-oidc with ES256 only: %v", err)
		}
		// The refresh grant signs with the client's algorithm too.
		ref, err := es.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if got := jwsAlg(t, ref.Extra("id_token").(string)); got != "ES256" {
			t.Fatalf("refreshed ID token alg = %s", got)
		}

		rs := newRP(t, srv, provider.NewClient{})
		tok, _, _ = rs.codeFlow(t)
		if got := jwsAlg(t, tok.Extra("id_token").(string)); got != "RS256" {
			t.Fatalf("default client's ID token alg = %s", got)
		}
	})
}
