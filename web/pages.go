package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otpstep/otpstep/provider/i18n"
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
		"federated_link", "federated_linked", "federated_not_linked", "settings_totp",
		"recover", "recover_code", "recover_authenticator", "recover_password", "recovered", "recovered_signin"}
}

// renderFailedMessage is shown when a page cannot be rendered (a catalog key).
const renderFailedMessage = "error.generic"

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
	// ClientName names the app the login continues to ("Sign in to
	// continue to Acme"); empty when there is none.
	ClientName string
	// SignedInAs is the email of the browser's current session: the form
	// then asks for its password again ("Continue as …"), and OtherURL
	// offers the empty form ("Use another account").
	SignedInAs string
	OtherURL   string
	// RecoverURL is "Forgot password?" (account recovery, keeping
	// return_to); empty offers none.
	RecoverURL string
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
	// ClientName names the app the login continues to ("to continue to Acme").
	ClientName string
	// Authenticator offers the authenticator form ("Use your authenticator
	// app") beside the emailed code: the user has a confirmed authenticator
	// TOTP (/settings/totp).
	Authenticator bool
	// AuthenticatorAction is that form's target; empty means
	// "/login/otp/authenticator".
	AuthenticatorAction string
	// AuthenticatorError is shown by that form after a wrong code of the app.
	AuthenticatorError string
	// email is the user's address, for the notices otpstep writes.
	email string
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
	// Email is who is signed in; NotYouURL signs in as someone else.
	Email     string
	NotYouURL string
}

// LoggedInPage is the data of the "logged_in" page, shown after a login
// that has nowhere to return to.
type LoggedInPage struct {
	Email string
	// HideLogout leaves out the "Sign out" link (an embedding host has its
	// own logout, not /logout).
	HideLogout bool
	// AuthenticatorURL links the authenticator page (/settings/totp, under
	// the mount prefix when embedded); empty shows no link.
	AuthenticatorURL string
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
	// Carried are the RP-initiated logout request's parameters, posted
	// with the confirmation.
	Carried []HiddenField
}

// HiddenField is one hidden input of a form.
type HiddenField struct {
	Name, Value string
}

// ErrorPage is the data of the "error" page: a message for the user and the
// request id to quote, nothing of the cause.
type ErrorPage struct {
	// Message is in the page's language already (Locale.T).
	Message   string
	RequestID string
	// ClientURI is the home page of the app the user came from (clients
	// create --client-uri), offered as "Back to <ClientName>"; empty when
	// not known.
	ClientURI  string
	ClientName string
}

// Pages renders otpstep's HTML pages, in the language of each request, and
// serves their static files. It is safe for concurrent use.
type Pages struct {
	logger   *slog.Logger
	catalogs *i18n.Catalogs
	brand    Brand
	// templates holds every page parsed once per language (the "t" of a
	// page's template is that language's), by locale tag then page name.
	templates map[string]map[string]*template.Template
	// scopeTexts are ui.scope_descriptions: scope → description.
	scopeTexts map[string]string
	static     fs.FS
	// staticPrefix is where StaticHandler is mounted: "/static/", under the
	// host's prefix when embedded (SetStaticPrefix).
	staticPrefix string
	// versions maps a static file name to a short hash of its content, used
	// to bust caches (?v=) and as its ETag.
	versions map[string]string
	// brandCSS is the generated brand.css (ui.primary_color); nil without one.
	brandCSS []byte
}

// Brand is what the pages and mails show of the product (ui.product_name,
// ui.logo_url, ui.primary_color, ui.support_url).
type Brand struct {
	ProductName  string
	LogoURL      string
	PrimaryColor string
	SupportURL   string
}

// DefaultProductName names the product when ui.product_name is empty.
const DefaultProductName = "otpstep"

// PagesOptions configure NewPagesWith; the zero value is NewPages's.
type PagesOptions struct {
	// Logger logs rendering failures; nil logs nothing.
	Logger *slog.Logger
	// Catalogs are the languages of the pages; nil is i18n.New("en", UTC).
	Catalogs *i18n.Catalogs
	Brand    Brand
	// TemplatesDir (ui.templates_dir) holds replacements of the built-in
	// templates, each by the built-in's file name (login.html,
	// layout.html, …); a file it does not hold keeps the built-in.
	TemplatesDir string
	// ScopeDescriptions (ui.scope_descriptions) describe scopes the built-in
	// catalogs do not, or replace their description.
	ScopeDescriptions map[string]string
}

// NewPages parses every page template once, in English with otpstep's
// brand. A nil logger logs nothing.
func NewPages(logger *slog.Logger) (*Pages, error) {
	return NewPagesWith(PagesOptions{Logger: logger})
}

// NewPagesWith parses every page template once per language, each replaced
// by its file in opts.TemplatesDir when there is one.
func NewPagesWith(opts PagesOptions) (*Pages, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Catalogs == nil {
		c, err := i18n.New("en", time.UTC)
		if err != nil {
			return nil, err
		}
		opts.Catalogs = c
	}
	if opts.Brand.ProductName == "" {
		opts.Brand.ProductName = DefaultProductName
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	versions, err := hashFiles(static)
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	p := &Pages{logger: logger, catalogs: opts.Catalogs, brand: opts.Brand, scopeTexts: opts.ScopeDescriptions,
		templates: make(map[string]map[string]*template.Template),
		static:    static, versions: versions, staticPrefix: PathStatic}
	if c := opts.Brand.PrimaryColor; c != "" {
		if !brandColor.MatchString(c) {
			return nil, fmt.Errorf("ui.primary_color: %q is not #rrggbb", c)
		}
		// Light mode only: dark mode keeps its accent, checked for contrast
		// against its own background.
		p.brandCSS = []byte("/* ui.primary_color */\n@media not all and (prefers-color-scheme: dark) {\n  :root { --accent: " + c + "; }\n}\n")
		sum := sha256.Sum256(p.brandCSS)
		versions[brandCSSName] = hex.EncodeToString(sum[:])[:12]
	}
	src, err := templateSources(opts.TemplatesDir)
	if err != nil {
		return nil, err
	}
	for _, loc := range opts.Catalogs.Locales() {
		byName, err := p.parse(loc, src)
		if err != nil {
			return nil, err
		}
		p.templates[loc.Tag()] = byName
	}
	return p, nil
}

// templateSources reads every page template: the built-in, or its
// replacement in dir.
func templateSources(dir string) (map[string]string, error) {
	src := map[string]string{}
	for _, name := range append([]string{"layout"}, pageNames()...) {
		b, err := templateFS.ReadFile("templates/" + name + ".html")
		if err != nil {
			return nil, fmt.Errorf("web: page %s: %w", name, err)
		}
		src[name] = string(b)
		if dir == "" {
			continue
		}
		file := filepath.Join(dir, name+".html")
		b, err = os.ReadFile(file)
		switch {
		case err == nil:
			src[name] = string(b)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("ui.templates_dir: %w", err)
		}
	}
	if dir != "" {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("ui.templates_dir: %q is not a directory", dir)
		}
	}
	return src, nil
}

// parse parses the layout and every page for one language.
func (p *Pages) parse(loc *i18n.Locale, src map[string]string) (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(p.funcs(loc)).Parse(src["layout"])
	if err != nil {
		return nil, fmt.Errorf("web: parsing layout: %w", err)
	}
	byName := map[string]*template.Template{}
	for _, name := range pageNames() {
		base, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: cloning layout for %s: %w", name, err)
		}
		t, err := base.New(name + ".html").Parse(src[name])
		if err != nil {
			return nil, fmt.Errorf("web: parsing page %s: %w", name, err)
		}
		byName[name] = t
	}
	return byName, nil
}

// funcs are what a page template may call, bound to one language:
//
//	t "key" "name" value …   the catalog's message (i18n.Locale.T)
//	tb "key" "name" value …  the same with each value in <strong>
//	lang                     the language tag, for <html lang>
//	clock, datetime          a time in words with its zone (ui.time_zone)
//	brand                    Brand (ui.product_name, …)
//	scopeDescription         what a scope grants, in words
//	static                   a static file's versioned URL
func (p *Pages) funcs(loc *i18n.Locale) template.FuncMap {
	return template.FuncMap{
		"t":                loc.T,
		"tb":               func(key string, args ...any) template.HTML { return strongArgs(loc, key, args...) },
		"lang":             loc.Tag,
		"clock":            loc.Clock,
		"datetime":         loc.DateTime,
		"brand":            func() Brand { return p.brand },
		"static":           p.staticURL,
		"scopeDescription": func(scope string) string { return p.ScopeDescription(loc, scope) },
	}
}

// strongArgs is loc.T(key, args...) as HTML, every value escaped and in
// <strong>, the message's own words escaped too.
func strongArgs(loc *i18n.Locale, key string, args ...any) template.HTML {
	marked := make([]any, len(args))
	copy(marked, args)
	for i := 1; i < len(marked); i += 2 {
		marked[i] = "\x00" + strconv.Itoa(i) + "\x00"
	}
	out := template.HTMLEscapeString(loc.T(key, marked...))
	for i := 1; i < len(args); i += 2 {
		out = strings.ReplaceAll(out, template.HTMLEscapeString("\x00"+strconv.Itoa(i)+"\x00"),
			"<strong>"+template.HTMLEscapeString(fmt.Sprint(args[i]))+"</strong>")
	}
	return template.HTML(out) //nolint:gosec // every part escaped above
}

// Locale is the language of r: the OIDC ui_locales of the request (its own
// query, or that of the authorize request it carries in return_to or
// authorize_query), then Accept-Language, then ui.default_locale.
func (p *Pages) Locale(r *http.Request) *i18n.Locale {
	return p.catalogs.Match(uiLocalesOf(r), r.Header.Get("Accept-Language"))
}

// uiLocalesOf finds the ui_locales an authorize request asked for, on the
// page itself or in the authorize query the page carries.
func uiLocalesOf(r *http.Request) string {
	q := r.URL.Query()
	if v := q.Get("ui_locales"); v != "" {
		return v
	}
	for _, carried := range []string{q.Get("return_to"), r.PostForm.Get("return_to"), "?" + r.PostForm.Get("authorize_query")} {
		if u, err := url.Parse(carried); err == nil {
			if v := u.Query().Get("ui_locales"); v != "" {
				return v
			}
		}
	}
	return ""
}

// Brand is what the pages show of the product.
func (p *Pages) Brand() Brand { return p.brand }

// brandCSSName is the generated style sheet of ui.primary_color.
const brandCSSName = "brand.css"

var brandColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

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
	loc := p.Locale(r)
	err := p.execute(&buf, loc, name, data)
	if err != nil {
		rid := RequestIDFrom(r.Context())
		p.logger.LogAttrs(r.Context(), slog.LevelError, "rendering page failed",
			slog.String("page", name), slog.String("request_id", rid),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		status = http.StatusInternalServerError
		buf.Reset()
		if err := p.execute(&buf, loc, "error", ErrorPage{Message: loc.T(renderFailedMessage), RequestID: rid}); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Del("Content-Length")
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, "%s %s %s\n", loc.T(renderFailedMessage), loc.T("error.request_id"), rid)
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
func (p *Pages) execute(buf *bytes.Buffer, loc *i18n.Locale, name string, data any) error {
	t, ok := p.templates[loc.Tag()][name]
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
		if name == brandCSSName && p.brandCSS != nil {
			h.Set("Content-Type", "text/css; charset=utf-8")
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(p.brandCSS))
			return
		}
		files.ServeHTTP(w, r)
	})
}

// ScopeDescription says in words, in loc's language, what a scope grants:
// ui.scope_descriptions first, then the catalog's description of the
// standard OpenID Connect scopes and of the user API's, else "Use “scope”".
func (p *Pages) ScopeDescription(loc *i18n.Locale, scope string) string {
	if d, ok := p.scopeTexts[scope]; ok {
		return d
	}
	return loc.T(scopeKey(scope), "scope", scope)
}

// scopeKey is the catalog key describing scope.
func scopeKey(scope string) string {
	switch scope {
	case "openid", "profile", "email", "offline_access", "address", "phone":
		return "scope." + scope
	}
	switch {
	case strings.HasPrefix(scope, "user:sessions:"):
		return "scope.user_sessions"
	case strings.HasPrefix(scope, "user:otp:"):
		return "scope.user_otp"
	case strings.HasPrefix(scope, "user:federated-identity:"):
		return "scope.user_federated_identity"
	}
	return "scope.other"
}
