package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/i18n"
)

// samplePages is one data value per page, every optional part filled, so a
// render shows every message of the page. A new page adds its sample here
// (TestPages_EveryPageInEveryLanguage fails otherwise).
func samplePages() map[string]any {
	return map[string]any{
		"login": LoginPage{Email: "j@example.com", Error: "x", ReturnTo: "/oauth2/auth?client_id=a", CSRFField: testCSRFField,
			Partners: []PartnerLink{{Name: "Acme", URL: "/federated-identities/acme/login"}}, ClientName: "Shop",
			SignedInAs: "k@example.com", OtherURL: "/login?account=other"},
		"login_otp": OTPPage{Destination: "j***@example.com", Error: "x", ReturnTo: "/oauth2/auth", CSRFField: testCSRFField, ClientName: "Shop",
			Authenticator: true, AuthenticatorError: "y"},
		"consent": ConsentPage{ClientName: "Shop", Scopes: []string{"openid", "email", "profile", "offline_access", "address", "phone",
			"user:sessions:update", "user:otp:create", "user:federated-identity:read", "custom:thing"},
			AuthorizeQuery: "client_id=a", CSRFField: testCSRFField, Email: "j@example.com", NotYouURL: "/login"},
		"logged_in":             LoggedInPage{Email: "j@example.com", AuthenticatorURL: "/settings/totp"},
		"logged_out":            LogoutPage{ReturnTo: "/"},
		"logout_confirm":        LogoutPage{CSRFField: testCSRFField, ReturnTo: "/"},
		"error":                 ErrorPage{Message: "x", RequestID: "rid-1", ClientURI: "https://shop.example", ClientName: "Shop"},
		"federated_link":        FederatedLinkPage{Provider: "Acme", Action: "/x", ReturnTo: "/", CSRFField: testCSRFField},
		"federated_linked":      FederatedLinkedPage{Provider: "Acme"},
		"federated_not_linked":  FederatedNotLinkedPage{Provider: "Acme", LoginURL: "/login"},
		"settings_totp":         sampleSettingsTOTP(true),
		"recover":               sampleRecovery("/login/recover"),
		"recover_code":          sampleRecovery("/login/recover/code"),
		"recover_authenticator": sampleRecovery("/login/recover/authenticator"),
		"recover_password":      sampleRecovery("/login/recover/password"),
		"recovered":             sampleRecovery("/login/recover/done"),
		"recovered_signin":      sampleRecovery("/login"),
	}
}

// sampleSettingsTOTP is the authenticator page with two authenticators (one
// used), a message and an error, and, when enrolling, an enrollment.
func sampleSettingsTOTP(enrolling bool) SettingsTOTPPage {
	at := time.Date(2026, 12, 7, 21, 40, 0, 0, time.UTC)
	page := SettingsTOTPPage{Email: "j@example.com", Message: "x", Error: "y", CSRFField: testCSRFField,
		Authenticators: []AuthenticatorEntry{{ID: "a1", ConfirmedAt: at, LastUsedAt: at.Add(time.Hour)}, {ID: "a2", ConfirmedAt: at}}}
	if enrolling {
		page.Enrollment = &EnrollmentView{ID: "e1", QRCode: "data:image/png;base64,iVBORw0KGgo=", URI: "otpauth://totp/otpstep:j%40example.com?secret=ABCD",
			Secret: "ABCD EFGH", Issuer: "otpstep", Account: "j@example.com"}
	}
	return page
}

// sampleRecovery is a recovery page's data with every part filled.
func sampleRecovery(action string) RecoveryPage {
	return RecoveryPage{Email: "j@example.com", Message: "m", Error: "x", ReturnTo: "/oauth2/auth?client_id=a", ClientName: "Shop",
		CSRFField: testCSRFField, Action: action, LoginURL: "/login", RestartURL: "/login/recover", MinPasswordLength: 10}
}

func TestPages_LocalesAreTheConfigs(t *testing.T) {
	if got := i18n.Builtin(); !slices.Equal(got, config.Locales) {
		t.Fatalf("catalogs %v, config.Locales %v", got, config.Locales)
	}
}

// TestPages_EveryPageInEveryLanguage renders every page in every language
// of the catalogs: no key is untranslated, <html lang> names the language,
// and the German pages are German.
func TestPages_EveryPageInEveryLanguage(t *testing.T) {
	p, _ := newTestPages(t)
	samples := samplePages()
	for _, name := range pageNames() {
		data, ok := samples[name]
		if !ok {
			t.Errorf("page %s has no sample in samplePages", name)
			continue
		}
		for _, lang := range i18n.Builtin() {
			r := httptest.NewRequest(http.MethodGet, "/page", nil)
			r.Header.Set("Accept-Language", lang)
			w := httptest.NewRecorder()
			p.Render(w, r, http.StatusOK, name, data)
			body := w.Body.String()
			if w.Code != http.StatusOK {
				t.Errorf("%s/%s: status %d\n%s", name, lang, w.Code, body)
				continue
			}
			if strings.Contains(body, i18n.MissingPrefix) {
				t.Errorf("%s/%s: untranslated key:\n%s", name, lang, body)
			}
			if !strings.Contains(body, `<html lang="`+lang+`">`) {
				t.Errorf("%s/%s: <html lang> is not %s", name, lang, lang)
			}
		}
	}
	de := httptest.NewRequest(http.MethodGet, "/page", nil)
	de.Header.Set("Accept-Language", "de-DE,de;q=0.9")
	for name, want := range map[string]string{"login": "Passwort", "login_otp": "Neuen Code senden", "consent": "Erlauben",
		"error": "Fehlernummer", "logout_confirm": "Abmelden?",
		"recover": "Passwort zurücksetzen", "recover_code": "Wiederherstellungscode", "recover_authenticator": "Authenticator-App",
		"recover_password": "Neues Passwort wiederholen", "recovered": "Ihr neues Passwort ist festgelegt", "recovered_signin": "erneut anmelden"} {
		w := httptest.NewRecorder()
		p.Render(w, de, http.StatusOK, name, samples[name])
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("German %s lacks %q:\n%s", name, want, w.Body.String())
		}
	}
}

// TestPages_UILocalesOfTheCarriedAuthorizeRequest: the language of the app's
// ui_locales, carried in return_to, wins over Accept-Language.
func TestPages_UILocalesOfTheCarriedAuthorizeRequest(t *testing.T) {
	p, _ := newTestPages(t)
	r := httptest.NewRequest(http.MethodGet, "/login?return_to=%2Foauth2%2Fauth%3Fclient_id%3Da%26ui_locales%3Dde", nil)
	r.Header.Set("Accept-Language", "en")
	if got := p.Locale(r).Tag(); got != "de" {
		t.Fatalf("locale %s, want de (ui_locales)", got)
	}
	r = httptest.NewRequest(http.MethodPost, "/oauth2/consent", strings.NewReader("authorize_query=client_id%3Da%26ui_locales%3Dde"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if got := p.Locale(r).Tag(); got != "de" {
		t.Fatalf("consent POST locale %s, want de", got)
	}
}

// TestPages_TemplatesDirReplacesAPage: ui.templates_dir's login.html
// replaces the built-in one, in every language; the other pages stay.
func TestPages_TemplatesDirReplacesAPage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(`{{define "title"}}{{t "login.title"}}{{end}}
{{define "content"}}<h1 class="acme-login">{{t "login.heading"}} – Acme</h1>{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := i18n.New("de", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPagesWith(PagesOptions{Catalogs: c, TemplatesDir: dir, Brand: Brand{ProductName: "Acme ID"}})
	if err != nil {
		t.Fatal(err)
	}
	w := renderPage(t, p, http.MethodGet, http.StatusOK, "login", LoginPage{})
	if body := w.Body.String(); !strings.Contains(body, `<h1 class="acme-login">Anmelden – Acme</h1>`) ||
		!strings.Contains(body, "<title>Anmelden · Acme ID</title>") {
		t.Fatalf("the replacement login page is not rendered:\n%s", body)
	}
	w = renderPage(t, p, http.MethodGet, http.StatusOK, "logged_out", nil)
	if !strings.Contains(w.Body.String(), "Sie sind abgemeldet") {
		t.Fatalf("the built-in logged_out page is gone:\n%s", w.Body.String())
	}
	if _, err := NewPagesWith(PagesOptions{TemplatesDir: filepath.Join(dir, "nope")}); err == nil ||
		!strings.Contains(err.Error(), "ui.templates_dir") {
		t.Fatalf("a missing templates dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "consent.html"), []byte(`{{define "content"}}{{.Nope`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPagesWith(PagesOptions{TemplatesDir: dir}); err == nil || !strings.Contains(err.Error(), "consent") {
		t.Fatalf("a broken replacement: %v", err)
	}
}

// TestPages_BrandOnEveryPage: the product name, logo, support link and
// primary colour (a generated, versioned brand.css) are on the pages.
func TestPages_BrandOnEveryPage(t *testing.T) {
	p, err := NewPagesWith(PagesOptions{Brand: Brand{ProductName: "Acme ID", LogoURL: "/logo.svg", PrimaryColor: "#5b21b6",
		SupportURL: "https://help.acme.example"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames() {
		body := renderPage(t, p, http.MethodGet, http.StatusOK, name, samplePages()[name]).Body.String()
		for _, want := range []string{"· Acme ID</title>", `<img src="/logo.svg" alt="Acme ID">`,
			`<a href="https://help.acme.example">Help</a>`, `href="/static/brand.css?v=`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %s", name, want)
			}
		}
	}
	w := httptest.NewRecorder()
	p.StaticHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/brand.css?v=1", nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "--accent: #5b21b6;") ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("brand.css: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	plain, _ := newTestPages(t)
	if body := renderPage(t, plain, http.MethodGet, http.StatusOK, "login", LoginPage{}).Body.String(); strings.Contains(body, "brand.css") ||
		!strings.Contains(body, "· otpstep</title>") {
		t.Fatalf("default brand:\n%s", body)
	}
}

func TestPages_ScopeDescriptions(t *testing.T) {
	p, err := NewPagesWith(PagesOptions{ScopeDescriptions: map[string]string{"shop:orders": "See your orders"}})
	if err != nil {
		t.Fatal(err)
	}
	en := p.catalogs.Lookup("en")
	de := p.catalogs.Lookup("de")
	for _, tc := range []struct {
		loc         *i18n.Locale
		scope, want string
	}{
		{en, "shop:orders", "See your orders"},
		{en, "offline_access", "Stay connected while you are away"},
		{de, "offline_access", "Verbunden bleiben, während Sie nicht da sind"},
		{en, "user:otp:verify", "Create and check one-time codes"},
		{de, "user:federated-identity:set", "Ihre verknüpften Konten verwalten"},
		{en, "other:thing", "Other access the app asks for:"},
	} {
		if got := p.ScopeDescription(tc.loc, tc.scope); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.loc.Tag(), tc.scope, got, tc.want)
		}
	}
}

// TestPages_TemplatesDirReplacesEveryPage: each page template (every one
// Render knows) and the layout can be replaced from ui.templates_dir: with
// a replacement of each in the folder, every page renders its own in the
// replacement layout, in each language.
func TestPages_TemplatesDirReplacesEveryPage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name+".html"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("layout", `{{define "layout"}}<!DOCTYPE html><html lang="{{lang}}"><title>{{template "title" .}}</title><body class="acme-layout">{{template "content" .}}</body></html>{{end}}`)
	for _, name := range pageNames() {
		write(name, `{{define "title"}}acme {{t "login.title"}}{{end}}{{define "content"}}<p class="acme">acme `+name+`</p>{{end}}`)
	}
	c, err := i18n.New("de", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPagesWith(PagesOptions{Catalogs: c, TemplatesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames() {
		body := renderPage(t, p, http.MethodGet, http.StatusOK, name, nil).Body.String()
		if !strings.Contains(body, `<body class="acme-layout"><p class="acme">acme `+name+`</p></body>`) ||
			!strings.Contains(body, `<html lang="de"><title>acme Anmelden</title>`) {
			t.Errorf("%s: not the replacement:\n%s", name, body)
		}
	}
}
