package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// Options are the web layer's collaborators besides the provider.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the HTTP metrics; nil disables them.
	Registerer prometheus.Registerer
	// SessionFromRequest, when set, finds the sid of the browser's login
	// session instead of otpstep's session cookie: an embedding host that
	// keeps the sid in its own session (MountSecondFactor).
	SessionFromRequest func(*http.Request) string
	// ReturnPaths are further local paths the OTP page may send the browser
	// back to, besides otpstep's own: an embedding host's authorize endpoint.
	// A path ending in / admits every path under it.
	ReturnPaths []string
	// AuthorizeRequests parses the authorize requests the OTP page returns
	// to as the authorize endpoint does (an embedding host's fosite), so the
	// page's form-action can admit the redirect URI it validates. Nil: the
	// provider's own fosite.
	AuthorizeRequests AuthorizeRequestParser
	// TracerProvider, when set, gives every request a server span (Tracing);
	// nil traces nothing.
	TracerProvider trace.TracerProvider
}

// AuthorizeRequestParser parses an authorize request (RFC 6749 §4.1.1),
// validating its client and redirect URI; fosite.OAuth2Provider is one.
type AuthorizeRequestParser interface {
	NewAuthorizeRequest(ctx context.Context, req *http.Request) (fosite.AuthorizeRequester, error)
}

// Server holds the handlers of every route otpstep serves.
type Server struct {
	p       *provider.Provider
	mount   mountInfo // set by MountSecondFactor; zero for Mount
	log     *slog.Logger
	pages   *Pages
	errs    jsonapi.Writer
	cookies *provider.Sealer
	csrf    func(http.Handler) http.Handler
	secure  bool
	opts    Options
	// flows seals the state of browser flows through an upstream provider
	// (federated_pages.go).
	flows *provider.Sealer
	// inflight tracks the requests being served and the drain (inflight.go).
	inflight *InFlight
}

// New builds the handlers over a provider.
func New(p *provider.Provider, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := p.Config()
	secret := []byte(cfg.Secrets.System)
	sessionCookies, err := provider.NewSealer(secret, "session-cookie")
	if err != nil {
		return nil, err
	}
	csrfKey, err := provider.DeriveKey(secret, "csrf", 32)
	if err != nil {
		return nil, err
	}
	flows, err := provider.NewSealer(secret, "upstream-flow")
	if err != nil {
		return nil, err
	}
	pages, err := NewPagesWith(PagesOptions{Logger: opts.Logger, Catalogs: p.Catalogs(), TemplatesDir: cfg.UI.TemplatesDir,
		ScopeDescriptions: cfg.UI.ScopeDescriptions,
		Brand:             Brand{ProductName: cfg.UI.ProductName, LogoURL: cfg.UI.LogoURL, PrimaryColor: cfg.UI.PrimaryColor, SupportURL: cfg.UI.SupportURL}})
	if err != nil {
		return nil, err
	}
	secure := strings.HasPrefix(cfg.Server.PublicURL, "https://")
	srv := &Server{
		p:       p,
		log:     opts.Logger,
		pages:   pages,
		errs:    jsonapi.Writer{Logger: opts.Logger},
		cookies: sessionCookies,
		csrf:    NewCSRF(csrfKey, secure, cfg.Login.CookieName+"_csrf", CSRFWithPages(pages)),
		secure:  secure,
		opts:    opts,
		flows:   flows,
	}
	srv.inflight = NewInFlight(nil)
	return srv, nil
}

// InFlight is the registry of the requests being served, through which a
// shutdown drains the server (see InFlight).
func (s *Server) InFlight() *InFlight { return s.inflight }

// Mount registers every public route on r: OAuth2 and OpenID Connect
// endpoints, pages and /health/alive. /health/ready and /metrics are the
// admin listener's (AdminHandler).
func (s *Server) Mount(r *mux.Router) {
	chain := s.middleware()
	r.Use(chain...)
	// mux skips middleware for unmatched routes; give them the same chain.
	wrap := func(h http.Handler) http.Handler {
		for i := len(chain) - 1; i >= 0; i-- {
			h = chain[i](h)
		}
		return h
	}
	r.NotFoundHandler = wrap(http.HandlerFunc(s.notFound))
	r.MethodNotAllowedHandler = wrap(http.HandlerFunc(s.methodNotAllowed))
	// mux's own cleaning answers a bare 301 before any middleware runs;
	// otpstep answers such paths itself, first, inside the chain.
	r.SkipClean(true)
	r.MatcherFunc(uncleanPath).HandlerFunc(s.answerUncleanPath)
	s.mountUserAPI(r)
	s.mountAdminAPI(r)
	r.HandleFunc(PathDiscovery, s.discovery).Methods(http.MethodGet)
	r.HandleFunc(PathJWKS, s.jwks).Methods(http.MethodGet)
	r.HandleFunc(PathToken, s.token).Methods(http.MethodPost)
	r.HandleFunc(PathIntrospect, s.introspect).Methods(http.MethodPost)
	r.HandleFunc(PathRevoke, s.revoke).Methods(http.MethodPost)
	r.HandleFunc(PathUserinfo, s.userinfo).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc(PathAlive, s.alive).Methods(http.MethodGet)
	r.Handle(PathOpenAPI, OpenAPIHandler()).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(PathStatic).Handler(http.StripPrefix(PathStatic, s.pages.StaticHandler()))

	r.HandleFunc(PathEndSession, s.endSessionPost).Methods(http.MethodPost)
	r.HandleFunc(PathAuthorize, s.authorizePost).Methods(http.MethodPost)

	// Pages and the authorize endpoint carry CSRF-protected forms.
	pages := r.NewRoute().Subrouter()
	pages.Use(s.csrf)
	pages.HandleFunc(PathAuthorize, s.authorize).Methods(http.MethodGet)
	pages.HandleFunc(PathConsent, s.consent).Methods(http.MethodPost)
	pages.HandleFunc(PathLogin, s.loginForm).Methods(http.MethodGet)
	pages.HandleFunc(PathLogin, s.login).Methods(http.MethodPost)
	s.mountOTPPages(pages)
	s.mountSettingsPages(pages)
	s.mountRecoveryPages(pages)
	pages.HandleFunc(PathLogout, s.logoutForm).Methods(http.MethodGet)
	pages.HandleFunc(PathLogout, s.logout).Methods(http.MethodPost)
	pages.HandleFunc(PathEndSession, s.endSession).Methods(http.MethodGet)
	s.mountFederatedPages(pages)
}

// middleware is the one chain of otpstep's public routes, standalone
// (Mount) and embedded (MountSecondFactor, called after the prefix is
// known): request id, in-flight registry, the storage-outage note, access
// log, metrics (with a Registerer), panic recovery (JSON:API under the API
// prefixes), security headers, and tracing around it all. The CSP's
// form-action is 'self'; a page whose form leads on to another origin (the
// host's authorize endpoint, a relying party's redirect URI) adds it for its
// own response (renderLeadingTo, allowRedirectOf).
func (s *Server) middleware() []mux.MiddlewareFunc {
	chain := []mux.MiddlewareFunc{RequestID, s.inflight.Middleware, NoteStorageUnavailable, AccessLog(s.log)}
	if s.opts.Registerer != nil {
		chain = append(chain, Metrics(s.opts.Registerer))
	}
	chain = append(chain, Recover(s.log, s.errs, s.apiPrefixes()...), SecurityHeadersWith(s.secure, s.p.Config().UI.LogoURL))
	return s.traced(chain)
}

func (s *Server) recoverer() mux.MiddlewareFunc {
	return Recover(s.log, s.errs, s.p.Config().API.Paths()...)
}

// clientIP is the address per-IP limits count against.
func (s *Server) clientIP(r *http.Request) string {
	if s.p.Config().Server.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errorPage renders the generic error page; the cause is only logged.
//
// A cause that is (or a request whose storage work was) an unavailable
// database makes it a 503 with Retry-After, whatever status the caller chose.
//
// key is the catalog key of the message, args its placeholders' name, value
// pairs (i18n.Locale.T).
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, key string, cause error, args ...any) {
	s.errorPageFor(w, r, status, ErrorPage{}, key, cause, args...)
}

// errorPageFor is errorPage with the page's other fields (the client's
// home page) filled in page.
func (s *Server) errorPageFor(w http.ResponseWriter, r *http.Request, status int, page ErrorPage, key string, cause error, args ...any) {
	rid := RequestIDFrom(r.Context())
	if cause != nil && status != http.StatusServiceUnavailable && storage.IsUnavailable(r.Context(), cause) {
		status, key, args = http.StatusServiceUnavailable, unavailablePageMessage, nil
	}
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		setUnavailableRetryAfter(w)
	}
	if cause != nil {
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request failed", "request_id", rid, "path", r.URL.Path, "status", status, "err", cause)
	}
	page.Message, page.RequestID = s.pages.Locale(r).T(key, args...), rid
	s.pages.Render(w, r, status, "error", page)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if s.wantsJSON(r) {
		jsonapi.Write(w, r, jsonapi.NotFound("No route matches "+r.URL.Path+"."))
		return
	}
	s.errorPage(w, r, http.StatusNotFound, "error.not_found", nil)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write([]byte("method not allowed\n"))
}

// wantsJSON is true for the user API and for callers that ask for JSON.
func (s *Server) wantsJSON(r *http.Request) bool {
	for _, prefix := range s.p.Config().API.Paths() {
		if strings.HasPrefix(r.URL.Path, prefix+"/") {
			return true
		}
	}
	return strings.Contains(r.Header.Get("Accept"), "json")
}

// cleanPath is p in the canonical form gorilla/mux's Router redirects to
// unless told to SkipClean: path.Clean of p with a leading slash, keeping a
// trailing slash.
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// uncleanPath matches a request whose path is not canonical (cleanPath):
// "//user/…", "/a/./b", "/a/x/../b".
func uncleanPath(r *http.Request, _ *mux.RouteMatch) bool {
	return cleanPath(r.URL.Path) != r.URL.Path
}

// answerUncleanPath answers a request whose path is not canonical, from
// inside otpstep's middleware (request id, security headers, access log):
// under the API prefix a JSON:API 404, as for any path the API does not
// serve (a redirect would have API clients replay a PUT or POST elsewhere,
// many as a GET); elsewhere a 301 to the clean path, query kept, as mux's
// own cleaning answers.
func (s *Server) answerUncleanPath(w http.ResponseWriter, r *http.Request) {
	clean := cleanPath(r.URL.Path)
	if s.underAPIPrefix(clean) {
		jsonapi.Write(w, r, jsonapi.NotFound("No route matches "+r.URL.Path+"."))
		return
	}
	target := *r.URL
	target.Path, target.RawPath = clean, ""
	w.Header().Set("Location", target.String())
	w.WriteHeader(http.StatusMovedPermanently)
}

// underAPIPrefix reports whether the path p lies under one of the user
// API's prefixes (below the mount prefix when embedded).
func (s *Server) underAPIPrefix(p string) bool {
	for _, prefix := range s.apiPrefixes() {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// apiPrefixes are the paths the user API is served under, below the mount
// prefix when embedded.
func (s *Server) apiPrefixes() []string {
	paths := s.p.Config().API.Paths()
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = s.mount.base + p
	}
	return out
}

// renderLeadingTo renders a page whose form sends the browser on to
// returnTo (the login and OTP pages). When returnTo is an authorize request
// (it names a client_id), the answer to the form ends, after a redirect or
// two, at that request's redirect URI, which browsers check against the
// page's form-action: the response admits that URI's origin, as the
// authorize endpoint validates it. An authorize request that does not
// validate admits nothing.
func (s *Server) renderLeadingTo(w http.ResponseWriter, r *http.Request, status int, name string, data any, returnTo string) {
	s.allowAuthorizeRedirect(w, r, returnTo)
	s.pages.Render(w, r, status, name, data)
}

// allowAuthorizeRedirect admits in w's form-action the origin of the
// redirect URI of the authorize request returnTo, parsed and validated as
// the authorize endpoint does (Options.AuthorizeRequests, else the
// provider's fosite); nothing when returnTo is no authorize request.
func (s *Server) allowAuthorizeRedirect(w http.ResponseWriter, r *http.Request, returnTo string) {
	if returnTo == "" {
		return
	}
	u, err := url.Parse(returnTo)
	if err != nil || u.Query().Get("client_id") == "" {
		return
	}
	parser := s.opts.AuthorizeRequests
	if parser == nil {
		if s.p.Embedded() {
			return
		}
		parser = s.p.OAuth2
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), http.NoBody)
	if err != nil {
		return
	}
	ar, _ := parser.NewAuthorizeRequest(r.Context(), req)
	allowRedirectOf(w, ar)
}

// allowRedirectOf admits, in the response's form-action, the origin of the
// redirect URI fosite validated for ar (none when it validated none): the
// consent form's answer redirects there.
func allowRedirectOf(w http.ResponseWriter, ar fosite.AuthorizeRequester) {
	if ar == nil || ar.GetRedirectURI() == nil || ar.GetClient() == nil {
		return
	}
	AllowFormActions(w, FormActionSource(ar.GetRedirectURI()))
}
