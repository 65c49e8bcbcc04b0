package web

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/gorilla/csrf"
)

// csrfFieldName is the form field carrying the CSRF token.
const csrfFieldName = "csrf_token"

// csrfFailedMessage is what the user reads when a form's CSRF check fails.
const csrfFailedMessage = "error.csrf"

// CSRFOption adjusts NewCSRF.
type CSRFOption func(*csrfConfig)

type csrfConfig struct {
	pages *Pages
}

// CSRFWithPages renders the failure page with p and logs failures to p's
// logger. Without it NewCSRF parses the page templates itself and logs nothing.
func CSRFWithPages(p *Pages) CSRFOption {
	return func(c *csrfConfig) { c.pages = p }
}

// NewCSRF protects the pages' forms with gorilla/csrf: a token in a signed,
// HttpOnly, SameSite=Lax cookie named cookieName (path /), checked against
// the form field csrf_token or the X-CSRF-Token header on every unsafe
// method. authKey signs the cookie (32 bytes).
//
// gorilla/csrf 1.7.3 treats every request as HTTPS, with strict Origin and
// Referer checks, unless csrf.PlaintextHTTPRequest marks it: when secure is
// false (plain-HTTP development and tests) every request is marked plaintext
// and the cookie is not Secure; when secure is true the cookie is Secure and a
// POST must come with a same-origin Origin or an HTTPS same-host Referer.
//
// A failed check answers 403 with the error page "The form expired, please go
// back and try again.".
func NewCSRF(authKey []byte, secure bool, cookieName string, opts ...CSRFOption) func(http.Handler) http.Handler {
	var cfg csrfConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.pages == nil {
		// The templates are embedded and covered by tests; should they fail
		// to parse anyway, failure falls back to a plain-text 403.
		cfg.pages, _ = NewPages(nil)
	}
	protect := csrf.Protect(authKey,
		csrf.Secure(secure),
		csrf.HttpOnly(true),
		csrf.SameSite(csrf.SameSiteLaxMode),
		csrf.Path("/"),
		csrf.CookieName(cookieName),
		csrf.FieldName(csrfFieldName),
		csrf.ErrorHandler(csrfFailureHandler(cfg.pages)),
	)
	if secure {
		return protect
	}
	return func(next http.Handler) http.Handler {
		h := protect(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, csrf.PlaintextHTTPRequest(r))
		})
	}
}

// csrfFailureHandler answers a failed CSRF check with a 403 error page.
func csrfFailureHandler(p *Pages) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := RequestIDFrom(r.Context())
		if p == nil {
			http.Error(w, "The form expired, please go back and try again.", http.StatusForbidden)
			return
		}
		reason := "unknown"
		if err := csrf.FailureReason(r); err != nil {
			reason = err.Error()
		}
		p.logger.LogAttrs(r.Context(), slog.LevelWarn, "csrf check failed",
			slog.String("reason", reason), slog.String("request_id", rid),
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
		p.Render(w, r, http.StatusForbidden, "error", ErrorPage{Message: p.Locale(r).T(csrfFailedMessage), RequestID: rid})
	})
}

// csrfField is the hidden input carrying the CSRF token, for a page's
// CSRFField; empty outside NewCSRF's middleware.
func csrfField(r *http.Request) template.HTML {
	return csrf.TemplateField(r)
}
