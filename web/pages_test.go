package web

import (
	"bytes"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/web/requestid"
)

func newTestPages(t *testing.T) (*Pages, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	p, err := NewPages(slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewPages: %v", err)
	}
	return p, &logs
}

func renderPage(t *testing.T, p *Pages, method string, status int, name string, data any) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/page", nil)
	r = r.WithContext(requestid.NewContext(r.Context(), "rid-9"))
	w := httptest.NewRecorder()
	p.Render(w, r, status, name, data)
	return w
}

const testCSRFField = template.HTML(`<input type="hidden" name="csrf_token" value="tok">`)

func TestPages_Render(t *testing.T) {
	p, _ := newTestPages(t)
	tests := []struct {
		name    string
		page    string
		data    any
		want    []string
		notWant []string
	}{
		{"login", "login", LoginPage{Email: "j@example.com", ReturnTo: "/oauth2/auth?client_id=a&state=b", CSRFField: testCSRFField},
			[]string{
				`<form method="post" action="/login">`,
				`<input id="email" name="email" type="email" autocomplete="username" required value="j@example.com">`,
				`<input id="password" name="password" type="password" autocomplete="current-password" required>`,
				`<input type="hidden" name="return_to" value="/oauth2/auth?client_id=a&amp;state=b">`,
				`<label for="email">Email</label>`, `<label for="password">Password</label>`,
				string(testCSRFField),
			},
			[]string{`role="alert"`, `class="partners"`, `aria-invalid`}},
		{"login error and partners", "login", LoginPage{Error: "The email or password is not right.", CSRFField: testCSRFField,
			Partners: []PartnerLink{{Name: "Acme", URL: "/federated-identities/acme/login"}}},
			[]string{
				`<p class="message error" role="alert" id="form-error">The email or password is not right.</p>`,
				`aria-describedby="form-error"`,
				`required value="" aria-invalid="true" aria-describedby="form-error">`,
				`autocomplete="current-password" required aria-invalid="true" aria-describedby="form-error">`,
				`<a class="button secondary" href="/federated-identities/acme/login">Sign in with Acme</a>`,
			}, nil},
		{"login escapes input", "login", LoginPage{Email: `"><script>alert(1)</script>`, ReturnTo: `"><b>`,
			Partners: []PartnerLink{{Name: "<i>x</i>", URL: "javascript:alert(1)"}}},
			[]string{`value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`, `href="#ZgotmplZ"`, `Sign in with &lt;i&gt;x&lt;/i&gt;`},
			[]string{`<script>`, `javascript:`}},
		{"login custom action", "login", LoginPage{Action: "/auth/login"}, []string{`action="/auth/login"`}, nil},
		{"otp destination", "login_otp", OTPPage{Destination: "j***@example.com", ReturnTo: "/oauth2/auth?x=1", CSRFField: testCSRFField},
			[]string{
				`<p class="message notice" role="status">We sent a code to j***@example.com.</p>`,
				`<form method="post" action="/login/otp">`,
				`<input id="otp" name="otp" type="text" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9]*" maxlength="10" required aria-describedby="otp-hint">`,
				`<label for="otp">One-time code</label>`,
				`<form method="post" action="/login/otp/resend" class="secondary-form">`,
				`<button type="submit" class="secondary">Send a new code</button>`,
				`<input type="hidden" name="return_to" value="/oauth2/auth?x=1">`,
			}, []string{`role="alert"`}},
		{"otp message wins and error shown", "login_otp", OTPPage{Destination: "j***@example.com", Message: "A new code is on its way.",
			Error: "That code is not right.", ResendAction: "/x/resend"},
			[]string{
				`<p class="message notice" role="status">A new code is on its way.</p>`,
				`<p class="message error" role="alert" id="form-error">That code is not right.</p>`,
				`aria-describedby="otp-hint form-error"`,
				`action="/x/resend"`,
			}, []string{"We sent a code"}},
		{"consent", "consent", ConsentPage{ClientName: "Acme <App>", Scopes: []string{"openid", "email", "custom:thing"},
			AuthorizeQuery: "client_id=acme&scope=openid+email&state=%22x%22", CSRFField: testCSRFField},
			[]string{
				`<strong>Acme &lt;App&gt;</strong>`,
				`<li>Confirm who you are <code>openid</code></li>`,
				`<li>See your email address <code>email</code></li>`,
				`<li>Other access the app asks for: <code>custom:thing</code></li>`,
				`<form method="post" action="/oauth2/consent">`,
				`<input type="hidden" name="authorize_query" value="client_id=acme&amp;scope=openid&#43;email&amp;state=%22x%22">`,
				`<button type="submit" name="consent" value="allow">Allow</button>`,
				`<button type="submit" name="consent" value="deny" class="secondary">Deny</button>`,
				string(testCSRFField),
			}, nil},
		{"logged out nil data", "logged_out", nil, []string{`<h1>You are signed out</h1>`}, []string{"Continue"}},
		{"logged out continue", "logged_out", LogoutPage{ReturnTo: "/oauth2/auth?a=b"},
			[]string{`<a class="button secondary" href="/oauth2/auth?a=b">Continue</a>`}, nil},
		{"logged in", "logged_in", LoggedInPage{Email: "j@example.com"}, []string{`Signed in as <strong>j@example.com</strong>`}, nil},
		{"logout confirm", "logout_confirm", LogoutPage{CSRFField: testCSRFField, ReturnTo: "/x"},
			[]string{`<form method="post" action="/logout">`, string(testCSRFField), `<input type="hidden" name="return_to" value="/x">`,
				`<button type="submit">Sign out</button>`}, nil},
		{"error", "error", ErrorPage{Message: "The sign-in request is not valid.", RequestID: "rid-9"},
			[]string{`<p class="message error" role="alert">The sign-in request is not valid.</p>`, `Error id: <code>rid-9</code>`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := renderPage(t, p, http.MethodGet, http.StatusOK, tt.page, tt.data)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", w.Code, w.Body.String())
			}
			if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Fatalf("Content-Type = %q", got)
			}
			body := w.Body.String()
			assertLayout(t, p, body)
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %s\n%s", s, body)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(body, s) {
					t.Errorf("page has %s\n%s", s, body)
				}
			}
		})
	}
}

var inlineHandler = regexp.MustCompile(`\son[a-z]+=`)

// assertLayout checks what every page shares: the viewport, the stylesheet,
// and nothing the Content-Security-Policy would block.
func assertLayout(t *testing.T, p *Pages, body string) {
	t.Helper()
	for _, s := range []string{
		"<!DOCTYPE html>", `<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<link rel="stylesheet" href="/static/otpstep.css?v=` + p.versions["otpstep.css"] + `">`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %s", s)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") || strings.Contains(body, "<style") ||
		inlineHandler.MatchString(body) {
		t.Errorf("page has inline script or style:\n%s", body)
	}
}

func TestPages_RenderKeepsStatus(t *testing.T) {
	p, _ := newTestPages(t)
	w := renderPage(t, p, http.MethodPost, http.StatusTooManyRequests, "login", LoginPage{Error: "Too many"})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status = %d", w.Code)
	}
}

func TestPages_TemplateErrorIsCleanErrorPage(t *testing.T) {
	p, logs := newTestPages(t)
	// ErrorPage has no Email field: the login template fails half-way.
	w := renderPage(t, p, http.MethodGet, http.StatusOK, "login", ErrorPage{Message: "x"})
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", w.Code)
	}
	body := w.Body.String()
	if strings.Contains(body, "<h1>Sign in</h1>") {
		t.Fatalf("half-rendered login page leaked:\n%s", body)
	}
	if !strings.Contains(body, "Something went wrong. Please try again.") || !strings.Contains(body, "<code>rid-9</code>") {
		t.Fatalf("not the error page:\n%s", body)
	}
	if !strings.Contains(logs.String(), `"page":"login"`) || !strings.Contains(logs.String(), `"request_id":"rid-9"`) {
		t.Fatalf("failure not logged: %s", logs.String())
	}
}

func TestPages_UnknownPageIs500(t *testing.T) {
	p, logs := newTestPages(t)
	w := renderPage(t, p, http.MethodGet, http.StatusOK, "nope", nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "<code>rid-9</code>") {
		t.Fatalf("got %d %s", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), `unknown page`) {
		t.Fatalf("not logged: %s", logs.String())
	}
}

func TestPages_HeadHasNoBody(t *testing.T) {
	p, _ := newTestPages(t)
	w := renderPage(t, p, http.MethodHead, http.StatusOK, "logged_out", nil)
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("got %d with %d bytes", w.Code, w.Body.Len())
	}
}

func TestPages_StaticHandler(t *testing.T) {
	p, _ := newTestPages(t)
	srv := httptest.NewServer(SecurityHeaders(false)(http.StripPrefix("/static/", p.StaticHandler())))
	defer srv.Close()
	version := p.versions["otpstep.css"]
	if len(version) != 12 {
		t.Fatalf("css version %q", version)
	}
	tests := []struct {
		name        string
		path        string
		ifNoneMatch string
		wantStatus  int
		wantCache   string
	}{
		{"versioned", "/static/otpstep.css?v=" + version, "", 200, "public, max-age=31536000, immutable"},
		{"unversioned", "/static/otpstep.css", "", 200, "public, max-age=3600"},
		{"not modified", "/static/otpstep.css?v=" + version, `"` + version + `"`, 304, "public, max-age=31536000, immutable"},
		{"directory", "/static/", "", 404, "no-store"},
		{"unknown", "/static/missing.css", "", 404, "no-store"},
		{"escape", "/static/../templates/login.html", "", 404, "no-store"},
		{"encoded escape", "/static/..%2ftemplates%2flogin.html", "", 404, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if tt.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
			}
			if tt.wantStatus == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				if resp.Header.Get("ETag") != `"`+version+`"` || !bytes.Contains(body, []byte(":focus-visible")) {
					t.Errorf("ETag %q, body %d bytes", resp.Header.Get("ETag"), len(body))
				}
			}
		})
	}
}
