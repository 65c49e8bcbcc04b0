package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/resource"
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

var authParam = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

// challengeParams reads the auth-params of a Bearer challenge.
func challengeParams(t *testing.T, header string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(header, "Bearer ") {
		t.Fatalf("not a Bearer challenge: %q", header)
	}
	out := map[string]string{}
	for _, m := range authParam.FindAllStringSubmatch(header, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestStepUp_ResourceServerLoop walks RFC 9470 end to end: a go-oidc relying
// party logs in with the password only (aal1); a resource server guarded by
// package resource refuses that token with the exact challenge; the RP sends
// the user back to /oauth2/auth with the challenge's acr_values and max_age;
// the user types the emailed code; the new token passes. Then, on the
// injected clock, the login grows older than max_age: the resource server
// refuses with max_age, and following the challenge again asks for the
// password and the second factor again, and moves auth_time.
func TestStepUp_ResourceServerLoop(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		ctx := context.Background()
		// The clock moves six minutes ahead of the wall clock below: ID
		// tokens and the authorize checks follow the injected clock.

		// The resource server is a client of its own (client credentials),
		// which the RP's tokens name in aud.
		rs, rsSecret, err := srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{Name: "payments API", GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		r := newRP(t, srv, provider.NewClient{Audience: []string{rs.ID}}) // second factor not required
		guard, err := resource.New(resource.Config{
			IntrospectionURL: srv.URL + "/oauth2/introspect", ClientID: rs.ID, ClientSecret: rsSecret,
			Clock: srv.Clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		api := httptest.NewServer(guard.Protect(resource.Require{ACR: "aal2", MaxAge: 5 * time.Minute}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ := resource.TokenFrom(r.Context())
			writeJSONForTest(w, map[string]any{"sub": tok.Subject, "acr": tok.ACR, "amr": tok.AMR, "auth_time": tok.AuthTime.Unix()})
		})))
		t.Cleanup(api.Close)
		callAPI := func(tok *oauth2.Token) (*http.Response, map[string]any) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, api.URL+"/payments", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			return resp, body
		}
		b := plugintest.NewBrowser(t)
		authorize := func(extra ...oauth2.AuthCodeOption) (*plugintest.Page, string, string) {
			state, verifier := randomString(12), oauth2.GenerateVerifier()
			opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(randomString(12)), oauth2.SetAuthURLParam("audience", rs.ID)}, extra...)
			return b.Follow(r.conf.AuthCodeURL(state, opts...), rpRedirect), state, verifier
		}
		exchange := func(page *plugintest.Page, state, verifier string) *oauth2.Token {
			t.Helper()
			if !strings.HasPrefix(page.URL.String(), rpRedirect) || page.URL.Query().Get("state") != state || page.URL.Query().Get("code") == "" {
				t.Fatalf("expected the RP's redirect with a code: %s (steps %v)", page, b.Steps)
			}
			tok, err := r.conf.Exchange(ctx, page.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		password := func(page *plugintest.Page) *plugintest.Page {
			t.Helper()
			if page.Status != http.StatusOK || page.URL.Path != "/login" {
				t.Fatalf("expected the login form: %s", page)
			}
			return b.Submit(page, "/login", url.Values{"email": {r.email}, "password": {r.password}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
		}
		secondFactor := func(page *plugintest.Page, nthMail int) *plugintest.Page {
			t.Helper()
			if page.Status != http.StatusOK || page.URL.Path != "/login/otp" {
				t.Fatalf("expected the OTP page: %s (steps %v)", page, b.Steps)
			}
			code := codeFrom(t, smtpSrv, nthMail, r.email)
			return b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
		}
		// followChallenge re-authorizes with exactly the challenge's parameters.
		followChallenge := func(resp *http.Response) (*plugintest.Page, string, string) {
			t.Helper()
			p := challengeParams(t, resp.Header.Get("WWW-Authenticate"))
			return authorize(oauth2.SetAuthURLParam("acr_values", p["acr_values"]), oauth2.SetAuthURLParam("max_age", p["max_age"]))
		}

		// 1. A password-only login: aal1.
		page, state, verifier := authorize()
		aal1 := exchange(password(page), state, verifier)
		resp, _ := callAPI(aal1)
		const wantACR = `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="aal2", max_age="300"`
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantACR {
			t.Fatalf("aal1 token: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), wantACR)
		}

		// 2. Following the challenge: the login is recent enough, so only
		// the second factor is asked; the new token passes.
		page, state, verifier = followChallenge(resp)
		aal2 := exchange(secondFactor(page, 1), state, verifier)
		resp, body := callAPI(aal2)
		if resp.StatusCode != http.StatusOK || body["sub"] != r.userID || body["acr"] != "aal2" || strings.Join(toStrings(body["amr"]), ",") != "pwd,otp" {
			t.Fatalf("aal2 token: %d %v", resp.StatusCode, body)
		}
		firstAuthTime := body["auth_time"]

		// 3. Six minutes later the login is older than max_age=300.
		srv.Clock.Advance(6 * time.Minute)
		resp, _ = callAPI(aal2)
		const wantAge = `Bearer error="insufficient_user_authentication", error_description="More recent authentication is required.", acr_values="aal2", max_age="300"`
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantAge {
			t.Fatalf("old login: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), wantAge)
		}

		// 4. Following it asks for the password and then the second factor
		// again (a fresh login is aal1 until the code passes).
		page, state, verifier = followChallenge(resp)
		fresh := exchange(secondFactor(password(page), 2), state, verifier)
		resp, body = callAPI(fresh)
		if resp.StatusCode != http.StatusOK || body["acr"] != "aal2" || body["auth_time"] == firstAuthTime || body["auth_time"] != float64(srv.Clock.Now().Unix()) {
			t.Fatalf("fresh token: %d %v (first auth_time %v, now %d)", resp.StatusCode, body, firstAuthTime, srv.Clock.Now().Unix())
		}
	})
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func writeJSONForTest(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// RFC 6749 §3.3: CreateClient refuses a scope value outside 1*NQCHAR for
// every caller, not only the CLI.
func TestCreateClient_RefusesScopesOutsideNQCHAR(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	for _, sc := range []string{"openid email", "", `a"b`, `a\b`, "café", "tab\there"} {
		_, _, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{GrantTypes: []string{"client_credentials"}, Scopes: []string{"openid", sc}})
		if !errors.Is(err, provider.ErrInvalidInput) || !strings.Contains(err.Error(), fmt.Sprintf("scope %q", sc)) {
			t.Errorf("scope %q: err = %v", sc, err)
		}
	}
	if _, _, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{GrantTypes: []string{"client_credentials"}, Scopes: []string{"openid", "pay:write", "a!#[]~"}}); err != nil {
		t.Fatalf("NQCHAR scopes refused: %v", err)
	}
}
