package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpstep/otpstep/web/jsonapi"
)

var generatedRequestID = regexp.MustCompile(`^[a-z2-7]{20}$`)

// echoRequestID answers with the request id found in the context.
var echoRequestID = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte(RequestIDFrom(r.Context())))
})

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		incoming string
		keep     bool
	}{
		{"absent generates", "", false},
		{"well-formed kept", "abc-DEF_123", true},
		{"64 chars kept", strings.Repeat("a", 64), true},
		{"65 chars replaced", strings.Repeat("a", 65), false},
		{"space replaced", "abc def", false},
		{"newline replaced", "abc\ndef", false},
		{"markup replaced", "<script>", false},
		{"unicode replaced", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.incoming != "" {
				r.Header.Set("X-Request-Id", tt.incoming)
			}
			w := httptest.NewRecorder()
			RequestID(echoRequestID).ServeHTTP(w, r)
			got := w.Header().Get("X-Request-Id")
			if got != w.Body.String() {
				t.Fatalf("header %q differs from context %q", got, w.Body.String())
			}
			if tt.keep {
				if got != tt.incoming {
					t.Fatalf("id = %q, want incoming %q", got, tt.incoming)
				}
				return
			}
			if !generatedRequestID.MatchString(got) {
				t.Fatalf("generated id %q is not 20 lowercase base32 characters", got)
			}
		})
	}
}

func TestRequestID_GeneratedIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		if seen[id] {
			t.Fatalf("id %q generated twice", id)
		}
		seen[id] = true
	}
}

func TestRequestIDFrom_EmptyOutsideMiddleware(t *testing.T) {
	if got := RequestIDFrom(httptest.NewRequest(http.MethodGet, "/", nil).Context()); got != "" {
		t.Fatalf("RequestIDFrom = %q, want empty", got)
	}
}

func panicking(v any) http.Handler {
	return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(v) })
}

func TestRecover(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		header   map[string]string
		wantJSON bool
	}{
		{"api prefix", "/user/2024-3/sessions/1", nil, true},
		{"api prefix root", "/user/2024-3", nil, true},
		{"accept json", "/login", map[string]string{"Accept": "application/json"}, true},
		{"content type jsonapi", "/login", map[string]string{"Content-Type": "application/vnd.api+json"}, true},
		{"page", "/login", map[string]string{"Accept": "text/html"}, false},
		{"prefix is a path segment", "/user/2024-30/x", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			h := RequestID(Recover(logger, jsonapi.Writer{Logger: logger}, "/user/2024-3/")(panicking("secret panic value")))
			r := httptest.NewRequest(http.MethodPost, tt.path, nil)
			r.Header.Set("X-Request-Id", "rid-42")
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if w.Code != http.StatusInternalServerError {
				t.Fatalf("status = %d, want 500", w.Code)
			}
			body := w.Body.String()
			if strings.Contains(body, "secret panic value") {
				t.Fatalf("body leaks the panic: %s", body)
			}
			if tt.wantJSON {
				want := `{"errors":[{"id":"rid-42","status":"500","code":"internal-error","title":"Internal server error","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`
				if w.Header().Get("Content-Type") != jsonapi.MediaType || strings.TrimSpace(body) != want {
					t.Fatalf("got %s %s, want JSON:API %s", w.Header().Get("Content-Type"), body, want)
				}
			} else {
				if w.Header().Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "<code>rid-42</code>") {
					t.Fatalf("got %s %s, want an HTML page with the id", w.Header().Get("Content-Type"), body)
				}
				if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
					t.Fatalf("page has inline script or style: %s", body)
				}
			}
			// One log line: the panic, with stack and request id.
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("want one log line, got %d: %s", len(lines), logs.String())
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatal(err)
			}
			if line["level"] != "ERROR" || line["request_id"] != "rid-42" || line["panic"] != "secret panic value" ||
				line["path"] != tt.path || line["method"] != "POST" {
				t.Fatalf("log line = %v", line)
			}
			if stack, _ := line["stack"].(string); !strings.Contains(stack, "runtime/debug.Stack") {
				t.Fatalf("log has no stack: %v", line["stack"])
			}
		})
	}
}

func TestRecover_PassesThroughWithoutPanic(t *testing.T) {
	h := Recover(nil, jsonapi.Writer{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusTeapot {
		t.Fatalf("status = %d", w.Code)
	}
}

func TestRecover_AbortsStartedResponse(t *testing.T) {
	h := Recover(nil, jsonapi.Writer{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("half a page"))
		panic("late")
	}))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler { //nolint:errorlint
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Fatal("no panic")
}

func TestRecover_RepanicsErrAbortHandler(t *testing.T) {
	var logs bytes.Buffer
	h := Recover(slog.New(slog.NewJSONHandler(&logs, nil)), jsonapi.Writer{})(panicking(http.ErrAbortHandler))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler { //nolint:errorlint
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		if logs.Len() != 0 {
			t.Fatalf("ErrAbortHandler logged: %s", logs.String())
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Fatal("no panic")
}

func TestRecover_ErrorValuePanic(t *testing.T) {
	h := Recover(nil, jsonapi.Writer{}, "/api")(panicking(errors.New("boom")))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/x", nil))
	if w.Code != 500 || w.Header().Get("Content-Type") != jsonapi.MediaType {
		t.Fatalf("got %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	tests := []struct {
		name        string
		hsts        bool
		formActions []string
		wantCSP     string
		wantHSTS    string
	}{
		{"plain", false, nil,
			"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", ""},
		{"hsts", true, nil,
			"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"max-age=63072000; includeSubDomains"},
		{"relying parties in form-action", false, []string{"https://rp.example.com", "https://app.example.org"},
			"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https://rp.example.com https://app.example.org; frame-ancestors 'none'; base-uri 'none'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			SecurityHeaders(tt.hsts, tt.formActions...)(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			want := map[string]string{
				"Content-Security-Policy":   tt.wantCSP,
				"X-Content-Type-Options":    "nosniff",
				"Referrer-Policy":           "same-origin",
				"X-Frame-Options":           "DENY",
				"Cache-Control":             "no-store",
				"Strict-Transport-Security": tt.wantHSTS,
			}
			for k, v := range want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAllowFormActions_WidensOnlyThisResponse(t *testing.T) {
	h := SecurityHeaders(false)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/consent" {
			AllowFormActions(w, "https://rp.example.com:8443", "", "https://rp.example.com:8443",
				"https://x.example; script-src *", "'unsafe-inline'", "com.example.app:")
		}
	}))
	for path, want := range map[string]string{
		"/consent": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https://rp.example.com:8443 com.example.app:; frame-ancestors 'none'; base-uri 'none'",
		"/login":   "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if got := w.Header().Get("Content-Security-Policy"); got != want {
			t.Errorf("%s: CSP = %q, want %q", path, got, want)
		}
	}
	w := httptest.NewRecorder() // no policy: nothing to widen
	AllowFormActions(w, "https://rp.example.com")
	if got := w.Header().Get("Content-Security-Policy"); got != "" {
		t.Fatalf("CSP without SecurityHeaders = %q", got)
	}
}

func TestFormActionSource(t *testing.T) {
	for raw, want := range map[string]string{
		"https://RP.example.com/cb?x=1":   "https://rp.example.com",
		"https://rp.example.com:8443/cb":  "https://rp.example.com:8443",
		"http://127.0.0.1:1/callback":     "http://127.0.0.1:1",
		"http://[::1]:9000/cb":            "http://[::1]:9000",
		"com.example.app:/oauth2redirect": "com.example.app:",
		"/relative":                       "",
		"https:///no-host":                "",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormActionSource(u); got != want {
			t.Errorf("FormActionSource(%s) = %q, want %q", raw, got, want)
		}
	}
	for raw, want := range map[string]string{
		"https://cdn.example.com/logo.png": "https://cdn.example.com",
		"HTTPS://CDN.example.com:444/l":    "https://cdn.example.com:444",
		"/static/logo.svg":                 "",
		"http://cdn.example.com/logo.png":  "",
		"https://u@cdn.example.com/l":      "",
		"https://*.example.com/l":          "",
	} {
		if got := logoSource(raw); got != want {
			t.Errorf("logoSource(%s) = %q, want %q", raw, got, want)
		}
	}
	w := httptest.NewRecorder()
	SecurityHeadersWith(false, "https://cdn.example.com/logo.png")(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if got, want := w.Header().Get("Content-Security-Policy"), "default-src 'none'; style-src 'self'; img-src 'self' https://cdn.example.com; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"; got != want {
		t.Errorf("CSP with a logo = %q, want %q", got, want)
	}
	if got := FormActionSource(nil); got != "" {
		t.Errorf("FormActionSource(nil) = %q", got)
	}
}

func TestSecurityHeaders_HandlerMayOverrideCacheControl(t *testing.T) {
	h := SecurityHeaders(false)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := w.Header().Get("Cache-Control"); got != "public, max-age=60" {
		t.Fatalf("Cache-Control = %q", got)
	}
}

func TestAccessLog(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantStatus float64
		wantBytes  float64
	}{
		{"explicit status", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("hello"))
		}, 201, 5},
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("abc")) }, 200, 3},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, 0},
		{"informational then final", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNotFound)
		}, 404, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := RequestID(AccessLog(slog.New(slog.NewJSONHandler(&logs, nil)))(tt.handler))
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token?code=secret", nil)
			r.Header.Set("X-Request-Id", "rid-7")
			r.RemoteAddr = "192.0.2.1:5555"
			h.ServeHTTP(httptest.NewRecorder(), r)
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			want := map[string]any{"level": "INFO", "method": "POST", "path": "/oauth2/token", "status": tt.wantStatus,
				"bytes": tt.wantBytes, "request_id": "rid-7", "remote": "192.0.2.1:5555"}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v", k, line[k], v)
				}
			}
			if _, ok := line["duration_ms"].(float64); !ok {
				t.Errorf("duration_ms = %v", line["duration_ms"])
			}
			if strings.Contains(logs.String(), "secret") {
				t.Errorf("log carries the query: %s", logs.String())
			}
		})
	}
}

func TestResponseRecorder_FlushReachesUnderlyingWriter(t *testing.T) {
	w := httptest.NewRecorder()
	h := AccessLog(nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	}))
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if !w.Flushed {
		t.Fatal("flush did not reach the recorder")
	}
}

func newMetricsRouter(reg prometheus.Registerer) *mux.Router {
	m := Metrics(reg)
	r := mux.NewRouter()
	r.Use(m)
	r.HandleFunc("/sessions/{sessionId}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	r.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	r.NotFoundHandler = m(http.NotFoundHandler())
	return r
}

func TestMetrics_LabelsByRouteTemplate(t *testing.T) {
	reg := prometheus.NewRegistry()
	router := newMetricsRouter(reg)
	for _, req := range []struct{ method, path string }{
		{"PUT", "/sessions/a"}, {"PUT", "/sessions/b"}, {"GET", "/sessions/c"},
		{"PUT", "/boom"}, {"GET", "/nowhere/1"}, {"GET", "/nowhere/2"}, {"BREW", "/sessions/d"},
	} {
		router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
	}
	assertSeries(t, reg, "otpstep_http_requests_total", []string{
		`code="204",method="GET",route="/sessions/{sessionId}" 1`,
		`code="204",method="OTHER",route="/sessions/{sessionId}" 1`,
		`code="204",method="PUT",route="/sessions/{sessionId}" 2`,
		`code="404",method="GET",route="unmatched" 2`,
		`code="500",method="PUT",route="/boom" 1`,
	})
	assertSeries(t, reg, "otpstep_http_request_duration_seconds", []string{
		`method="GET",route="/sessions/{sessionId}" 1`,
		`method="GET",route="unmatched" 2`,
		`method="OTHER",route="/sessions/{sessionId}" 1`,
		`method="PUT",route="/boom" 1`,
		`method="PUT",route="/sessions/{sessionId}" 2`,
	})
}

func TestMetrics_TwoInstancesOnOneRegistryShareCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := newMetricsRouter(reg), newMetricsRouter(reg)
	a.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "/sessions/x", nil))
	b.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "/sessions/y", nil))
	assertSeries(t, reg, "otpstep_http_requests_total", []string{`code="204",method="PUT",route="/sessions/{sessionId}" 2`})
}

func TestMetrics_SeparateRegistriesAreIndependent(t *testing.T) {
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	newMetricsRouter(regA).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "/sessions/x", nil))
	newMetricsRouter(regB)
	assertSeries(t, regB, "otpstep_http_requests_total", nil)
	assertSeries(t, regA, "otpstep_http_requests_total", []string{`code="204",method="PUT",route="/sessions/{sessionId}" 1`})
}

// assertSeries compares the series of one metric family, each written as its
// labels and its count (counter value or histogram sample count), sorted.
func assertSeries(t *testing.T, reg *prometheus.Registry, name string, want []string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			count := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				count = float64(h.GetSampleCount())
			}
			got = append(got, fmt.Sprintf("%s %g", strings.Join(labels, ","), count))
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s series:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
