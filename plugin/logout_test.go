package plugin_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// rpLoggedOut is where the relying parties of these tests registered to
// return after a logout.
const rpLoggedOut = "http://127.0.0.1:1/logged-out"

// newLogoutRP is a relying party registered with post-logout redirect URI
// rpLoggedOut.
func newLogoutRP(t *testing.T, srv *plugintest.Server) *rp {
	t.Helper()
	return newRP(t, srv, provider.NewClient{Logout: storage.ClientLogout{PostLogoutRedirectURIs: []string{rpLoggedOut}}})
}

// signIn runs the code flow in browser b and returns the tokens and the
// raw, verified ID token.
func (r *rp) signIn(t *testing.T, b *plugintest.Browser) (*oauth2.Token, string, *oidc.IDToken) {
	t.Helper()
	state, verifier := randomString(12), oauth2.GenerateVerifier()
	back := r.login(t, b, r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(randomString(12))))
	tok, err := r.conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.conf.ClientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	return tok, raw, idt
}

// endSessionURL is the discovered end_session_endpoint with params.
func (r *rp) endSessionURL(t *testing.T, params url.Values) string {
	t.Helper()
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := r.provider.Claims(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("end_session_endpoint not discovered (%v)", err)
	}
	return meta.EndSession + "?" + params.Encode()
}

// signedIn reports whether browser b still has a login session: a
// prompt=none authorize request gets a code, not login_required.
func (r *rp) signedIn(t *testing.T, b *plugintest.Browser) bool {
	t.Helper()
	page := b.Follow(r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "none")), rpRedirect)
	switch q := page.URL.Query(); {
	case q.Get("code") != "":
		return true
	case q.Get("error") == "login_required":
		return false
	}
	t.Fatalf("prompt=none: %s", page)
	return false
}

// A hint naming the browser's session logs out without a question and
// returns to the registered URI with state; the session's tokens die.
func TestRPInitiatedLogout_HintOfTheSessionReturnsWithState(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newLogoutRP(t, srv)
		b := plugintest.NewBrowser(t)
		tok, hint, _ := r.signIn(t, b)
		state := randomString(10)
		page := b.Follow(r.endSessionURL(t, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {state}}), rpLoggedOut)
		if page.Status != http.StatusSeeOther || page.URL.String() != rpLoggedOut+"?state="+state {
			t.Fatalf("want a 303 to %s?state=%s, got %s (steps %v)", rpLoggedOut, state, page, b.Steps)
		}
		if r.signedIn(t, b) {
			t.Fatal("still signed in after the logout")
		}
		if r.introspect(t, tok.AccessToken)["active"] != false {
			t.Fatal("the session's access token is still active")
		}
		if _, err := r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
			t.Fatal("the session's refresh token still works")
		}
		// Signed out already: no question, still returned.
		page = b.Follow(r.endSessionURL(t, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"again"}}), rpLoggedOut)
		if page.URL.String() != rpLoggedOut+"?state=again" {
			t.Fatalf("signed out: want a redirect, got %s", page)
		}
	})
}

// A post_logout_redirect_uri the client did not register, or one with no
// hint or client_id to check it against, is an error page and never
// followed; the session stays. So are a forged hint and a client_id that
// is not the hint's audience.
func TestRPInitiatedLogout_UnverifiedRedirectIsRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newLogoutRP(t, srv)
		other := newLogoutRP(t, srv)
		b := plugintest.NewBrowser(t)
		_, hint, _ := r.signIn(t, b)
		parts := strings.Split(hint, ".")
		forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		for name, params := range map[string]url.Values{
			"unregistered":           {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}, "state": {"s"}},
			"registered, other path": {"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut + "/x"}},
			"no hint nor client":     {"post_logout_redirect_uri": {rpLoggedOut}},
			"forged hint":            {"id_token_hint": {forged}, "post_logout_redirect_uri": {rpLoggedOut}},
			"client not the aud":     {"id_token_hint": {hint}, "client_id": {other.conf.ClientID}, "post_logout_redirect_uri": {rpLoggedOut}},
		} {
			page := b.Follow(r.endSessionURL(t, params), "http://127.0.0.1:1/")
			if page.Status != http.StatusBadRequest || !strings.Contains(page.Body, "not valid") {
				t.Fatalf("%s: want the 400 error page, got %s", name, page)
			}
		}
		if !r.signedIn(t, b) {
			t.Fatal("a refused logout request signed the browser out")
		}
	})
}

// An expired ID token is still a hint (RP-Initiated Logout 1.0 §2).
func TestRPInitiatedLogout_ExpiredHintIsAccepted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newLogoutRP(t, srv)
		b := plugintest.NewBrowser(t)
		_, hint, idt := r.signIn(t, b)
		srv.Clock.Advance(srv.Plugin.Provider.Config().OAuth2.IDTokenLifespan + time.Minute)
		if !srv.Clock.Now().After(idt.Expiry) {
			t.Fatal("the hint has not expired")
		}
		page := b.Follow(r.endSessionURL(t, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"x"}}), rpLoggedOut)
		if page.URL.String() != rpLoggedOut+"?state=x" {
			t.Fatalf("expired hint: want a redirect, got %s", page)
		}
		if r.signedIn(t, b) {
			t.Fatal("still signed in")
		}
	})
}

// Without a hint of the browser's session the user is asked, and the one
// CSRF-protected POST logs out and returns; a POST without the token does
// nothing. A relying party's form POST is the same request as its GET.
func TestRPInitiatedLogout_ConfirmationWithoutHint(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newLogoutRP(t, srv)
		b := plugintest.NewBrowser(t)
		r.signIn(t, b)
		params := url.Values{"client_id": {r.conf.ClientID}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"st"}, "ui_locales": {"en"}}
		// The RP's form POST: redirected to the GET.
		page := b.Submit(&plugintest.Page{URL: mustParse(t, srv.URL)}, provider.PathEndSession, params, rpLoggedOut)
		if page.Status != http.StatusOK || !strings.Contains(page.Body, "Sign out?") {
			t.Fatalf("want the confirmation page, got %s (steps %v)", page, b.Steps)
		}
		if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:1") {
			t.Fatalf("form-action does not admit the redirect: %q", csp)
		}
		if page.HiddenField("post_logout_redirect_uri") != rpLoggedOut || page.HiddenField("state") != "st" {
			t.Fatalf("the form does not carry the request: %s", page)
		}
		form := url.Values{}
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
			form.Set(k, page.HiddenField(k))
		}
		noToken := b.Submit(page, "/logout", url.Values{"csrf_token": {"x"}, "client_id": {r.conf.ClientID}}, rpLoggedOut)
		if noToken.Status != http.StatusForbidden || !r.signedIn(t, b) {
			t.Fatalf("a POST without the CSRF token: %s", noToken)
		}
		page = b.Follow(r.endSessionURL(t, params), rpLoggedOut)
		action := regexpAction(t, page.Body)
		done := b.Submit(page, action, form, rpLoggedOut)
		if done.Status != http.StatusSeeOther || done.URL.String() != rpLoggedOut+"?state=st" {
			t.Fatalf("confirmed: want a 303 to the RP, got %s", done)
		}
		if r.signedIn(t, b) {
			t.Fatal("still signed in after confirming")
		}
	})
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// regexpAction is the confirmation form's action.
func regexpAction(t *testing.T, body string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `<form method="post" action="`)
	if !ok {
		t.Fatalf("no form in %s", body)
	}
	action, _, _ := strings.Cut(rest, `"`)
	return html.UnescapeString(action)
}

// ui_locales (RP-Initiated Logout 1.0 §2) picks the language of every page
// of a logout: the confirmation (also of the RP's form POST), the signed-out
// page after it, and the error page of a refused request.
func TestRPInitiatedLogout_UILocales(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newLogoutRP(t, srv)
		b := plugintest.NewBrowser(t)
		r.signIn(t, b)
		german := func(name string, page *plugintest.Page, want string) {
			t.Helper()
			if !strings.Contains(page.Body, `lang="de"`) || !strings.Contains(page.Body, want) {
				t.Fatalf("%s: want German %q, got %s", name, want, page)
			}
		}

		refused := b.Follow(r.endSessionURL(t, url.Values{"client_id": {r.conf.ClientID}, "post_logout_redirect_uri": {"https://evil.example/"}, "ui_locales": {"fr de"}}), "https://evil.example/")
		if refused.Status != http.StatusBadRequest {
			t.Fatalf("unregistered URI: %s", refused)
		}
		german("error page", refused, "Diese Abmeldeanfrage ist nicht gültig")

		english := b.Follow(r.endSessionURL(t, url.Values{"client_id": {r.conf.ClientID}, "ui_locales": {"en"}}), "")
		if !strings.Contains(english.Body, "Sign out?") {
			t.Fatalf("ui_locales=en: %s", english)
		}
		page := b.Submit(&plugintest.Page{URL: mustParse(t, srv.URL)}, provider.PathEndSession, url.Values{"client_id": {r.conf.ClientID}, "ui_locales": {"fr de"}}, "")
		german("confirmation of the RP's form POST", page, "Abmelden?")
		done := b.Submit(page, regexpAction(t, page.Body), url.Values{"client_id": {page.HiddenField("client_id")}}, "")
		if done.Status != http.StatusOK {
			t.Fatalf("confirmed: %s", done)
		}
		german("signed-out page", done, "Sie sind abgemeldet")
		if r.signedIn(t, b) {
			t.Fatal("still signed in")
		}
	})
}
