package web

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var csrfTokenInPage = regexp.MustCompile(`<input type="hidden" name="csrf_token" value="([^"]+)">`)

const testCSRFCookie = "otpstep_csrf"

// csrfTestApp serves a form at GET /form and accepts it at POST /form.
func csrfTestApp(t *testing.T, secure bool) (http.Handler, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	pages, err := NewPages(slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		pages.Render(w, r, http.StatusOK, "logout_confirm", LogoutPage{CSRFField: csrfField(r)})
	})
	mux.HandleFunc("POST /form", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "accepted")
	})
	key := bytes.Repeat([]byte{7}, 32)
	return RequestID(NewCSRF(key, secure, testCSRFCookie, CSRFWithPages(pages))(mux)), &logs
}

// fetchForm GETs the form and returns its CSRF cookie and token.
func fetchForm(t *testing.T, app http.Handler, base string) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, base+"/form", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /form = %d", w.Code)
	}
	m := csrfTokenInPage.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no token in page:\n%s", w.Body.String())
	}
	var cookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == testCSRFCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no %s cookie in %v", testCSRFCookie, w.Result().Header["Set-Cookie"])
	}
	return cookie, m[1]
}

type csrfPost struct {
	token      string // form field value; "" sends none
	header     string // X-CSRF-Token value
	cookie     bool
	origin     string
	referer    string
	wantStatus int
}

func postForm(t *testing.T, app http.Handler, base string, cookie *http.Cookie, p csrfPost) *httptest.ResponseRecorder {
	t.Helper()
	form := url.Values{}
	if p.token != "" {
		form.Set("csrf_token", p.token)
	}
	r := httptest.NewRequest(http.MethodPost, base+"/form", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Request-Id", "rid-csrf")
	if p.cookie {
		r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	if p.header != "" {
		r.Header.Set("X-CSRF-Token", p.header)
	}
	if p.origin != "" {
		r.Header.Set("Origin", p.origin)
	}
	if p.referer != "" {
		r.Header.Set("Referer", p.referer)
	}
	w := httptest.NewRecorder()
	app.ServeHTTP(w, r)
	return w
}

func TestCSRF(t *testing.T) {
	const good = "<good>" // replaced by the token read from the form
	tests := []struct {
		name   string
		secure bool
		post   csrfPost
	}{
		{"plaintext: no token", false, csrfPost{cookie: true, wantStatus: 403}},
		{"plaintext: no cookie", false, csrfPost{token: good, wantStatus: 403}},
		{"plaintext: wrong token", false, csrfPost{token: "AAAA", cookie: true, wantStatus: 403}},
		{"plaintext: token and cookie", false, csrfPost{token: good, cookie: true, wantStatus: 200}},
		{"plaintext: token in header", false, csrfPost{header: good, cookie: true, wantStatus: 200}},
		{"plaintext: same origin", false, csrfPost{token: good, cookie: true, origin: "http://example.com", wantStatus: 200}},
		{"plaintext: foreign origin", false, csrfPost{token: good, cookie: true, origin: "http://evil.example", wantStatus: 403}},
		{"secure: no token", true, csrfPost{cookie: true, origin: "https://example.com", wantStatus: 403}},
		{"secure: same origin", true, csrfPost{token: good, cookie: true, origin: "https://example.com", wantStatus: 200}},
		{"secure: same-host referer", true, csrfPost{token: good, cookie: true, referer: "https://example.com/form", wantStatus: 200}},
		{"secure: no origin or referer", true, csrfPost{token: good, cookie: true, wantStatus: 403}},
		{"secure: plain-http origin", true, csrfPost{token: good, cookie: true, origin: "http://example.com", wantStatus: 403}},
		{"secure: plain-http referer", true, csrfPost{token: good, cookie: true, referer: "http://example.com/form", wantStatus: 403}},
		{"secure: foreign origin", true, csrfPost{token: good, cookie: true, origin: "https://evil.example", wantStatus: 403}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := "http://example.com"
			if tt.secure {
				base = "https://example.com"
			}
			app, logs := csrfTestApp(t, tt.secure)
			cookie, token := fetchForm(t, app, base)
			if cookie.Secure != tt.secure || !cookie.HttpOnly || cookie.Path != "/" || cookie.SameSite != http.SameSiteLaxMode {
				t.Fatalf("cookie = %+v", cookie)
			}
			p := tt.post
			if p.token == good {
				p.token = token
			}
			if p.header == good {
				p.header = token
			}
			w := postForm(t, app, base, cookie, p)
			if w.Code != p.wantStatus {
				t.Fatalf("POST = %d, want %d: %s", w.Code, p.wantStatus, w.Body.String())
			}
			body := w.Body.String()
			if p.wantStatus == 200 {
				if body != "accepted" {
					t.Fatalf("body = %q", body)
				}
				return
			}
			if w.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
				!strings.Contains(body, "The form expired, please go back and try again.") ||
				!strings.Contains(body, "<code>rid-csrf</code>") {
				t.Fatalf("not the error page: %s %s", w.Header().Get("Content-Type"), body)
			}
			if !strings.Contains(logs.String(), "csrf check failed") || !strings.Contains(logs.String(), `"request_id":"rid-csrf"`) {
				t.Fatalf("failure not logged: %s", logs.String())
			}
		})
	}
}

func TestCSRF_WithoutPagesOptionRendersErrorPage(t *testing.T) {
	h := NewCSRF(bytes.Repeat([]byte{1}, 32), false, "c")(http.NotFoundHandler())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/x", nil))
	if w.Code != 403 || !strings.Contains(w.Body.String(), "The form expired, please go back and try again.") ||
		!strings.Contains(w.Body.String(), "<!DOCTYPE html>") {
		t.Fatalf("got %d %s", w.Code, w.Body.String())
	}
}

func TestCSRFField_EmptyOutsideMiddleware(t *testing.T) {
	if got := csrfField(httptest.NewRequest(http.MethodGet, "/", nil)); got != "" {
		t.Fatalf("csrfField = %q", got)
	}
}
