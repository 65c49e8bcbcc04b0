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
	// Issuer names the service (DefaultIssuer when empty).
	Issuer string
	// ForAccount is Kind == "account", and ExpiresAtText is ExpiresAt in UTC
	// as "15:04 MST, 2 Jan 2006": filled by Templates.OTP, for templates
	// that would otherwise compare and format on every mail (the built-in
	// ones use them; every code is rendered on the request that issues it).
	ForAccount    bool
	ExpiresAtText string
}

// Templates renders otpstep's emails. It is safe for concurrent use.
type Templates struct {
	otpText *texttemplate.Template
	otpHTML *htmltemplate.Template
}

// LoadTemplates returns the built-in templates, each replaced by the file of
// the same name in dir when dir is not empty and holds one (OTPTextTemplate,
// OTPHTMLTemplate). A file missing from dir keeps the built-in; a dir that does
// not exist, or a file that cannot be read, parsed or rendered with sample data,
// is an error naming it, so a broken template fails at start-up, not at send.
func LoadTemplates(dir string) (*Templates, error) {
	textSrc, err := builtinTemplates.ReadFile("templates/" + OTPTextTemplate)
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template: %w", err)
	}
	htmlSrc, err := builtinTemplates.ReadFile("templates/" + OTPHTMLTemplate)
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template: %w", err)
	}
	text, err := texttemplate.New(OTPTextTemplate).Option("missingkey=error").Parse(string(textSrc))
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template %s: %w", OTPTextTemplate, err)
	}
	html, err := htmltemplate.New(OTPHTMLTemplate).Option("missingkey=error").Parse(string(htmlSrc))
	if err != nil {
		return nil, fmt.Errorf("mail: built-in template %s: %w", OTPHTMLTemplate, err)
	}
	if dir != "" {
		if text, html, err = overrideTemplates(dir, text, html); err != nil {
			return nil, err
		}
	}
	t := &Templates{otpText: text, otpHTML: html}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("mail: templates (dir %q): %w", dir, err)
	}
	return t, nil
}

// overrideTemplates parses the files of dir over the built-ins. Parsing into
// a clone redefines the body and any template the file defines, and keeps the
// built-in definitions (such as "subject") the file does not.
func overrideTemplates(dir string, text *texttemplate.Template, html *htmltemplate.Template) (*texttemplate.Template, *htmltemplate.Template, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("mail: templates dir: %w", err)
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("mail: templates dir %q is not a directory", dir)
	}
	if src, ok, err := readOverride(dir, OTPTextTemplate); err != nil {
		return nil, nil, err
	} else if ok {
		if text, err = text.Clone(); err != nil {
			return nil, nil, fmt.Errorf("mail: template %s: %w", OTPTextTemplate, err)
		}
		if _, err = text.Parse(src); err != nil {
			return nil, nil, fmt.Errorf("mail: template %s: %w", filepath.Join(dir, OTPTextTemplate), err)
		}
	}
	if src, ok, err := readOverride(dir, OTPHTMLTemplate); err != nil {
		return nil, nil, err
	} else if ok {
		if html, err = html.Clone(); err != nil {
			return nil, nil, fmt.Errorf("mail: template %s: %w", OTPHTMLTemplate, err)
		}
		if _, err = html.Parse(src); err != nil {
			return nil, nil, fmt.Errorf("mail: template %s: %w", filepath.Join(dir, OTPHTMLTemplate), err)
		}
	}
	return text, html, nil
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

// check renders every kind with sample data, so a template that fails at
// execution, or leaks the code into the subject, is refused at load.
func (t *Templates) check() error {
	sample := OTPData{Code: "918273", ExpiresAt: time.Unix(0, 0).UTC(), TTLMinutes: 10, Issuer: DefaultIssuer}
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
	return nil
}

// OTP renders the one-time-password email for data: a subject without the
// code (lock screens show subjects), a text body and an HTML body.
func (t *Templates) OTP(data OTPData) (subject, text, html string, err error) {
	if data.Code == "" {
		return "", "", "", errors.New("mail: OTP email without a code")
	}
	if data.Issuer == "" {
		data.Issuer = DefaultIssuer
	}
	data.ForAccount = data.Kind == "account"
	data.ExpiresAtText = data.ExpiresAt.UTC().Format("15:04 MST, 2 Jan 2006")
	var buf bytes.Buffer
	if err := t.otpText.ExecuteTemplate(&buf, "subject", data); err != nil {
		return "", "", "", fmt.Errorf("mail: render subject: %w", err)
	}
	// A header is one line: fold any whitespace the template left in.
	subject = strings.Join(strings.Fields(buf.String()), " ")
	if subject == "" {
		return "", "", "", errors.New("mail: the subject template rendered nothing")
	}
	buf.Reset()
	if err := t.otpText.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s: %w", OTPTextTemplate, err)
	}
	text = buf.String()
	buf.Reset()
	if err := t.otpHTML.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s: %w", OTPHTMLTemplate, err)
	}
	return subject, text, buf.String(), nil
}
