package plugintest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web"
)

// RedirectURI is where test relying parties are sent back to; nothing
// listens there, the browser stops at it.
const RedirectURI = "http://127.0.0.1:1/callback"

// User is a test account with its password.
type User struct {
	*storage.User
	Password string
}

// NewUser creates a user with a random email.
func (s *Server) NewUser(t *testing.T) *User {
	t.Helper()
	email := "user-" + RandomString(8) + "@example.com"
	u, err := s.Plugin.Provider.CreateUser(context.Background(), email, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	return &User{User: u, Password: "correct horse battery"}
}

// RandomString is n random bytes, base64url, lower-cased.
func RandomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base64.RawURLEncoding.EncodeToString(b))
}

// Client is a registered confidential client and its secret.
type Client struct {
	*storage.Client
	Secret string
	Conf   oauth2.Config
}

// NewClient registers a confidential client for the code flow with the
// given scopes (openid is added) and second-factor requirement.
func (s *Server) NewClient(t *testing.T, secondFactor bool, scopes ...string) *Client {
	t.Helper()
	sf := secondFactor
	c, secret, err := s.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
		RedirectURIs:        []string{RedirectURI},
		GrantTypes:          []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:              append([]string{"openid", "offline_access", "email"}, scopes...),
		SkipConsent:         true,
		RequireSecondFactor: &sf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Client{Client: c, Secret: secret, Conf: oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, RedirectURL: RedirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + web.PathAuthorize, TokenURL: s.URL + web.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   append([]string{"openid", "offline_access", "email"}, scopes...),
	}}
}

// NewLoginUI registers a client as NewClient(t, false, scopes...) does, as
// a login UI (provider.NewClient.LoginUI): it may pass the second factor
// with PUT /sessions/{id} and receives login codes in the response.
func (s *Server) NewLoginUI(t *testing.T, scopes ...string) *Client {
	t.Helper()
	return s.NewClientWith(t, provider.NewClient{Scopes: scopes, LoginUI: true})
}

// Login is a finished browser login: its browser (with the session cookie),
// the tokens, and the sid of the login session.
type Login struct {
	Browser *Browser
	Token   *oauth2.Token
	SID     string
	User    *User
}

// LoginWithPassword runs the code flow through the login form for a client
// that does not require the second factor, and returns tokens bound to the
// login session (aal1): what a login UI holds before driving the OTP step.
func (s *Server) LoginWithPassword(t *testing.T, c *Client, u *User) *Login {
	t.Helper()
	b := NewBrowser(t)
	verifier := oauth2.GenerateVerifier()
	page := b.Follow(c.Conf.AuthCodeURL(RandomString(12), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", RandomString(12))), RedirectURI)
	if strings.HasPrefix(page.URL.Path, web.PathLogin) && page.Status == http.StatusOK {
		page = b.Submit(page, web.PathLogin, url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, RedirectURI)
	}
	code := page.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s (steps %v)", page, b.Steps)
	}
	tok, err := c.Conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return &Login{Browser: b, Token: tok, SID: IDTokenClaim(t, tok, "sid"), User: u}
}

// LoginPastSecondFactor is LoginWithPassword, then the login session passes
// the second factor as a right code passes it (amr gains otp): the tokens
// stand for a login at aal2 from now.
func (s *Server) LoginPastSecondFactor(t *testing.T, c *Client, u *User) *Login {
	t.Helper()
	l := s.LoginWithPassword(t, c, u)
	if err := s.Store.PassLoginSession(context.Background(), l.SID, u.ID, provider.AMROTP); err != nil {
		t.Fatalf("pass the second factor: %v", err)
	}
	return l
}

// IDTokenClaim reads a claim of the token's ID token without verifying it
// (tests that need verification use go-oidc).
func IDTokenClaim(t *testing.T, tok *oauth2.Token, claim string) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("no id token in %v", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	switch v := claims[claim].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
