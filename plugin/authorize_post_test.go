package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// OIDC Core §3.1.2.1: the authorization endpoint takes its parameters as a
// form POST too (mod_auth_openidc's OIDCProviderAuthRequestMethod POST; it
// was 405). The POST, which carries no CSRF token of ours, is a 303 to the
// GET with the same parameters, so the login, the code and the ID token
// follow as for a GET; an unknown client gets the same error page.
func TestAuthorize_FormPost(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newRP(t, srv, provider.NewClient{})
		b := plugintest.NewBrowser(t)
		post := func(form url.Values) *url.URL {
			t.Helper()
			resp, err := b.Client.PostForm(srv.URL+provider.PathAuthorize, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusSeeOther || err != nil {
				t.Fatalf("POST %s: %d %v, want a 303", provider.PathAuthorize, resp.StatusCode, err)
			}
			return loc
		}

		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		authURL, err := url.Parse(r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce),
			oauth2.SetAuthURLParam("acr_values", "aal1")))
		if err != nil {
			t.Fatal(err)
		}
		form := authURL.Query()
		loc := post(form)
		if loc.Path != provider.PathAuthorize || loc.Query().Encode() != form.Encode() {
			t.Fatalf("redirected to %s, want %s with %s", loc, provider.PathAuthorize, form.Encode())
		}
		back := r.login(t, b, loc.String())
		if back.Query().Get("state") != state {
			t.Fatalf("back at the RP with %s", back)
		}
		tok, err := r.conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.conf.ClientID}).Verify(context.Background(), tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != nonce || idt.Subject != r.userID {
			t.Fatalf("id token %+v (%v)", idt, err)
		}

		unknown := withForm(form, "client_id", "no-such-client")
		page := b.Follow(post(unknown).String(), rpRedirect)
		if page.Status != http.StatusBadRequest || strings.HasPrefix(page.URL.String(), rpRedirect) {
			t.Fatalf("unknown client: %s", page)
		}
	})
}
