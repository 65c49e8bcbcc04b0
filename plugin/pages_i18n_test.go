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
	"github.com/otpstep/otpstep/web"
)

// TestPages_AppAndProductInEachLanguage walks the browser flow with the
// app's ui_locales in English and in German on both databases, mailing
// through a real SMTP peer: the login page, the OTP page and the consent
// page name the app, the mail's subject and body name the product and the
// app and carry the code, all in the language asked for; the consent page
// names who is signed in and offers "Not you?".
func TestPages_AppAndProductInEachLanguage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.UI.ProductName = "Acme" })
		on := true
		c, secret, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
			Name: "Shop", RedirectURIs: []string{plugintest.RedirectURI}, RequireSecondFactor: &on,
			Scopes: []string{"openid", "email", "offline_access"},
		})
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: c.ID, ClientSecret: secret, RedirectURL: plugintest.RedirectURI,
			Scopes: []string{"openid", "email", "offline_access"}, Endpoint: oauth2.Endpoint{AuthURL: srv.URL + web.PathAuthorize}}
		for i, tc := range []struct {
			lang, login, otp, subject, mailText, consent, signedIn, notYou, offline string
		}{
			{"en", "Sign in to continue to Shop", "to continue to <strong>Shop</strong>", "Your Acme sign-in code for Shop",
				"Your Acme sign-in code for Shop is:", "Allow <strong>Shop</strong> access?", "Signed in as", "Not you?",
				"Stay connected while you are away"},
			{"de", "Anmelden, um mit Shop fortzufahren", "um mit <strong>Shop</strong> fortzufahren", "Ihr Acme-Anmeldecode für Shop",
				"Ihr Acme-Anmeldecode für Shop lautet:", "<strong>Shop</strong> Zugriff erlauben?", "Angemeldet als", "Nicht Sie?",
				"Verbunden bleiben, während Sie nicht da sind"},
		} {
			alice := srv.NewUser(t)
			b := plugintest.NewBrowser(t)
			authURL := conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("ui_locales", tc.lang))
			page := b.Follow(authURL, plugintest.RedirectURI)
			if !strings.Contains(page.Body, `<html lang="`+tc.lang+`">`) || !strings.Contains(page.Body, tc.login) ||
				!strings.Contains(page.Body, "· Acme</title>") {
				t.Fatalf("%s login page: %s", tc.lang, page)
			}
			page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
			if page.URL.Path != "/login/otp" || !strings.Contains(page.Body, tc.otp) {
				t.Fatalf("%s OTP page: %s", tc.lang, page)
			}
			code := codeFrom(t, smtpSrv, i+1, alice.Email)
			m := smtpSrv.Messages()[i]
			if m.Subject != tc.subject {
				t.Errorf("%s subject %q, want %q", tc.lang, m.Subject, tc.subject)
			}
			if !strings.Contains(m.Text, tc.mailText) || !strings.Contains(m.Text, code) || !strings.Contains(m.HTML, code) {
				t.Errorf("%s mail body lacks %q or the code:\n%s", tc.lang, tc.mailText, m.Text)
			}
			if strings.Contains(m.Subject, "127.0.0.1") || strings.Contains(m.Text, "127.0.0.1") {
				t.Errorf("%s mail names the host: %q", tc.lang, m.Subject)
			}
			page = b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
			if page.Status != http.StatusOK || !strings.Contains(page.Body, tc.consent) || !strings.Contains(page.Body, tc.signedIn) ||
				!strings.Contains(page.Body, alice.Email) || !strings.Contains(page.Body, tc.notYou) || !strings.Contains(page.Body, tc.offline) {
				t.Fatalf("%s consent page: %s", tc.lang, page)
			}
			if !strings.Contains(page.Body, `href="/login?account=other&amp;return_to=`) {
				t.Fatalf("%s consent page: no way to another account: %s", tc.lang, page)
			}
			// Signed in, the login page names the account and asks its
			// password again, or offers another account.
			login := b.Follow(srv.URL+"/login", "")
			if !strings.Contains(login.Body, alice.Email) || !strings.Contains(login.Body, `href="/login?account=other"`) {
				t.Fatalf("%s login page while signed in: %s", tc.lang, login)
			}
			other := b.Follow(srv.URL+"/login?account=other", "")
			if strings.Contains(other.Body, alice.Email) {
				t.Fatalf("%s another account still shows the signed-in one: %s", tc.lang, other)
			}
		}
	})
}

// TestErrorPage_UnregisteredRedirectURIInWordsWithTheWayBack: the error page
// of a redirect_uri the client did not register says so in words, shows the
// request id and links to the client's home page (clients create
// --client-uri); a signed-out browser is not asked "Sign out?".
func TestErrorPage_UnregisteredRedirectURIInWordsWithTheWayBack(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	c := srv.NewClientWith(t, provider.NewClient{Name: "Shop", ClientURI: "https://shop.example/"})
	conf := c.Conf
	conf.RedirectURL = "https://evil.example/cb"
	b := plugintest.NewBrowser(t)
	page := b.Follow(conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "")
	if page.Status != http.StatusBadRequest || !strings.Contains(page.Body, "This app&#39;s return address is not registered") ||
		!strings.Contains(page.Body, `<a class="button secondary" href="https://shop.example/">Back to Shop</a>`) ||
		!strings.Contains(page.Body, "Error id:") || strings.Contains(page.Body, "invalid_request") {
		t.Fatalf("error page: %s", page)
	}
	de := b.Follow(conf.AuthCodeURL("state-123456789", oauth2.SetAuthURLParam("ui_locales", "de")), "")
	if !strings.Contains(de.Body, "Die Rücksprungadresse dieser App ist nicht registriert") || !strings.Contains(de.Body, "Zurück zu Shop") {
		t.Fatalf("German error page: %s", de)
	}
	out := b.Follow(srv.URL+"/logout", "")
	if out.Status != http.StatusOK || strings.Contains(out.Body, "Sign out?") || !strings.Contains(out.Body, "You are signed out") {
		t.Fatalf("logout page while signed out: %s", out)
	}
}
