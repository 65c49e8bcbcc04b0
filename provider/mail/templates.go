package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/otpstep/otpstep/provider/i18n"
)

// Template file names, both in the embedded defaults and in an override
// directory.
const (
	// OTPTextTemplate is the plain-text body of the one-time-password email. It
	// also defines the "subject" template; an override that does not redefine
	// "subject" keeps the built-in subject.
	OTPTextTemplate = "otp.txt"
	// OTPHTMLTemplate is the HTML body of the one-time-password email.
	OTPHTMLTemplate = "otp.html"
)

// DefaultIssuer names the service in the email when OTPData.Issuer is empty.
const DefaultIssuer = "otpstep"

//go:embed templates/otp.txt templates/otp.html
var builtinTemplates embed.FS

// OTPData is what the one-time-password templates render.
type OTPData struct {
	// Code is the one-time password. It goes in the body only, never in the
	// subject, which phones show on the lock screen.
	Code string
	// ExpiresAt is when the code stops working.
	ExpiresAt time.Time
	// TTLMinutes is the code's lifetime, for "expires in N minutes".
	TTLMinutes int
	// Kind is what the code is for: "login" (the second factor of a sign-in)
	// or "account" (confirming an account change).
	Kind string
	// Issuer names the service: ui.product_name (DefaultIssuer when empty).
	Issuer string
	// ClientName names the app the sign-in is for ("Your Acme sign-in code
	// for Shop"); empty when there is none.
	ClientName string
	// SupportURL is ui.support_url, linked as "Help" when set.
	SupportURL string
	// Locale is the language tag of the mail ("de"); empty or unknown is
	// the catalogs' default.
	Locale string
	// ForAccount is Kind == "account", and ExpiresAtText is ExpiresAt in
	// the mail's language and ui.time_zone ("15:04 UTC, 2 Jan 2006"):
	// filled by Templates.OTP, for templates that would otherwise compare
	// and format on every mail (the built-in ones use them; every code is
	// rendered on the request that issues it).
	ForAccount    bool
	ExpiresAtText string
	// ForRecovery is Kind == "recovery": the code of an account recovery
	// ("Forgot password?").
	ForRecovery bool
}

// Templates renders otpstep's emails, in each language of its catalogs. It
// is safe for concurrent use.
type Templates struct {
	catalogs *i18n.Catalogs
	sets     map[string]templateSet // by locale tag
}

// templateSet is the mail templates of one language: their "t" is its
// catalog's (i18n.Locale.T).
type templateSet struct {
	otpText *texttemplate.Template
	otpHTML *htmltemplate.Template
}

// LoadTemplates is LoadTemplatesWith(dir, nil): English only.
func LoadTemplates(dir string) (*Templates, error) { return LoadTemplatesWith(dir, nil) }

// LoadTemplatesWith returns the built-in templates in every language of
// catalogs (nil: English, UTC), each replaced by the file of the same name in
// dir when dir is not empty and holds one (OTPTextTemplate, OTPHTMLTemplate).
// A file missing from dir keeps the built-in; a dir that does not exist, or a
// file that cannot be read, parsed or rendered with sample data, is an error
// naming it, so a broken template fails at start-up, not at send.
//
// A template may call {{t "key" "name" value …}}, the mail's language's
// message of provider/i18n's catalogs.
func LoadTemplatesWith(dir string, catalogs *i18n.Catalogs) (*Templates, error) {
	if catalogs == nil {
		c, err := i18n.New("en", time.UTC)
		if err != nil {
			return nil, err
		}
		catalogs = c
	}
	textSrc, err := builtinTemplates.ReadFile("templates/" + OTPTextTemplate)
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template: %w", err)
	}
	htmlSrc, err := builtinTemplates.ReadFile("templates/" + OTPHTMLTemplate)
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template: %w", err)
	}
	var overText, overHTML string
	var hasText, hasHTML bool
	if dir != "" {
		info, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("mail: templates dir: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("mail: templates dir %q is not a directory", dir)
		}
		if overText, hasText, err = readOverride(dir, OTPTextTemplate); err != nil {
			return nil, err
		}
		if overHTML, hasHTML, err = readOverride(dir, OTPHTMLTemplate); err != nil {
			return nil, err
		}
	}
	t := &Templates{catalogs: catalogs, sets: map[string]templateSet{}}
	for _, loc := range catalogs.Locales() {
		funcs := map[string]any{"t": loc.T}
		text, err := texttemplate.New(OTPTextTemplate).Option("missingkey=error").Funcs(funcs).Parse(string(textSrc))
		if err != nil {
			return nil, fmt.Errorf("mail: built-in template %s: %w", OTPTextTemplate, err)
		}
		html, err := htmltemplate.New(OTPHTMLTemplate).Option("missingkey=error").Funcs(funcs).Parse(string(htmlSrc))
		if err != nil {
			return nil, fmt.Errorf("mail: built-in template %s: %w", OTPHTMLTemplate, err)
		}
		// Parsing over the built-in redefines the body and any template the
		// file defines, and keeps the built-in definitions (such as
		// "subject") the file does not.
		if hasText {
			if _, err = text.Parse(overText); err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", filepath.Join(dir, OTPTextTemplate), err)
			}
		}
		if hasHTML {
			if _, err = html.Parse(overHTML); err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", filepath.Join(dir, OTPHTMLTemplate), err)
			}
		}
		t.sets[loc.Tag()] = templateSet{otpText: text, otpHTML: html}
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("mail: templates (dir %q): %w", dir, err)
	}
	return t, nil
}

// readOverride reads dir/name; ok is false when the file does not exist.
func readOverride(dir, name string) (src string, ok bool, err error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("mail: template %s: %w", path, err)
	}
	return string(b), true, nil
}

// check renders every kind in every language with sample data, so a
// template that fails at execution, or leaks the code into the subject, is
// refused at load.
func (t *Templates) check() error {
	sample := OTPData{Code: "918273", ExpiresAt: time.Unix(0, 0).UTC(), TTLMinutes: 10, Issuer: DefaultIssuer, ClientName: "Shop"}
	for _, loc := range t.catalogs.Locales() {
		sample.Locale = loc.Tag()
		for _, kind := range []string{"login", "account"} {
			sample.Kind = kind
			subject, _, _, err := t.OTP(sample)
			if err != nil {
				return err
			}
			if strings.Contains(subject, sample.Code) {
				return errors.New("the subject must not contain the code: lock screens show subjects")
			}
		}
	}
	return nil
}

// OTP renders the one-time-password email for data, in data.Locale: a
// subject without the code (lock screens show subjects), a text body and an
// HTML body.
func (t *Templates) OTP(data OTPData) (subject, text, html string, err error) {
	if data.Code == "" {
		return "", "", "", errors.New("mail: OTP email without a code")
	}
	if data.Issuer == "" {
		data.Issuer = DefaultIssuer
	}
	loc := t.catalogs.Lookup(data.Locale)
	set := t.sets[loc.Tag()]
	data.Locale = loc.Tag()
	data.ForAccount = data.Kind == "account"
	data.ForRecovery = data.Kind == "recovery"
	data.ExpiresAtText = loc.DateTime(data.ExpiresAt)
	var buf bytes.Buffer
	if err := set.otpText.ExecuteTemplate(&buf, "subject", data); err != nil {
		return "", "", "", fmt.Errorf("mail: render subject: %w", err)
	}
	// A header is one line: fold any whitespace the template left in.
	subject = strings.Join(strings.Fields(buf.String()), " ")
	if subject == "" {
		return "", "", "", errors.New("mail: the subject template rendered nothing")
	}
	buf.Reset()
	if err := set.otpText.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s: %w", OTPTextTemplate, err)
	}
	text = buf.String()
	buf.Reset()
	if err := set.otpHTML.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s: %w", OTPHTMLTemplate, err)
	}
	return subject, text, buf.String(), nil
}
