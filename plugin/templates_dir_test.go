package plugin_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail"
)

// replacedTemplates is a ui.templates_dir with a replacement of every
// built-in page template (each the built-in with a marker, "acme <page>",
// so its forms still work), of the layout (<body class="acme-layout">) and
// of both mail templates.
func replacedTemplates(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	builtIn := filepath.Join(repoRoot(t), "web", "templates")
	entries, err := os.ReadDir(builtIn)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".html")
		b, err := os.ReadFile(filepath.Join(builtIn, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		if name == "layout" {
			src = strings.Replace(src, "<body>", `<body class="acme-layout">`, 1)
		} else {
			src = strings.Replace(src, `{{define "content" -}}`, `{{define "content" -}}`+"\n"+`<p class="acme">acme `+name+`</p>`, 1)
		}
		if !strings.Contains(src, "acme") {
			t.Fatalf("web/templates/%s: no place for the marker", e.Name())
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		mail.OTPTextTemplate: `{{define "subject"}}Acme mail for {{.ClientName}}{{end}}Acme text: {{.Code}}`,
		mail.OTPHTMLTemplate: `<p class="acme-mail">Acme html: {{.Code}}</p>`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// isReplaced reports whether page is page name of replacedTemplates in
// its replaced layout.
func isReplaced(page *plugintest.Page, name string) bool {
	return strings.Contains(page.Body, `<body class="acme-layout">`) && strings.Contains(page.Body, `<p class="acme">acme `+name+`</p>`)
}

// checkReplacedMail checks that a mail is the replaced one, naming the app
// (none for a host's client, which is not otpstep's), and returns its code.
func checkReplacedMail(t *testing.T, subject, text, html, client string) string {
	t.Helper()
	code := sixDigits.FindString(text)
	if subject != strings.TrimSpace("Acme mail for "+client) || code == "" || text != "Acme text: "+code || html != `<p class="acme-mail">Acme html: `+code+`</p>` {
		t.Fatalf("not the replaced mail: subject %q text %q html %q", subject, text, html)
	}
	return code
}

// TestTemplatesDir_EveryPageAndTheMailStandalone: with ui.templates_dir
// replacing every page, the layout and the mail, a standalone server shows
// the replacements on the way through each page a browser reaches without
// a partner (login, a failed login, the code page, consent, signed in,
// "continue as", sign-out, signed out, an error page, /settings/totp) and
// mails the replaced code mail through the SMTP peer. Every page Render
// knows, the partner pages and pages added later among them, is replaced in
// web's TestPages_TemplatesDirReplacesEveryPage.
func TestTemplatesDir_EveryPageAndTheMailStandalone(t *testing.T) {
	dir := replacedTemplates(t)
	srv, smtpSrv := startWithSMTP(t, "sqlite", func(c *plugin.Config) { c.UI.TemplatesDir = dir })
	on := true
	shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop", RequireSecondFactor: &on, ClientURI: "https://shop.example.test/"})
	photos := a11yConsentClient(t, srv)
	alice := srv.NewUser(t)
	seen := map[string]bool{}
	want := func(page *plugintest.Page, name string) {
		t.Helper()
		if !isReplaced(page, name) {
			t.Fatalf("%s is not the replacement: %s", name, page)
		}
		seen[name] = true
	}
	auth := func(c *plugintest.Client, extra ...oauth2.AuthCodeOption) string {
		return c.Conf.AuthCodeURL("state-123456789", append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}, extra...)...)
	}
	login := func(b *plugintest.Browser, page *plugintest.Page, password string) *plugintest.Page {
		return b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	}

	b := plugintest.NewBrowser(t)
	page := b.Follow(auth(shop), plugintest.RedirectURI)
	want(page, "login")
	want(login(b, page, "not-the-password"), "login")
	page = login(b, page, alice.Password)
	want(page, "login_otp")
	if page.URL.Path != "/login/otp" {
		t.Fatalf("after the password: %s", page)
	}
	m := mailTo(t, smtpSrv, alice.Email)
	code := checkReplacedMail(t, m.Subject, m.Text, m.HTML, "Shop")
	// The code passes: on to /settings/totp, past the second factor.
	page = b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {"/settings/totp"}}, plugintest.RedirectURI)
	want(page, "settings_totp")
	want(b.Follow(auth(photos), plugintest.RedirectURI), "consent")
	want(b.Follow(srv.URL+"/login", ""), "login") // continue as
	page = b.Follow(srv.URL+"/logout", "")
	want(page, "logout_confirm")
	want(b.Submit(page, "/logout", url.Values{"return_to": {page.HiddenField("return_to")}}, ""), "logged_out")
	want(b.Follow(auth(shop, oauth2.SetAuthURLParam("redirect_uri", "https://evil.example.test/cb")), ""), "error")

	b2 := plugintest.NewBrowser(t)
	page = b2.Follow(srv.URL+"/login", "")
	want(login(b2, page, alice.Password), "logged_in")

	for _, name := range []string{"login", "login_otp", "settings_totp", "consent", "logout_confirm", "logged_out", "error", "logged_in"} {
		if !seen[name] {
			t.Errorf("%s was not reached", name)
		}
	}
}

// TestTemplatesDir_ThePagesAndTheMailEmbedded: ui.templates_dir in an
// embedded plugin's configuration replaces its pages (the OTP page under
// the host's prefix, in the replaced layout, its forms under the prefix)
// its error page and its code mail.
func TestTemplatesDir_ThePagesAndTheMailEmbedded(t *testing.T) {
	dir := replacedTemplates(t)
	hp := &plugintest.HostPlugin{Prefix: "/mfa", Options: func(o *plugin.Options) { o.Config.UI.TemplatesDir = dir }}
	h := plugintest.StartHost(t, hp)
	u := h.NewUser(t)
	conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
	b := plugintest.NewBrowser(t)
	page := h.HostLogin(t, b, hp, conf, u, oauth2.GenerateVerifier())
	if page.Status != http.StatusOK || !isReplaced(page, "login_otp") || !strings.Contains(page.Body, `action="/mfa/login/otp"`) {
		t.Fatalf("the embedded OTP page is not the replacement: %s", page)
	}
	m := hp.Mail.Wait(t, 1, 20*time.Second)
	checkReplacedMail(t, m.Subject, m.Text, m.HTML, "")
	// A form posted without its CSRF token: the error page.
	resp, err := b.Client.PostForm(h.URL+"/mfa/login/otp", url.Values{"otp": {"123456"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !isReplaced(&plugintest.Page{Body: string(body)}, "error") {
		t.Fatalf("the embedded error page is not the replacement: %d %s", resp.StatusCode, body)
	}
}
