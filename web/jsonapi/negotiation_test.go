package jsonapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckContentType(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int // 0: accepted
	}{
		{"json", "application/json", "{}", 0},
		{"json with charset", "application/json; charset=utf-8", "{}", 0},
		{"json upper case", "Application/JSON", "{}", 0},
		{"jsonapi", "application/vnd.api+json", "{}", 0},
		{"jsonapi with ext parameter", `application/vnd.api+json; ext="https://jsonapi.org/ext/atomic"`, "{}", 415},
		{"jsonapi with charset parameter", "application/vnd.api+json; charset=utf-8", "{}", 415},
		{"form", "application/x-www-form-urlencoded", "a=b", 415},
		{"text", "text/plain", "{}", 415},
		{"malformed", "application/", "{}", 415},
		{"body without content type", "", "{}", 415},
		{"no body no content type", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			got := CheckContentType(r)
			assertStatus(t, got, tt.wantStatus, CodeUnsupportedMediaType)
		})
	}
}

func TestCheckAccept(t *testing.T) {
	tests := []struct {
		name       string
		accept     []string
		wantStatus int
	}{
		{"absent", nil, 0},
		{"empty", []string{""}, 0},
		{"any", []string{"*/*"}, 0},
		{"application any", []string{"application/*"}, 0},
		{"json", []string{"application/json"}, 0},
		{"json with charset", []string{"application/json; charset=utf-8"}, 0},
		{"jsonapi", []string{"application/vnd.api+json"}, 0},
		{"jsonapi with q", []string{"application/vnd.api+json;q=0.9"}, 0},
		{"jsonapi with ext only", []string{`application/vnd.api+json; ext="https://jsonapi.org/ext/atomic"`}, 406},
		{"jsonapi with ext and plain json", []string{`application/vnd.api+json; ext=x, application/json`}, 0},
		{"browser default", []string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, 0},
		{"html only", []string{"text/html"}, 406},
		{"xml only", []string{"application/xml"}, 406},
		{"json refused with q=0", []string{"application/json;q=0"}, 406},
		{"second header allows", []string{"text/html", "application/json"}, 0},
		{"garbage", []string{";;;"}, 406},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			for _, a := range tt.accept {
				r.Header.Add("Accept", a)
			}
			assertStatus(t, CheckAccept(r), tt.wantStatus, CodeNotAcceptable)
		})
	}
}

func assertStatus(t *testing.T, got *Error, wantStatus int, wantCode string) {
	t.Helper()
	if wantStatus == 0 {
		if got != nil {
			t.Fatalf("got %v, want accepted", got)
		}
		return
	}
	if got == nil {
		t.Fatalf("accepted, want %d", wantStatus)
	}
	if got.Status != wantStatus || got.Code != wantCode {
		t.Fatalf("got %d %s, want %d %s", got.Status, got.Code, wantStatus, wantCode)
	}
}

// TestCheckNegotiation: 406 before 415 (a request wrong in both gets the
// Accept answer), either alone as its own check answers.
func TestCheckNegotiation(t *testing.T) {
	for _, tt := range []struct {
		name, accept, contentType string
		wantStatus                int
		wantCode                  string
	}{
		{"both fine", "application/json", "application/json", 0, ""},
		{"accept wrong", "text/html", "application/json", 406, CodeNotAcceptable},
		{"content type wrong", "application/json", "text/plain", 415, CodeUnsupportedMediaType},
		{"both wrong", "text/html", "text/plain", 406, CodeNotAcceptable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader("{}"))
			r.Header.Set("Accept", tt.accept)
			r.Header.Set("Content-Type", tt.contentType)
			assertStatus(t, CheckNegotiation(r), tt.wantStatus, tt.wantCode)
		})
	}
}
