package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSafeReturnTo_AdmitsTheHostsAuthorizePaths(t *testing.T) {
	s := &Server{opts: Options{ReturnPaths: []string{"/auth/authorize", "/tenants/"}}, mount: mountInfo{base: "/mfa"}}
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"/oauth2/auth?client_id=rp", true}, // otpstep's own paths still
		{"/auth/authorize?client_id=rp", true},
		{"/auth/authorize", true},
		{"/auth/authorize/x", false}, // no / at the end: that path only
		{"/tenants/a/authorize?x=1", true},
		{"/mfa/login/otp?return_to=%2Fauth%2Fauthorize", true},
		// The link route under the prefix (the OTP page returns there).
		{"/mfa/federated-identities/acme/link", true},
		{"/mfa/federated-identities/acme/link?return_to=%2Fauth%2Fauthorize", true},
		{"/mfa/federated-identities/acme/callback", false},
		{"/mfa/federated-identities/acme/x/link", false},
		{"/mfa/federated-identities//link", false},
		{"/mfa/oauth2/auth", false}, // the host's authorize paths are ReturnPaths
		{"/other/federated-identities/acme/link", false},
		{"/elsewhere", false},
		{"", false},
		{"//evil.example/auth/authorize", false},
		{"https://evil.example/auth/authorize", false},
		{"/auth/authorize\\@evil", false},
		{"/auth/authorize\r\nSet-Cookie: x", false},
	} {
		if _, got := s.safeReturnTo(tc.raw); got != tc.want {
			t.Errorf("safeReturnTo(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestPages_StaticPrefixAndHiddenLogout(t *testing.T) {
	p, err := NewPages(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetStaticPrefix("/mfa/static/")
	rec := httptest.NewRecorder()
	p.Render(rec, httptest.NewRequest("GET", "/mfa/login/otp", nil), 200, "logged_in", LoggedInPage{Email: "a@example.com", HideLogout: true})
	body := rec.Body.String()
	if !strings.Contains(body, `href="/mfa/static/otpstep.css?v=`) {
		t.Fatalf("stylesheet not under the prefix:\n%s", body)
	}
	if strings.Contains(body, `href="/logout"`) {
		t.Fatal("HideLogout still links /logout")
	}
	rec = httptest.NewRecorder()
	p.Render(rec, httptest.NewRequest("GET", "/", nil), 200, "logged_in", LoggedInPage{Email: "a@example.com"})
	if !strings.Contains(rec.Body.String(), `href="/logout"`) {
		t.Fatal("the standalone page lost its Sign out link")
	}
}
