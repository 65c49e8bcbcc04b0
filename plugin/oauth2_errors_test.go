package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// oauthError is the error code of a failed token exchange.
func oauthError(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want an OAuth2 error response, got %v", err)
	}
	return re.ErrorCode
}

func postForm(t *testing.T, target string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestOAuth2_Refusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		r := newRP(t, srv, provider.NewClient{})
		ctx := context.Background()

		t.Run("wrong redirect URI is an error page, never a redirect", func(t *testing.T) {
			c := r.conf
			c.RedirectURL = "http://127.0.0.1:1/evil"
			page := plugintest.NewBrowser(t).Follow(c.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "http://127.0.0.1:1/")
			if page.Status != http.StatusBadRequest || !strings.Contains(page.Body, "return address is not registered") {
				t.Fatalf("got %s", page)
			}
		})

		t.Run("public client without PKCE", func(t *testing.T) {
			pub := newRP(t, srv, provider.NewClient{Public: true, GrantTypes: []string{"authorization_code"}})
			page := plugintest.NewBrowser(t).Follow(pub.conf.AuthCodeURL("state-123456789"), rpRedirect)
			if got := page.URL.Query().Get("error"); got != "invalid_request" {
				t.Fatalf("error = %q (%s)", got, page)
			}
		})

		t.Run("confidential client without PKCE when enforce_pkce is all", func(t *testing.T) {
			page := plugintest.NewBrowser(t).Follow(r.conf.AuthCodeURL("state-123456789"), rpRedirect)
			if got := page.URL.Query().Get("error"); got != "invalid_request" {
				t.Fatalf("error = %q (%s)", got, page)
			}
		})

		t.Run("plain PKCE is refused", func(t *testing.T) {
			page := plugintest.NewBrowser(t).Follow(r.conf.AuthCodeURL("state-123456789",
				oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)),
				oauth2.SetAuthURLParam("code_challenge_method", "plain")), rpRedirect)
			if got := page.URL.Query().Get("error"); got != "invalid_request" {
				t.Fatalf("error = %q (%s)", got, page)
			}
		})

		t.Run("wrong client secret", func(t *testing.T) {
			status, body := postForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, r.conf.ClientID, "wrong-secret")
			if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Fatalf("got %d %v", status, body)
			}
		})

		t.Run("code reused revokes what the first redemption issued", func(t *testing.T) {
			state, verifier := "state-123456789", oauth2.GenerateVerifier()
			back := r.login(t, plugintest.NewBrowser(t), r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-123456789")))
			code := back.Query().Get("code")
			tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if got := oauthError(t, err); got != "invalid_grant" {
				t.Fatalf("second redemption error = %q", got)
			}
			if r.introspect(t, tok.AccessToken)["active"] != false {
				t.Fatal("access token of the first redemption still active")
			}
			expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
			if _, err := r.conf.TokenSource(ctx, expired).Token(); err == nil {
				t.Fatal("refresh token of the first redemption still works")
			}
		})

		t.Run("rotated refresh token reused revokes the family", func(t *testing.T) {
			tok, _, _ := r.codeFlow(t)
			old := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
			tok2, err := r.conf.TokenSource(ctx, old).Token()
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.conf.TokenSource(ctx, old).Token()
			if got := oauthError(t, err); got != "invalid_grant" {
				t.Fatalf("reuse error = %q", got)
			}
			if r.introspect(t, tok2.AccessToken)["active"] != false {
				t.Fatal("access token issued after the rotation survived the reuse")
			}
			_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
			if got := oauthError(t, err); got != "invalid_grant" {
				t.Fatalf("newest refresh token after reuse: error = %q", got)
			}
		})

		t.Run("refresh token is no bearer token", func(t *testing.T) {
			tok, _, _ := r.codeFlow(t)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+tok.RefreshToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("userinfo with a refresh token: %d", resp.StatusCode)
			}
			if _, err := srv.Plugin.Provider.AuthenticateBearer(ctx, tok.RefreshToken); !errors.Is(err, provider.ErrTokenInactive) {
				t.Fatalf("AuthenticateBearer(refresh token) = %v", err)
			}
		})
	})
}

func TestOAuth2_ExpiredCodeIsInvalidGrant(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		// Codes are born expired: no waiting in the test.
		srv.Plugin.Provider.Fosite.AuthorizeCodeLifespan = -time.Minute
		r := newRP(t, srv, provider.NewClient{})
		verifier := oauth2.GenerateVerifier()
		back := r.login(t, plugintest.NewBrowser(t), r.conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-123456789")))
		_, err := r.conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if got := oauthError(t, err); got != "invalid_grant" {
			t.Fatalf("error = %q", got)
		}
	})
}

func TestOAuth2_PromptNoneWithoutSessionIsLoginRequired(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	r := newRP(t, srv, provider.NewClient{})
	page := plugintest.NewBrowser(t).Follow(r.conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")), rpRedirect)
	if got := page.URL.Query().Get("error"); got != "login_required" {
		t.Fatalf("error = %q (%s)", got, page)
	}
}

var _ = plugin.DefaultConfig
