package mail_test

import (
	stdhtml "html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/i18n"
	"github.com/otpstep/otpstep/provider/mail"
)

func otpData(kind string) mail.OTPData {
	return mail.OTPData{Code: "654321", ExpiresAt: testNow.Add(10 * time.Minute), TTLMinutes: 10, Kind: kind, Issuer: "Example ID"}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTemplates_BuiltInOTP(t *testing.T) {
	tpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	tests := []struct {
		kind        string
		wantSubject string
		wantText    string
	}{
		{kind: "login", wantSubject: "Your Example ID sign-in code", wantText: "finish signing in"},
		{kind: "account", wantSubject: "Your Example ID verification code", wantText: "confirm the change to your account"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			subject, text, html, err := tpl.OTP(otpData(tt.kind))
			if err != nil {
				t.Fatalf("OTP: %v", err)
			}
			if subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", subject, tt.wantSubject)
			}
			for name, body := range map[string]string{"text": text, "html": html} {
				if !strings.Contains(body, "654321") {
					t.Errorf("%s body lacks the code:\n%s", name, body)
				}
				if !strings.Contains(body, "10 minutes") || !strings.Contains(body, "05:16 UTC") {
					t.Errorf("%s body lacks the lifetime and expiry:\n%s", name, body)
				}
			}
			if !strings.Contains(text, tt.wantText) {
				t.Errorf("text lacks %q:\n%s", tt.wantText, text)
			}
		})
	}
}

func TestTemplates_DefaultIssuerAndHTMLEscaping(t *testing.T) {
	tpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	subject, _, _, err := tpl.OTP(mail.OTPData{Code: "1", Kind: "login"})
	if err != nil || subject != "Your otpstep sign-in code" {
		t.Errorf("subject = %q, %v; want the default issuer", subject, err)
	}
	d := otpData("login")
	d.Issuer = `<script>x</script>`
	_, _, html, err := tpl.OTP(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
		t.Errorf("issuer not HTML-escaped:\n%s", html)
	}
}

func TestTemplates_OTPWithoutCodeIsAnError(t *testing.T) {
	tpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := tpl.OTP(mail.OTPData{Kind: "login"}); err == nil {
		t.Error("OTP rendered an email without a code")
	}
}

func TestTemplates_OverrideTextKeepsBuiltInSubjectAndHTML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, mail.OTPTextTemplate, "Code: {{.Code}} ({{.Kind}})\n")

	tpl, err := mail.LoadTemplates(dir)
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	subject, text, html, err := tpl.OTP(otpData("login"))
	if err != nil {
		t.Fatal(err)
	}
	if text != "Code: 654321 (login)\n" {
		t.Errorf("text = %q, want the override", text)
	}
	if subject != "Your Example ID sign-in code" {
		t.Errorf("subject = %q, want the built-in", subject)
	}
	if !strings.Contains(html, "<!DOCTYPE html>") || !strings.Contains(html, "654321") {
		t.Errorf("html is not the built-in:\n%s", html)
	}
}

func TestTemplates_OverrideSubjectAndHTML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, mail.OTPTextTemplate, `{{define "subject"}}{{.Issuer}}: your code{{end}}Code {{.Code}}`)
	writeFile(t, dir, mail.OTPHTMLTemplate, `<p>Code <b>{{.Code}}</b> from {{.Issuer}}</p>`)

	tpl, err := mail.LoadTemplates(dir)
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	d := otpData("login")
	d.Issuer = "A&B"
	subject, text, html, err := tpl.OTP(d)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "A&B: your code" || text != "Code 654321" || html != "<p>Code <b>654321</b> from A&amp;B</p>" {
		t.Errorf("got subject %q text %q html %q", subject, text, html)
	}
}

func TestTemplates_BadOverridesAreRefusedNamingTheFile(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{name: "text does not parse", files: map[string]string{mail.OTPTextTemplate: "{{.Code"}, wantErr: mail.OTPTextTemplate},
		{name: "html does not parse", files: map[string]string{mail.OTPHTMLTemplate: "<p>{{if}}</p>"}, wantErr: mail.OTPHTMLTemplate},
		{name: "unknown field", files: map[string]string{mail.OTPHTMLTemplate: "<p>{{.Nope}}</p>"}, wantErr: mail.OTPHTMLTemplate},
		{name: "code in the subject", files: map[string]string{mail.OTPTextTemplate: `{{define "subject"}}Code {{.Code}}{{end}}x`}, wantErr: "must not contain the code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, dir, name, content)
			}
			_, err := mail.LoadTemplates(dir)
			if err == nil {
				t.Fatal("LoadTemplates accepted the override")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestTemplates_MissingDirIsAnError(t *testing.T) {
	if _, err := mail.LoadTemplates(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("LoadTemplates accepted a directory that does not exist")
	}
}

// TestTemplates_BothLanguagesNameProductAndClient: the German and English
// mails name the product and the client and carry the code, and times are
// in ui.time_zone with the offset written out.
func TestTemplates_BothLanguagesNameProductAndClient(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	c, err := i18n.New("en", berlin)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := mail.LoadTemplatesWith("", c)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 20, 40, 0, 0, time.UTC)
	for _, tc := range []struct{ kind, locale, subject, text, expiry string }{
		{"login", "en", "Your Acme sign-in code for Shop", "Your Acme sign-in code for Shop is:", "21:40 UTC+01:00, 7 Dec 2026"},
		{"login", "de", "Ihr Acme-Anmeldecode für Shop", "Ihr Acme-Anmeldecode für Shop lautet:", "21:40 Uhr UTC+01:00, 7.12.2026"},
		{"account", "en", "Your Acme verification code for Shop", "Your Acme verification code for Shop is:", "21:40 UTC+01:00, 7 Dec 2026"},
		{"account", "de", "Ihr Acme-Bestätigungscode für Shop", "Ihr Acme-Bestätigungscode für Shop lautet:", "21:40 Uhr UTC+01:00, 7.12.2026"},
		{"recovery", "en", "Your Acme account recovery code for Shop", "Your Acme account recovery code for Shop is:", "21:40 UTC+01:00, 7 Dec 2026"},
		{"recovery", "de", "Ihr Acme-Code zur Kontowiederherstellung für Shop", "Ihr Acme-Code zur Kontowiederherstellung für Shop lautet:", "21:40 Uhr UTC+01:00, 7.12.2026"},
	} {
		subject, text, html, err := tpl.OTP(mail.OTPData{Code: "654321", ExpiresAt: at, TTLMinutes: 5, Kind: tc.kind,
			Issuer: "Acme", ClientName: "Shop", Locale: tc.locale})
		if err != nil {
			t.Fatal(err)
		}
		if subject != tc.subject {
			t.Errorf("%s subject %q, want %q", tc.locale, subject, tc.subject)
		}
		for name, body := range map[string]string{"text": text, "html": stdhtml.UnescapeString(html)} {
			for _, want := range []string{tc.text, "654321", tc.expiry} {
				if !strings.Contains(body, want) {
					t.Errorf("%s %s body lacks %q:\n%s", tc.locale, name, want, body)
				}
			}
			if strings.Contains(body, i18n.MissingPrefix) {
				t.Errorf("%s %s body has an untranslated key:\n%s", tc.locale, name, body)
			}
		}
		if !strings.Contains(html, `<html lang="`+tc.locale+`">`) {
			t.Errorf("%s html lacks its lang", tc.locale)
		}
	}
}
