package web

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpstep/otpstep/web/jsonapi"
	"github.com/otpstep/otpstep/web/requestid"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// requestIDAlphabet is lowercase RFC 4648 base32; 32 symbols, so b&31 of a
// random byte is uniform.
const requestIDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// requestIDLength is the length of a generated id: 100 random bits.
const requestIDLength = 20

// maxIncomingRequestIDLength bounds an id taken from the client.
const maxIncomingRequestIDLength = 64

// RequestIDFrom returns the id RequestID gave the request, or "" outside it.
func RequestIDFrom(ctx context.Context) string {
	return requestid.FromContext(ctx)
}

// RequestID gives every request an id: a well-formed incoming X-Request-Id
// (at most 64 of [A-Za-z0-9-_]) is kept so a proxy's id follows the request
// through; otherwise a fresh 20-character base32 id is drawn from crypto/rand.
// The id is echoed in the X-Request-Id response header and stored in the
// request context (RequestIDFrom).
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(requestid.NewContext(r.Context(), id)))
	})
}

// validRequestID reports whether a client-supplied id is safe to log and echo.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxIncomingRequestIDLength {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// newRequestID draws a fresh id. crypto/rand.Read never fails (Go 1.24+).
func newRequestID() string {
	var b [requestIDLength]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = requestIDAlphabet[b[i]&31]
	}
	return string(b[:])
}

// responseRecorder remembers the status and size of a response on its way out.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *responseRecorder) WriteHeader(status int) {
	if rec.status == 0 && status >= 200 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *responseRecorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// Flush passes a flush through when the underlying writer supports it.
func (rec *responseRecorder) Flush() {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rec *responseRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// started reports whether the status line has gone out.
func (rec *responseRecorder) started() bool { return rec.status != 0 }

// statusCode is the status sent, 200 when the handler wrote nothing.
func (rec *responseRecorder) statusCode() int {
	if rec.status == 0 {
		return http.StatusOK
	}
	return rec.status
}

// Recover turns a panic in a handler into a 500 instead of a dropped
// connection. The panic is logged once by logger at error level with its
// stack, request id, method and path. Requests that want JSON (Accept or
// Content-Type mentions json, or the path lies under one of apiPrefixes) get
// a JSON:API internal-error written through errs; others a plain HTML page
// showing only the request id. When the response had already started, the
// connection is aborted instead (http.ErrAbortHandler), so the client never
// takes a truncated body for a whole one.
func Recover(logger *slog.Logger, errs jsonapi.Writer, apiPrefixes ...string) func(http.Handler) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	prefixes := make([]string, 0, len(apiPrefixes))
	for _, p := range apiPrefixes {
		if p = strings.TrimRight(p, "/"); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	// The panic is logged here, with its stack; errs only writes the body.
	errs.Logger = nil
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &responseRecorder{ResponseWriter: w}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("request_id", RequestIDFrom(r.Context())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if rec.started() {
					panic(http.ErrAbortHandler)
				}
				if wantsJSON(r, prefixes) {
					errs.Write(w, r, jsonapi.Internal(fmt.Errorf("panic: %v", v)))
					return
				}
				writePanicPage(w, RequestIDFrom(r.Context()))
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// wantsJSON reports whether an error for r should be a JSON:API document.
func wantsJSON(r *http.Request, apiPrefixes []string) bool {
	if strings.Contains(strings.ToLower(r.Header.Get("Accept")), "json") ||
		strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json") {
		return true
	}
	for _, p := range apiPrefixes {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			return true
		}
	}
	return false
}

// writePanicPage writes a minimal HTML 500 page. It depends on nothing that
// could itself have caused the panic, such as the page templates.
func writePanicPage(w http.ResponseWriter, id string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Something went wrong</title>
<link rel="stylesheet" href="/static/otpstep.css">
</head>
<body>
<main>
<h1>Something went wrong</h1>
<p>Please try again. If it keeps happening, quote this error id: <code>%s</code></p>
</main>
</body>
</html>
`, html.EscapeString(id))
}

// contentSecurityPolicy is the page policy: no script at all, styles from
// this origin only, images from this origin (and the logo's,
// SecurityHeadersWith), forms posting here (and, per response, on to the
// origins AllowFormActions adds), no framing.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src %s; form-action %s; frame-ancestors 'none'; base-uri 'none'"

// cspHeader is the header SecurityHeaders sets and AllowFormActions widens.
const cspHeader = "Content-Security-Policy"

// hstsValue asks browsers to use HTTPS only for two years.
const hstsValue = "max-age=63072000; includeSubDomains"

// SecurityHeaders sets the headers every response carries: a
// Content-Security-Policy without script, nosniff, no referrer, no framing,
// Cache-Control: no-store (a handler may override it, as the static files
// do), and Strict-Transport-Security when hsts is set.
//
// form-action is 'self' plus formActions (origins such as
// "https://rp.example.com") on every response. Browsers apply form-action to
// the redirects that follow a form POST, so a page whose form's answer ends
// in a redirect to another origin (a relying party's redirect URI, an
// upstream's authorization endpoint) adds that origin for its own response
// with AllowFormActions; otpstep passes no formActions.
func SecurityHeaders(hsts bool, formActions ...string) func(http.Handler) http.Handler {
	return SecurityHeadersWith(hsts, "", formActions...)
}

// SecurityHeadersWith is SecurityHeaders whose img-src also admits the
// origin of logoURL (ui.logo_url) when it is an https URL on another
// origin: exactly that origin, nothing else. A path (or "") admits
// nothing beyond 'self'.
func SecurityHeadersWith(hsts bool, logoURL string, formActions ...string) func(http.Handler) http.Handler {
	sources := append([]string{"'self'"}, formActions...)
	images := []string{"'self'"}
	if src := logoSource(logoURL); src != "" {
		images = append(images, src)
	}
	csp := fmt.Sprintf(contentSecurityPolicy, strings.Join(images, " "), strings.Join(sources, " "))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set(cspHeader, csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Cache-Control", "no-store")
			if hsts {
				h.Set("Strict-Transport-Security", hstsValue)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// AllowFormActions adds sources (as FormActionSource gives them) to the
// form-action directive of the Content-Security-Policy SecurityHeaders set
// on w, for this response only; call it before the header is written.
// Empty sources, and any that could change the policy's meaning, are
// skipped; without a policy on w it does nothing.
func AllowFormActions(w http.ResponseWriter, sources ...string) {
	allowSources(w, "form-action", sources)
}

// AllowImageSources adds sources to the img-src directive of the
// Content-Security-Policy SecurityHeaders set on w, for this response only,
// as AllowFormActions does for form-action: the enrollment page's QR code
// is an inline PNG ("data:"), no other page admits one.
func AllowImageSources(w http.ResponseWriter, sources ...string) {
	allowSources(w, "img-src", sources)
}

// allowSources adds sources to directive of w's Content-Security-Policy.
func allowSources(w http.ResponseWriter, directive string, sources []string) {
	h := w.Header()
	directives := strings.Split(h.Get(cspHeader), "; ")
	for i, d := range directives {
		fields := strings.Fields(d)
		if len(fields) == 0 || fields[0] != directive {
			continue
		}
		for _, src := range sources {
			if src != "" && !strings.ContainsAny(src, " \t\r\n;,'\"") && !slices.Contains(fields[1:], src) {
				fields = append(fields, src)
			}
		}
		directives[i] = strings.Join(fields, " ")
		h.Set(cspHeader, strings.Join(directives, "; "))
		return
	}
}

// logoSource is the CSP source of an https logo URL's origin
// ("https://cdn.example.com"), or "" for a path, another scheme or a URL
// that names no plain host.
func logoSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.User != nil {
		return ""
	}
	src := FormActionSource(u)
	if strings.ContainsAny(src, " \t\r\n;,'\"*") {
		return ""
	}
	return src
}

// FormActionSource is the CSP source expression that admits u as a form's
// destination: its origin ("https://rp.example.com:8443") for http and
// https, its scheme ("com.example.app:", RFC 8252 §7.1) for another, and ""
// for a URL that names none.
func FormActionSource(u *url.URL) string {
	if u == nil || u.Scheme == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	for i, c := range scheme { // RFC 3986 §3.1
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return ""
		}
	}
	if scheme != "http" && scheme != "https" {
		return scheme + ":"
	}
	if u.Host == "" || strings.ContainsAny(u.Host, "@/?#") {
		return ""
	}
	return scheme + "://" + strings.ToLower(u.Host)
}

// AccessLog writes one info line per request: method, path (never the query,
// which may carry codes or tokens), status, bytes, duration_ms, request_id
// and remote address. Place it inside RequestID.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &responseRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.statusCode()),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("request_id", RequestIDFrom(r.Context())),
				slog.String("remote", r.RemoteAddr))
		})
	}
}

// unmatchedRoute labels requests that reached Metrics without a mux route.
const unmatchedRoute = "unmatched"

// Metrics returns a middleware recording otpstep_http_requests_total{route,
// method,code} and otpstep_http_request_duration_seconds{route,method} on reg.
// The route label is the gorilla/mux path template ("/sessions/{sessionId}"),
// never the raw path, so its cardinality stays bounded; install it with
// Router.Use, where the matched route is known, and wrap the router's
// NotFoundHandler with it to count unmatched requests as route "unmatched".
// Building it twice on one registry shares the collectors; any other
// registration failure is a programming error and panics.
func Metrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := registerCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "otpstep_http_requests_total",
		Help: "HTTP requests served, by route template, method and status code.",
	}, []string{"route", "method", "code"}))
	durations := registerCollector(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "otpstep_http_request_duration_seconds",
		Help:    "Time to serve HTTP requests, by route template and method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"}))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &responseRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			route, method := routeLabel(r), methodLabel(r.Method)
			requests.WithLabelValues(route, method, strconv.Itoa(rec.statusCode())).Inc()
			durations.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		})
	}
}

// registerCollector registers c, or returns the collector already registered
// under the same description.
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if already, ok := err.(prometheus.AlreadyRegisteredError); ok { //nolint:errorlint // Register returns it unwrapped
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("web: registering HTTP metrics: %v", err))
	}
	return c
}

// routeLabel is the path template of the mux route serving r.
func routeLabel(r *http.Request) string {
	route := mux.CurrentRoute(r)
	if route == nil {
		return unmatchedRoute
	}
	tpl, err := route.GetPathTemplate()
	if err != nil || tpl == "" {
		return unmatchedRoute
	}
	return tpl
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
