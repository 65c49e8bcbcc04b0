package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

func TestConsent_AllowAndDeny(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	off := false
	c, _, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
		Name: "Third Party App", RedirectURIs: []string{plugintest.RedirectURI}, RequireSecondFactor: &off,
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := srv.NewUser(t)
	conf := oauth2.Config{ClientID: c.ID, RedirectURL: plugintest.RedirectURI, Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/auth"}}
	for _, answer := range []string{"allow", "deny"} {
		t.Run(answer, func(t *testing.T) {
			b := plugintest.NewBrowser(t)
			page := b.Follow(conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), plugintest.RedirectURI)
			page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
			if page.Status != 200 || !strings.Contains(page.Body, "Third Party App") || !strings.Contains(page.Body, "email") {
				t.Fatalf("consent page: %s", page)
			}
			back := b.Submit(page, "/oauth2/consent", url.Values{"consent": {answer}, "authorize_query": {page.HiddenField("authorize_query")}}, plugintest.RedirectURI)
			q := back.URL.Query()
			if answer == "allow" && q.Get("code") == "" || answer == "deny" && q.Get("error") != "access_denied" {
				t.Fatalf("after %s: %s", answer, back)
			}
		})
	}
}

func TestLogin_FailuresAreLimitedPerAccount(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.Login.MaxFailuresPerAccount = 3 })
	alice := srv.NewUser(t)
	b := plugintest.NewBrowser(t)
	page := b.Follow(srv.URL+"/login", "")
	for i := 0; i < 3; i++ {
		p := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {"wrong password"}}, "")
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "The email or password is not right.") {
			t.Fatalf("failure %d: %s", i+1, p)
		}
	}
	p := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}}, "")
	if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" {
		t.Fatalf("after the limit, even the right password: %s", p)
	}
	// An unknown email gets the same answer as a wrong password.
	p = b.Submit(page, "/login", url.Values{"email": {"nobody@example.com"}, "password": {"whatever pw"}}, "")
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "The email or password is not right.") {
		t.Fatalf("unknown email: %s", p)
	}
}

func TestLogin_FailuresAreLimitedPerIP(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.Login.MaxFailuresPerIP = 2 })
	b := plugintest.NewBrowser(t)
	page := b.Follow(srv.URL+"/login", "")
	for i := 0; i < 2; i++ {
		b.Submit(page, "/login", url.Values{"email": {"a" + string(rune('0'+i)) + "@example.com"}, "password": {"wrong password"}}, "")
	}
	alice := srv.NewUser(t)
	if p := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}}, ""); p.Status != http.StatusTooManyRequests {
		t.Fatalf("third try from the same IP: %s", p)
	}
}

func TestLogin_ReturnToNeverLeavesTheSite(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	alice := srv.NewUser(t)
	for _, evil := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/oauth2/authx", "/logout"} {
		b := plugintest.NewBrowser(t)
		page := b.Follow(srv.URL+"/login?return_to="+url.QueryEscape(evil), "")
		if got := page.HiddenField("return_to"); got != "" {
			t.Fatalf("return_to %q was kept as %q", evil, got)
		}
		p := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {evil}}, "http")
		if p.Status != http.StatusOK || strings.HasPrefix(p.URL.String(), "https://evil") {
			t.Fatalf("return_to %q: %s", evil, p)
		}
	}
}

func TestLogout_EndsTheSession(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	client := srv.NewClient(t, false)
	alice := srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, alice)
	page := login.Browser.Follow(srv.URL+"/logout", "")
	if page.Status != 200 || page.CSRFToken() == "" {
		t.Fatalf("logout confirm page: %s", page)
	}
	login.Browser.Submit(page, "/logout", url.Values{}, "")
	if _, err := srv.Store.GetLoginSession(context.Background(), login.SID); err == nil {
		t.Fatal("session survived logout")
	}
	back := login.Browser.Follow(client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")), plugintest.RedirectURI)
	if back.URL.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none after logout: %s", back)
	}
}
