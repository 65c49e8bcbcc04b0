package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web"
)

// partnerTokenFederation is a federation whose upstream is asked for
// offline_access (so it issues a refresh token) and whose own access tokens
// outlive the clock moves of the tests.
func partnerTokenFederation(t *testing.T, dialect string) *plugintest.Federation {
	t.Helper()
	return plugintest.StartFederation(t, dialect, "partner", true, func(c *plugin.Config) {
		up := &c.Upstreams[len(c.Upstreams)-1]
		up.Scopes = []string{"openid", "email", "offline_access"}
		c.OAuth2.AccessTokenLifespan = 24 * time.Hour
	})
}

// linkInBrowser links the browser's user (a login past the second factor)
// to upUser through the upstream: the confirmation page, its Link button, the
// upstream's login when the browser has no session there, the callback.
func linkInBrowser(t *testing.T, f *plugintest.Federation, b *plugintest.Browser, upUser *plugintest.User) {
	t.Helper()
	confirm, action := linkConfirmation(t, b, f.Down.URL+"/federated-identities/partner/link", "partner")
	page := b.Submit(confirm, action, url.Values{"return_to": {""}}, f.Callback())
	if strings.HasPrefix(page.URL.String(), f.Up.URL+"/login") {
		page = b.Submit(page, "/login", url.Values{"email": {upUser.Email}, "password": {upUser.Password}, "return_to": {page.HiddenField("return_to")}}, f.Callback())
	}
	if page.URL.Query().Get("code") == "" {
		t.Fatalf("the upstream did not come back with a code: %s (steps %v)", page, b.Steps)
	}
	done := b.Follow(page.URL.String(), "")
	if done.Status != http.StatusOK || !strings.Contains(done.Body, "Your partner account is now linked") {
		t.Fatalf("callback: %s", done)
	}
}

// grantedToken is a GrantFederatedToken answer.
type grantedToken struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

func (c *apiClient) grantToken(token string) apiResponse {
	c.t.Helper()
	return c.do(http.MethodPost, "/federated-identities/partner/token", token, "", "")
}

func grantOK(t *testing.T, resp apiResponse) grantedToken {
	t.Helper()
	if resp.Status != http.StatusOK {
		t.Fatalf("grant: %d %s", resp.Status, resp.Body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("grant without Cache-Control no-store: %v", resp.Header)
	}
	var g grantedToken
	if err := json.Unmarshal(resp.Body, &g); err != nil {
		t.Fatal(err)
	}
	if g.AccessToken == "" || !strings.EqualFold(g.TokenType, "bearer") || g.RefreshToken == "" ||
		g.ExpiresIn <= 0 || g.ExpiresIn > 3600 || !strings.Contains(" "+g.Scope+" ", " offline_access ") {
		t.Fatalf("granted %+v", g)
	}
	return g
}

// upstreamSubject is the sub the upstream's userinfo answers for its access
// token: the token is the upstream's and live.
func upstreamSubject(t *testing.T, f *plugintest.Federation, accessToken string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.Up.URL+web.PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upstream userinfo: %d %s", resp.StatusCode, body)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(body, &claims)
	return claims.Sub
}

func countAudit(t *testing.T, store *storage.Store, userID, typ, key string, value any) int {
	t.Helper()
	events, err := store.ListAuditEvents(context.Background(), userID, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type == typ && e.Detail[key] == value {
			n++
		}
	}
	return n
}

// GrantFederatedToken hands out the upstream's tokens kept from the browser's
// link: the same while they live (also after the signing keys rotate), sealed
// at rest; refreshed once when expired however many ask at once; 404 for a
// user without a link, after unlinking, and once the upstream refuses the
// refresh (the tokens dropped); 503 with Retry-After while the upstream
// cannot be reached (the tokens kept); 401 without a bearer token, 403
// without the scope. A sign-in with the upstream keeps its tokens too.
func TestGrantFederatedToken_PartnerTokensFromLinkAndSignIn(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := partnerTokenFederation(t, dialect)
		ctx := context.Background()
		api := newAPIClient(t, f.Down)
		scopes := []string{web.ScopeFederatedIdentityToken, web.ScopeFederatedIdentityDelete}
		client := f.Down.NewClient(t, false, scopes...)
		alice, bob, upAlice := f.Down.NewUser(t), f.Down.NewUser(t), f.Up.NewUser(t)
		login := f.Down.LoginPastSecondFactor(t, client, alice)
		aliceTok := login.Token.AccessToken
		bobTok := f.Down.LoginPastSecondFactor(t, client, bob).Token.AccessToken

		wantError(t, api.grantToken(aliceTok), http.StatusNotFound, "not-found", "")
		linkInBrowser(t, f, login.Browser, upAlice)

		first := grantOK(t, api.grantToken(aliceTok))
		if sub := upstreamSubject(t, f, first.AccessToken); sub != upAlice.ID {
			t.Fatalf("the granted token is %q's at the upstream, want %q", sub, upAlice.ID)
		}
		if _, err := f.Down.Plugin.Provider.Keys.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if again := grantOK(t, api.grantToken(aliceTok)); again.AccessToken != first.AccessToken || again.RefreshToken != first.RefreshToken {
			t.Fatalf("a live token was not handed out as kept: %+v, then %+v", first, again)
		}
		kept, err := f.Down.Store.GetFederatedToken(ctx, alice.ID, "partner")
		if err != nil || kept.Subject != upAlice.ID {
			t.Fatalf("kept %+v %v", kept, err)
		}
		if bytes.Contains(kept.Sealed, []byte(first.AccessToken)) || bytes.Contains(kept.Sealed, []byte(first.RefreshToken)) {
			t.Fatal("the upstream's tokens are kept in clear")
		}

		wantError(t, api.grantToken(bobTok), http.StatusNotFound, "not-found", "")
		wantError(t, api.grantToken(""), http.StatusUnauthorized, "unauthorized", "")
		weak := f.Down.LoginPastSecondFactor(t, f.Down.NewClient(t, false, web.ScopeFederatedIdentityDelete), alice).Token.AccessToken
		wantError(t, api.grantToken(weak), http.StatusForbidden, "insufficient-scope", "")

		// Expired (by the clock): five requests at once, one refresh. The
		// upstream rotates refresh tokens and revokes the whole grant when
		// one is redeemed twice, so a second refresh would fail them.
		f.Down.Clock.Advance(time.Hour)
		const parallel = 5
		var wg sync.WaitGroup
		statuses, bodies := make([]int, parallel), make([][]byte, parallel)
		for i := range parallel {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, f.Down.URL+f.Down.Plugin.Provider.Config().API.Paths()[0]+"/federated-identities/partner/token", nil)
				req.Header.Set("Authorization", "Bearer "+aliceTok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				statuses[i] = resp.StatusCode
				bodies[i], _ = io.ReadAll(resp.Body)
			})
		}
		wg.Wait()
		var refreshed grantedToken
		for i := range parallel {
			var g grantedToken
			if statuses[i] != http.StatusOK || json.Unmarshal(bodies[i], &g) != nil {
				t.Fatalf("parallel grant %d: %d %s", i, statuses[i], bodies[i])
			}
			if i == 0 {
				refreshed = g
			} else if g != refreshed {
				t.Fatalf("parallel grants differ: %+v and %+v", refreshed, g)
			}
		}
		if refreshed.AccessToken == first.AccessToken || refreshed.RefreshToken == first.RefreshToken || refreshed.ExpiresIn <= 0 {
			t.Fatalf("not refreshed: %+v, was %+v", refreshed, first)
		}
		if n := countAudit(t, f.Down.Store, alice.ID, provider.AuditFederatedTokenGranted, "refreshed", true); n != 1 {
			t.Fatalf("%d refreshes audited, want 1", n)
		}
		if sub := upstreamSubject(t, f, refreshed.AccessToken); sub != upAlice.ID {
			t.Fatalf("the refreshed token is %q's", sub)
		}
		if again := grantOK(t, api.grantToken(aliceTok)); again != refreshed {
			t.Fatalf("the refreshed tokens were not kept: %+v, then %+v", refreshed, again)
		}

		// Back to the wall clock: fosite refuses a login whose auth_time is
		// ahead of it, and the next steps sign in again.
		f.Down.Clock.Advance(-time.Hour)

		// Unlinked: the tokens go with the link.
		if resp := api.do(http.MethodDelete, "/federated-identities/partner", aliceTok, "", ""); resp.Status != http.StatusNoContent {
			t.Fatalf("unlink: %d %s", resp.Status, resp.Body)
		}
		wantError(t, api.grantToken(aliceTok), http.StatusNotFound, "not-found", "")
		if _, err := f.Down.Store.GetFederatedToken(ctx, alice.ID, "partner"); err == nil {
			t.Fatal("the tokens outlived the link")
		}

		// Linked again; the upstream revokes the refresh token, so the
		// refresh after expiry is refused: the tokens are dropped, 404.
		login = f.Down.LoginPastSecondFactor(t, client, alice)
		aliceTok = login.Token.AccessToken
		linkInBrowser(t, f, login.Browser, upAlice)
		second := grantOK(t, api.grantToken(aliceTok))
		revoke, _ := http.NewRequest(http.MethodPost, f.Up.URL+web.PathRevoke,
			strings.NewReader(url.Values{"token": {second.RefreshToken}, "token_type_hint": {"refresh_token"}}.Encode()))
		revoke.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		revoke.SetBasicAuth(url.QueryEscape(f.UpClient.ID), url.QueryEscape(f.UpClient.Secret))
		if resp, err := http.DefaultClient.Do(revoke); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke at the upstream: %v %v", resp, err)
		}
		f.Down.Clock.Advance(time.Hour)
		wantError(t, api.grantToken(aliceTok), http.StatusNotFound, "not-found", "")
		if _, err := f.Down.Store.GetFederatedToken(ctx, alice.ID, "partner"); err == nil {
			t.Fatal("tokens the upstream refused to refresh were kept")
		}
		if n := countAudit(t, f.Down.Store, alice.ID, provider.AuditFederatedTokenDropped, "reason", "refresh-rejected"); n != 1 {
			t.Fatalf("%d refused refreshes audited, want 1", n)
		}
		f.Down.Clock.Advance(-time.Hour)

		// Signing in with the upstream keeps its tokens as well.
		b := plugintest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		page := b.Follow(client.Conf.AuthCodeURL(plugintest.RandomString(12), oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
		m := partnerButton.FindStringSubmatch(page.Body)
		if page.URL.Path != "/login" || m == nil {
			t.Fatalf("no partner button on the login page: %s", page)
		}
		page = b.Follow(f.Down.URL+strings.ReplaceAll(m[1], "&amp;", "&"), plugintest.RedirectURI)
		page = b.Submit(page, "/login", url.Values{"email": {upAlice.Email}, "password": {upAlice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		code := page.URL.Query().Get("code")
		if code == "" {
			t.Fatalf("sign-in with the upstream: %s (steps %v)", page, b.Steps)
		}
		signedIn, err := client.Conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		third := grantOK(t, api.grantToken(signedIn.AccessToken))
		if sub := upstreamSubject(t, f, third.AccessToken); sub != upAlice.ID || third.AccessToken == second.AccessToken {
			t.Fatalf("after the sign-in, granted %+v of %q", third, sub)
		}

		// The upstream down while a refresh is due: 503, the tokens kept.
		f.Down.Clock.Advance(time.Hour)
		f.Up.HTTP.Close()
		down := api.grantToken(signedIn.AccessToken)
		wantError(t, down, http.StatusServiceUnavailable, "unavailable", "")
		if down.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if _, err := f.Down.Store.GetFederatedToken(ctx, alice.ID, "partner"); err != nil {
			t.Fatalf("the tokens were dropped while the upstream was down: %v", err)
		}
	})
}
