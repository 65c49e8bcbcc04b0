package plugin_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/web/openapitest"
)

// OIDC Core §5.3.1 lets a client POST the UserInfo request, and RFC 6750
// §2.2 carry the token as the form's access_token (mod_auth_openidc's
// OIDCUserInfoTokenMethod post_param; it was 401): the claims as for the
// header. The header and the body at once, or the body's token twice, are
// invalid_request (RFC 6750 §2: one method per request); an inactive body
// token is invalid_token. Responses checked against web/openapi.yaml.
func TestUserinfo_AccessTokenInAPostForm(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		v := openapitest.Load(t)
		r := newRP(t, srv, provider.NewClient{})
		tok, _, _ := r.codeFlow(t)
		post := func(body string, header string) (int, map[string]any, string) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/userinfo", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if header != "" {
				req.Header.Set("Authorization", "Bearer "+header)
			}
			resp, raw := v.CheckRoundTrip(t, http.DefaultClient, req)
			var out map[string]any
			_ = json.Unmarshal(raw, &out)
			return resp.StatusCode, out, resp.Header.Get("WWW-Authenticate")
		}
		form := url.Values{"access_token": {tok.AccessToken}}.Encode()
		if code, claims, _ := post(form, ""); code != http.StatusOK || claims["sub"] != r.userID || claims["email"] != r.email {
			t.Fatalf("token in the body: %d %v", code, claims)
		}
		if code, claims, _ := post("", tok.AccessToken); code != http.StatusOK || claims["sub"] != r.userID {
			t.Fatalf("token in the header of a POST: %d %v", code, claims)
		}
		if code, body, www := post(form, tok.AccessToken); code != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.Contains(www, `error="invalid_request"`) {
			t.Fatalf("header and body: %d %v %q", code, body, www)
		}
		if code, body, _ := post(form+"&"+form, ""); code != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Fatalf("the body's token twice: %d %v", code, body)
		}
		if code, body, _ := post(url.Values{"access_token": {"not-a-token"}}.Encode(), ""); code != http.StatusUnauthorized || body["error"] != "invalid_token" {
			t.Fatalf("an inactive token in the body: %d %v", code, body)
		}
	})
}
