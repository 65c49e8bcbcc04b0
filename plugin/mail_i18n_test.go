package plugin_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/web/openapitest"
)

// TestMail_EveryKindInBothLanguagesThroughTheSMTPPeer: the sign-in code
// (the pages, ui_locales), the verification code (the user API,
// Accept-Language) and the account recovery code ("Forgot your password?"
// from the app's login page, ui_locales), each in English and in
// German, as the real SMTP peer receives them: the subject and both bodies
// (text and HTML) name the product and the app, both bodies carry the code,
// the subject does not, the HTML is in the mail's language, and nothing
// names the server's host. Both databases.
func TestMail_EveryKindInBothLanguagesThroughTheSMTPPeer(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.UI.ProductName = "Acme" })
		on := true
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop", RequireSecondFactor: &on})
		shopAPI := srv.NewClientWith(t, provider.NewClient{Name: "Shop", Scopes: []string{"user:otp:create"}})
		type want struct{ subject, intro string }
		wants := map[string]map[string]want{
			"login": {
				"en": {"Your Acme sign-in code for Shop", "Your Acme sign-in code for Shop is:"},
				"de": {"Ihr Acme-Anmeldecode für Shop", "Ihr Acme-Anmeldecode für Shop lautet:"},
			},
			"account": {
				"en": {"Your Acme verification code for Shop", "Your Acme verification code for Shop is:"},
				"de": {"Ihr Acme-Bestätigungscode für Shop", "Ihr Acme-Bestätigungscode für Shop lautet:"},
			},
			"recovery": {
				"en": {"Your Acme account recovery code for Shop", "Your Acme account recovery code for Shop is:"},
				"de": {"Ihr Acme-Code zur Kontowiederherstellung für Shop", "Ihr Acme-Code zur Kontowiederherstellung für Shop lautet:"},
			},
		}
		send := map[string]func(t *testing.T, u *plugintest.User, lang string){
			"login": func(t *testing.T, u *plugintest.User, lang string) {
				b := plugintest.NewBrowser(t)
				page := b.Follow(shop.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
					oauth2.SetAuthURLParam("ui_locales", lang)), plugintest.RedirectURI)
				page = b.Submit(page, "/login", url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
				if page.URL.Path != "/login/otp" {
					t.Fatalf("after the password: %s", page)
				}
			},
			"account": func(t *testing.T, u *plugintest.User, lang string) {
				token := srv.LoginWithPassword(t, shopAPI, u).Token.AccessToken
				req, err := http.NewRequest(http.MethodPost, srv.URL+openapitest.DefaultPrefix+"/user/otp", strings.NewReader(`{"password":"`+u.Password+`"}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept-Language", lang)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					t.Fatalf("POST /user/otp: %d", resp.StatusCode)
				}
			},
			"recovery": func(t *testing.T, u *plugintest.User, lang string) {
				b := plugintest.NewBrowser(t)
				forgot := map[string]string{"en": "Forgot your password?", "de": "Passwort vergessen?"}[lang]
				page := toRecovery(t, b, shop, forgot, oauth2.SetAuthURLParam("ui_locales", lang))
				page = b.Submit(page, "/login/recover", url.Values{"email": {u.Email}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
				if page.URL.Path != "/login/recover/code" {
					t.Fatalf("after the address: %s", page)
				}
			},
		}
		for _, kind := range []string{"login", "account", "recovery"} {
			for _, lang := range []string{"en", "de"} {
				u := srv.NewUser(t)
				send[kind](t, u, lang)
				m := mailTo(t, smtpSrv, u.Email)
				code := sixDigits.FindString(m.Text)
				w := wants[kind][lang]
				htmlBody := html.UnescapeString(m.HTML)
				switch {
				case m.Subject != w.subject:
					t.Errorf("%s %s: subject %q, want %q", kind, lang, m.Subject, w.subject)
				case code == "" || strings.Contains(m.Subject, code):
					t.Errorf("%s %s: no code in the text, or the code in the subject %q:\n%s", kind, lang, m.Subject, m.Text)
				case !strings.Contains(m.Text, w.intro) || !strings.Contains(htmlBody, w.intro):
					t.Errorf("%s %s: a body lacks %q:\ntext: %s\nhtml: %s", kind, lang, w.intro, m.Text, htmlBody)
				case !strings.Contains(m.HTML, code):
					t.Errorf("%s %s: the HTML lacks the code %s:\n%s", kind, lang, code, m.HTML)
				case !strings.Contains(m.HTML, `<html lang="`+lang+`">`):
					t.Errorf("%s %s: the HTML is not marked %s:\n%.300s", kind, lang, lang, m.HTML)
				case strings.Contains(m.Subject+m.Text+m.HTML, "127.0.0.1"):
					t.Errorf("%s %s: the mail names the host:\n%s", kind, lang, m.Text)
				}
			}
		}
	})
}

// mailTo waits for the SMTP peer's first mail to addr (each case mails a
// new user once) and returns it.
func mailTo(t *testing.T, smtpSrv *mailtest.Server, addr string) mailtest.Message {
	t.Helper()
	for n := 1; ; n++ {
		msgs := smtpSrv.WaitMessages(n, 20*time.Second)
		if len(msgs) < n {
			t.Fatalf("no mail to %s (%d mails)", addr, len(msgs))
		}
		for _, m := range msgs {
			if len(m.To) == 1 && m.To[0] == addr {
				return m
			}
		}
	}
}
