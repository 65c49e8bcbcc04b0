package plugin_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

const rpRedirect = "http://127.0.0.1:1/callback"

// rp is a real relying party (go-oidc + x/oauth2) registered on a server.
type rp struct {
	srv      *plugintest.Server
	provider *oidc.Provider
	conf     oauth2.Config
	secret   string
	email    string
	password string
	userID   string
}

func newRP(t *testing.T, srv *plugintest.Server, nc provider.NewClient) *rp {
	t.Helper()
	ctx := context.Background()
	if nc.RedirectURIs == nil {
		nc.RedirectURIs = []string{rpRedirect}
	}
	if nc.GrantTypes == nil {
		nc.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
	}
	nc.SkipConsent = true
	off := false
	nc.RequireSecondFactor = &off
	c, secret, err := srv.Plugin.Provider.CreateClient(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	email := "user-" + randomString(6) + "@example.com"
	u, err := srv.Plugin.Provider.CreateUser(ctx, email, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	op, err := oidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	endpoint := op.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if c.Public {
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	return &rp{
		srv: srv, provider: op, secret: secret, email: email, password: "correct horse battery", userID: u.ID,
		conf: oauth2.Config{
			ClientID: c.ID, ClientSecret: secret, Endpoint: endpoint, RedirectURL: c.RedirectURIs[0],
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "email"},
		},
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base64.RawURLEncoding.EncodeToString(b))
}

// login runs the browser part: authorize → login form → back to authorize →
// redirect to the RP. It returns the final redirect.
func (r *rp) login(t *testing.T, b *plugintest.Browser, authURL string) *url.URL {
	t.Helper()
	page := b.Follow(authURL, rpRedirect)
	if page.Status == http.StatusOK && strings.HasPrefix(page.URL.Path, "/login") {
		page = b.Submit(page, "/login", url.Values{
			"email": {r.email}, "password": {r.password}, "return_to": {page.HiddenField("return_to")},
		}, rpRedirect)
	}
	if !strings.HasPrefix(page.URL.String(), rpRedirect) {
		t.Fatalf("expected a redirect to the RP, got %s (steps %v)", page, b.Steps)
	}
	return page.URL
}

func (r *rp) codeFlow(t *testing.T) (*oauth2.Token, *oidc.IDToken, string) {
	t.Helper()
	state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
	authURL := r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	back := r.login(t, plugintest.NewBrowser(t), authURL)
	if got := back.Query().Get("state"); got != state {
		t.Fatalf("state = %q, want %q (%s)", got, state, back)
	}
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", back)
	}
	tok, err := r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.conf.ClientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt, code
}

func (r *rp) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(r.conf.ClientID), url.QueryEscape(r.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect status %d", resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range plugintest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestRelyingParty_CodeFlowEndToEnd(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newRP(t, srv, provider.NewClient{})
		ctx := context.Background()
		tok, idt, _ := r.codeFlow(t)

		var claims struct {
			Sid      string   `json:"sid"`
			Acr      string   `json:"acr"`
			Amr      []string `json:"amr"`
			AuthTime int64    `json:"auth_time"`
			Email    string   `json:"email"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != r.userID || claims.Sid == "" || claims.Acr != "aal1" || len(claims.Amr) != 1 || claims.Amr[0] != "pwd" || claims.AuthTime == 0 {
			t.Fatalf("id token claims: sub=%s %+v", idt.Subject, claims)
		}
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token for offline_access")
		}

		ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		if ui.Subject != r.userID || ui.Email != r.email {
			t.Fatalf("userinfo = %+v", ui)
		}

		in := r.introspect(t, tok.AccessToken)
		if in["active"] != true || in["sub"] != r.userID || in["client_id"] != r.conf.ClientID {
			t.Fatalf("introspection = %v", in)
		}

		// Refresh rotates: a new pair, the old access token is gone.
		expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
		tok2, err := r.conf.TokenSource(ctx, expired).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
			t.Fatal("refresh did not rotate")
		}
		if r.introspect(t, tok.AccessToken)["active"] != false {
			t.Fatal("old access token still active after rotation")
		}
		if r.introspect(t, tok2.AccessToken)["active"] != true {
			t.Fatal("new access token inactive")
		}

		// Revocation (RFC 7009) of the access token.
		form := url.Values{"token": {tok2.AccessToken}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(r.conf.ClientID, r.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke status %d", resp.StatusCode)
		}
		if r.introspect(t, tok2.AccessToken)["active"] != false {
			t.Fatal("revoked access token introspects active")
		}

		// Client credentials.
		cc := clientcredentials.Config{ClientID: r.conf.ClientID, ClientSecret: r.secret, TokenURL: srv.URL + "/oauth2/token"}
		ct, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		in = r.introspect(t, ct.AccessToken)
		if in["active"] != true || in["sub"] != r.conf.ClientID {
			t.Fatalf("client-credentials introspection = %v", in)
		}
	})
}

// The session is reused: a second authorize with the cookie needs no login.
func TestRelyingParty_LoginSessionIsReused(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	r := newRP(t, srv, provider.NewClient{})
	b := plugintest.NewBrowser(t)
	v := oauth2.GenerateVerifier()
	first := r.login(t, b, r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(v), oidc.Nonce(randomString(12))))
	second := b.Follow(r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(v), oidc.Nonce(randomString(12)), oauth2.SetAuthURLParam("prompt", "none")), rpRedirect)
	if first.Query().Get("code") == "" || second.URL.Query().Get("code") == "" {
		t.Fatalf("first %s, second %s", first, second)
	}
}

var _ = plugin.DefaultConfig
