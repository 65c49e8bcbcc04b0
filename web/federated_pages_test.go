package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestPages_FederatedPages(t *testing.T) {
	p, _ := newTestPages(t)
	tests := []struct {
		name, page string
		data       any
		want       []string
		notWant    []string
	}{
		{"link confirmation", "federated_link", FederatedLinkPage{Provider: "acme", Action: "/mfa/federated-identities/acme/link",
			ReturnTo: "/oauth2/auth?a=b&c=d", CSRFField: testCSRFField},
			[]string{`<h1>Link your acme account?</h1>`, `<form method="post" action="/mfa/federated-identities/acme/link">`,
				string(testCSRFField), `<input type="hidden" name="return_to" value="/oauth2/auth?a=b&amp;c=d">`,
				`<button type="submit">Link</button>`}, nil},
		{"link confirmation escapes", "federated_link", FederatedLinkPage{Provider: "<b>x</b>", Action: "javascript:alert(1)", ReturnTo: `"><b>`},
			[]string{`&lt;b&gt;x&lt;/b&gt;`, `action="#ZgotmplZ"`}, []string{`<b>x</b>`, `javascript:`, `"><b>`}},
		{"linked", "federated_linked", FederatedLinkedPage{Provider: "acme"},
			[]string{`<h1>Account linked</h1>`, `Your acme account is now linked to this account.`}, nil},
		{"not linked", "federated_not_linked", FederatedNotLinkedPage{Provider: "acme", LoginURL: "/login?return_to=%2Foauth2%2Fauth%3Fa%3Db"},
			[]string{`This acme account is not linked to an account here`, `<a class="button" href="/login?return_to=%2Foauth2%2Fauth%3Fa%3Db">`}, nil},
		{"not linked escapes", "federated_not_linked", FederatedNotLinkedPage{Provider: "<b>x</b>", LoginURL: "javascript:alert(1)"},
			[]string{`&lt;b&gt;x&lt;/b&gt;`, `href="#ZgotmplZ"`}, []string{`<b>x</b>`, `javascript:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := renderPage(t, p, http.MethodGet, http.StatusOK, tt.page, tt.data)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", w.Code, w.Body.String())
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

// TestSafeReturnTo_AcceptsTheLinkRoute: standalone, the link route is a
// return_to as it is embedded under the prefix (one rule, returnable); the
// other routes of an upstream are not (they were, by a prefix, standalone).
func TestSafeReturnTo_AcceptsTheLinkRoute(t *testing.T) {
	s := &Server{}
	for _, raw := range []string{"/federated-identities/acme/link", "/federated-identities/acme/link?return_to=%2Flogin%2Fotp",
		"/oauth2/auth?client_id=rp", "/login/otp", "/settings/totp"} {
		if got, ok := s.safeReturnTo(raw); !ok || got != raw {
			t.Errorf("safeReturnTo(%q) = %q, %v", raw, got, ok)
		}
	}
	for _, raw := range []string{"/federated-identities/acme/callback", "/federated-identities/acme/login", "/federated-identities/",
		"/login", "/oauth2/token", "//evil.example/oauth2/auth", "/oauth2/auth\\@evil"} {
		if got, ok := s.safeReturnTo(raw); ok {
			t.Errorf("safeReturnTo(%q) = %q, accepted", raw, got)
		}
	}
}
