package plugin_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

// formAction is the form-action directive of a response's
// Content-Security-Policy.
func formAction(t *testing.T, page *plugintest.Page) string {
	t.Helper()
	for _, d := range strings.Split(page.Header.Get("Content-Security-Policy"), ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, "form-action ") {
			return d
		}
	}
	t.Fatalf("no form-action in %q (%s)", page.Header.Get("Content-Security-Policy"), page)
	return ""
}

// TestCSP_FormActionIsSelfAndTheClientsRedirectOrigin: form-action allowed
// every http(s) origin. A page whose form ends in a redirect to a client's
// redirect URI (browsers check form-action against the redirects after a
// form POST) allows 'self' and that URI's origin, the one fosite validated
// for the authorize request; every other page 'self' only. The login flow
// through the login, OTP and consent pages still ends at the client.
func TestCSP_FormActionIsSelfAndTheClientsRedirectOrigin(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		const rpURI = "https://rp.example.test:8443/cb"
		on := true
		c, secret, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
			Name: "Other Origin App", RedirectURIs: []string{rpURI, "https://second.example.test/cb"}, RequireSecondFactor: &on,
		})
		if err != nil {
			t.Fatal(err)
		}
		alice := srv.NewUser(t)
		conf := oauth2.Config{ClientID: c.ID, ClientSecret: secret, RedirectURL: rpURI, Scopes: []string{"openid", "email"},
			Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/auth"}}
		const self = "form-action 'self'"
		const want = "form-action 'self' https://rp.example.test:8443"
		b := plugintest.NewBrowser(t)

		authURL := conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		forged := strings.Replace(authURL, url.QueryEscape(rpURI), url.QueryEscape("https://evil.example.test/cb"), 1)
		for _, path := range []string{
			"/login", "/logout", "/login?return_to=" + url.QueryEscape("/login/otp"),
			// A redirect URI the client did not register adds nothing.
			"/login?return_to=" + url.QueryEscape(strings.TrimPrefix(forged, srv.URL)),
		} {
			if got := formAction(t, b.Follow(srv.URL+path, "")); got != self {
				t.Fatalf("%s: %s, want %s", path, got, self)
			}
		}

		page := b.Follow(authURL, rpURI)
		if page.Status != http.StatusOK || page.URL.Path != "/login" {
			t.Fatalf("login page: %s", page)
		}
		if got := formAction(t, page); got != want {
			t.Fatalf("login page: %s, want %s", got, want)
		}
		returnTo := page.HiddenField("return_to")
		wrong := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {"wrong"}, "return_to": {returnTo}}, rpURI)
		if wrong.Status != http.StatusUnauthorized || formAction(t, wrong) != want {
			t.Fatalf("login page after a wrong password: %s, %s", wrong, formAction(t, wrong))
		}
		page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {returnTo}}, rpURI)
		if page.Status != http.StatusOK || page.URL.Path != "/login/otp" || formAction(t, page) != want {
			t.Fatalf("OTP page: %s, %s", page, formAction(t, page))
		}
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		bad := b.Submit(page, "/login/otp", url.Values{"otp": {wrongCode(code)}, "return_to": {page.HiddenField("return_to")}}, rpURI)
		if bad.Status != http.StatusOK || bad.URL.Query().Get("notice") != "wrong" || formAction(t, bad) != want { // post/redirect/get
			t.Fatalf("OTP page after a wrong code: %s, %s", bad, formAction(t, bad))
		}
		page = b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, rpURI)
		if page.Status != http.StatusOK || !strings.Contains(page.Body, "Other Origin App") || formAction(t, page) != want {
			t.Fatalf("consent page: %s, %s", page, formAction(t, page))
		}
		back := b.Submit(page, "/oauth2/consent", url.Values{"consent": {"allow"}, "authorize_query": {page.HiddenField("authorize_query")}}, rpURI)
		if !strings.HasPrefix(back.URL.String(), rpURI+"?") || back.URL.Query().Get("code") == "" {
			t.Fatalf("after consent: %s (steps %v)", back, b.Steps)
		}

		// The other registered URI: its origin, not the first's.
		conf.RedirectURL = "https://second.example.test/cb"
		page = b.Follow(conf.AuthCodeURL("state-223456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), conf.RedirectURL)
		if page.Status != http.StatusOK || formAction(t, page) != "form-action 'self' https://second.example.test" {
			t.Fatalf("consent page for the second URI: %s, %s", page, formAction(t, page))
		}
	})
}

// TestCSP_LinkPageAllowsTheUpstream: the Link button posts, and the answer
// redirects to the upstream's authorization endpoint, so the confirmation
// page allows that origin (and no other).
func TestCSP_LinkPageAllowsTheUpstream(t *testing.T) {
	smtpSrv := mailtest.StartServer(t)
	f := plugintest.StartFederation(t, "sqlite", "partner", false, smtpMail(smtpSrv))
	client := f.Down.NewClient(t, false)
	alice := f.Down.NewUser(t)
	b := f.Down.LoginWithPassword(t, client, alice).Browser
	cookieName := f.Down.Plugin.Provider.Config().Login.CookieName
	otpPage := otpBeforeLink(t, b, f.Down.URL, "/login/otp", "/federated-identities/partner/link", cookieName, f.Callback())
	if got := formAction(t, otpPage); got != "form-action 'self'" {
		t.Fatalf("OTP page returning to the link page: %s", got)
	}
	backAtLink(t, b, otpPage, "/login/otp", codeFrom(t, smtpSrv, 1, alice.Email), "partner")
	confirm, action := linkConfirmation(t, b, f.Down.URL+"/federated-identities/partner/link", "partner")
	if got, want := formAction(t, confirm), "form-action 'self' "+f.Up.URL; got != want {
		t.Fatalf("link confirmation page: %s, want %s", got, want)
	}
	page := b.Submit(confirm, action, url.Values{"return_to": {confirm.HiddenField("return_to")}}, f.Callback())
	if page.Status != http.StatusOK || !strings.HasPrefix(page.URL.String(), f.Up.URL+"/login") {
		t.Fatalf("the Link button did not reach the upstream's login: %s", page)
	}
}

// TestCSP_EmbeddedOTPPageAllowsTheHostClientsRedirectOrigin: embedded, the
// OTP page's form ends, through the host's authorize endpoint, at the host
// client's redirect URI; the host's fosite validates it.
func TestCSP_EmbeddedOTPPageAllowsTheHostClientsRedirectOrigin(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	h := plugintest.StartHost(t, hp)
	u := h.NewUser(t)
	conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
	b := plugintest.NewBrowser(t)
	verifier := oauth2.GenerateVerifier()
	page := h.HostLogin(t, b, hp, conf, u, verifier)
	redirect, _ := url.Parse(plugintest.RedirectURI)
	if got, want := formAction(t, page), "form-action 'self' "+redirect.Scheme+"://"+redirect.Host; got != want {
		t.Fatalf("embedded OTP page: %s, want %s", got, want)
	}
	page = passOTPPage(t, b, hp, page, 1, u)
	requireAAL2(t, h.Exchange(t, conf, page, verifier), u)
}

// cspDirective is the named directive of a response's
// Content-Security-Policy ("img-src 'self'"), or "".
func cspDirective(page *plugintest.Page, name string) string {
	for _, d := range strings.Split(page.Header.Get("Content-Security-Policy"), ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

// TestCSP_ImgSrcAdmitsExactlyTheLogosOrigin: an https ui.logo_url was
// blocked by img-src 'self', so the logo never showed. img-src admits
// 'self' and that URL's origin (scheme, host and port), no other; a logo
// by path admits nothing more; the rest of the policy is unchanged.
func TestCSP_ImgSrcAdmitsExactlyTheLogosOrigin(t *testing.T) {
	for _, tt := range []struct{ logo, want string }{
		{"https://CDN.example.test:8443/brand/logo.svg?v=2", "img-src 'self' https://cdn.example.test:8443"},
		{"/static/logo.svg", "img-src 'self'"},
		{"", "img-src 'self'"},
	} {
		t.Run(tt.logo, func(t *testing.T) {
			srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.UI.LogoURL = tt.logo })
			b := plugintest.NewBrowser(t)
			for _, path := range []string{"/login", "/logout"} {
				page := b.Follow(srv.URL+path, "")
				if got := cspDirective(page, "img-src"); got != tt.want {
					t.Fatalf("%s: %q, want %q", path, got, tt.want)
				}
				if tt.logo != "" && !strings.Contains(page.Body, `<img src="`+html.EscapeString(tt.logo)+`"`) {
					t.Fatalf("%s: no logo in %s", path, page)
				}
				for _, d := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
					if !strings.Contains(page.Header.Get("Content-Security-Policy"), d) {
						t.Fatalf("%s: %q lost %q", path, page.Header.Get("Content-Security-Policy"), d)
					}
				}
			}
		})
	}
}
