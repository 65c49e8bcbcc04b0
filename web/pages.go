package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
)

// templateFS holds the page templates; layout.html wraps every page.
//
//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds the files StaticHandler serves under /static/.
//
//go:embed static
var staticFS embed.FS

// pageNames lists the pages Render knows, each templates/<name>.html.
func pageNames() []string {
	return []string{"login", "login_otp", "consent", "logged_in", "logged_out", "logout_confirm", "error",
		"federated_link", "federated_linked", "federated_not_linked"}
}

// renderFailedMessage is shown when a page cannot be rendered.
const renderFailedMessage = "Something went wrong. Please try again."

// LoginPage is the data of the "login" page: email and password.
type LoginPage struct {
	// Email refills the field after a failed attempt.
	Email string
	// Error is shown above the form; the same words for every failed check.
	Error string
	// ReturnTo is where the login continues; already checked to be local.
	ReturnTo string
	// CSRFField is the hidden CSRF input (csrfField(r)).
	CSRFField template.HTML
	// Partners are "Sign in with <partner>" links.
	Partners []PartnerLink
	// Action is the form's target; empty means "/login".
	Action string
}

// PartnerLink is one "Sign in with <Name>" link of the login page.
type PartnerLink struct {
	Name string
	URL  string
}

// OTPPage is the data of the "login_otp" page: the emailed one-time code.
type OTPPage struct {
	// Destination is the masked address the code went to ("j***@example.com");
	// shown as "We sent a code to …" when Message is empty.
	Destination string
	// Message is a notice shown above the form ("A new code is on its way.").
	Message string
	// Error is shown above the form after a wrong or expired code.
	Error string
	// ReturnTo is where the login continues once the code is accepted.
	ReturnTo string
	// CSRFField is the hidden CSRF input (csrfField(r)); both forms carry it.
	CSRFField template.HTML
	// Action is the code form's target; empty means "/login/otp".
	Action string
	// ResendAction is the "Send a new code" form's target; empty means "/login/otp/resend".
	ResendAction string
}

// ConsentPage is the data of the "consent" page. Its form posts the fields
// "consent" ("allow" or "deny") and "authorize_query".
type ConsentPage struct {
	// ClientName names the relying party asking for access.
	ClientName string
	// Scopes are the requested scopes, each shown with a description.
	Scopes []string
	// AuthorizeQuery is the original /oauth2/auth query, posted back as is.
	AuthorizeQuery string
	// CSRFField is the hidden CSRF input (csrfField(r)).
	CSRFField template.HTML
	// Action is the form's target; empty means "/oauth2/consent".
	Action string
}

// LoggedInPage is the data of the "logged_in" page, shown after a login
// that has nowhere to return to.
type LoggedInPage struct {
	Email string
	// HideLogout leaves out the "Sign out" link (an embedding host has its
	// own logout, not /logout).
	HideLogout bool
}

// LogoutPage is the data of the "logout_confirm" and "logged_out" pages
// ("logged_out" also renders with nil data).
type LogoutPage struct {
	// CSRFField is the hidden CSRF input (csrfField(r)).
	CSRFField template.HTML
	// ReturnTo is posted with the confirmation, and offered as a
	// "Continue" link once signed out.
	ReturnTo string
	// Action is the confirmation form's target; empty means "/logout".
	Action string
}

// ErrorPage is the data of the "error" page: a message for the user and the
// request id to quote, nothing of the cause.
type ErrorPage struct {
	Message   string
	RequestID string
}

// Pages renders otpstep's HTML pages and serves their static files. It is
// safe for concurrent use.
type Pages struct {
	logger    *slog.Logger
	templates map[string]*template.Template
	static    fs.FS
	// staticPrefix is where StaticHandler is mounted: "/static/", under the
	// host's prefix when embedded (SetStaticPrefix).
	staticPrefix string
	// versions maps a static file name to a short hash of its content, used
	// to bust caches (?v=) and as its ETag.
	versions map[string]string
}

// NewPages parses every page template once. A nil logger logs nothing.
func NewPages(logger *slog.Logger) (*Pages, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	versions, err := hashFiles(static)
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	p := &Pages{logger: logger, templates: make(map[string]*template.Template),
		static: static, versions: versions, staticPrefix: PathStatic}
	layout, err := template.New("layout.html").Funcs(template.FuncMap{
		"static":           p.staticURL,
		"scopeDescription": scopeDescription,
	}).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parsing layout: %w", err)
	}
	for _, name := range pageNames() {
		base, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: cloning layout for %s: %w", name, err)
		}
		t, err := base.ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parsing page %s: %w", name, err)
		}
		p.templates[name] = t
	}
	return p, nil
}

// hashFiles returns the first 12 hex digits of the SHA-256 of every file in fsys.
func hashFiles(fsys fs.FS) (map[string]string, error) {
	versions := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		versions[name] = hex.EncodeToString(sum[:])[:12]
		return nil
	})
	return versions, err
}

// staticURL is the URL of a static file, versioned by its content so it can
// be cached for good.
func (p *Pages) staticURL(name string) string {
	u := p.staticPrefix + name
	if v, ok := p.versions[name]; ok {
		u += "?v=" + v
	}
	return u
}

// SetStaticPrefix sets the path StaticHandler is mounted at (it ends in /);
// call it before serving.
func (p *Pages) SetStaticPrefix(prefix string) { p.staticPrefix = prefix }

// Render writes the page name with data and the given status as
// text/html; charset=utf-8. The page is rendered into a buffer first, so a
// template error becomes a clean 500 error page (and a log line) rather than
// half a page.
func (p *Pages) Render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	err := p.execute(&buf, name, data)
	if err != nil {
		rid := RequestIDFrom(r.Context())
		p.logger.LogAttrs(r.Context(), slog.LevelError, "rendering page failed",
			slog.String("page", name), slog.String("request_id", rid),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		status = http.StatusInternalServerError
		buf.Reset()
		if err := p.execute(&buf, "error", ErrorPage{Message: renderFailedMessage, RequestID: rid}); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Del("Content-Length")
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, "%s Error id: %s\n", renderFailedMessage, rid)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// execute renders page name into buf.
func (p *Pages) execute(buf *bytes.Buffer, name string, data any) error {
	t, ok := p.templates[name]
	if !ok {
		return fmt.Errorf("web: unknown page %q", name)
	}
	return t.ExecuteTemplate(buf, "layout", data)
}

// Cache-Control of static files: versioned static URLs for a year (their content never
// changes under a given ?v=) and unversioned ones for an hour.
const (
	staticImmutable = "public, max-age=31536000, immutable"
	staticShort     = "public, max-age=3600"
)

// StaticHandler serves web/static, with paths relative to it: mount it with
// http.StripPrefix("/static/", …). Versioned requests (?v=, as the pages link
// them) are cacheable for a year; directories are never listed.
func (p *Pages) StaticHandler() http.Handler {
	files := http.FileServerFS(p.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		version, ok := p.versions[name]
		if !ok { // directories and unknown files alike
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("ETag", `"`+version+`"`)
		if r.URL.Query().Get("v") != "" {
			h.Set("Cache-Control", staticImmutable)
		} else {
			h.Set("Cache-Control", staticShort)
		}
		files.ServeHTTP(w, r)
	})
}

// scopeDescription says in words what a well-known scope grants.
func scopeDescription(scope string) string {
	switch scope {
	case "openid":
		return "Confirm who you are"
	case "profile":
		return "See your profile"
	case "email":
		return "See your email address"
	case "offline_access":
		return "Stay connected while you are away"
	}
	switch {
	case strings.HasPrefix(scope, "user:sessions:"):
		return "Manage your sign-in sessions"
	case strings.HasPrefix(scope, "user:otp:"):
		return "Create and check one-time codes"
	case strings.HasPrefix(scope, "user:federated-identity:"):
		return "Manage your linked accounts"
	}
	return "Use"
}
