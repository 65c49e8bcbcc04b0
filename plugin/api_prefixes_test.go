package plugin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/web/openapitest"
)

// servedAt calls POST {prefix}/user/otp/verify without a token: a served
// prefix answers the user API's 401 (JSON:API), one not served 404.
func servedAt(t *testing.T, base, prefix string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+prefix+"/user/otp/verify", strings.NewReader(`{"otp":"123456"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// api.prefixes: the same user API under every prefix (default /user/2024-2,
// which PACE's SDKs call, and /user/2024-3); api.prefix alone serves one.
func TestAPIPrefixes_EveryPrefixServesTheUserAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		client := srv.NewLoginUI(t, allUserScopes...)
		login := srv.LoginWithPassword(t, client, srv.NewUser(t))
		for _, prefix := range []string{"/user/2024-2", "/user/2024-3"} {
			if got := servedAt(t, srv.URL, prefix); got != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d, want 401", prefix, got)
			}
			api := &apiClient{t: t, srv: srv, v: openapitest.LoadPrefix(t, prefix)}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+prefix+"/user/otp/verify", strings.NewReader(`{"otp":"000000","types":["login"]}`))
			req.Header.Set("Authorization", "Bearer "+login.Token.AccessToken)
			req.Header.Set("Content-Type", "application/json")
			if resp, body := api.v.CheckRoundTrip(t, http.DefaultClient, req); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s wrong code: %d %s, want 404", prefix, resp.StatusCode, body)
			}
		}
		if got := servedAt(t, srv.URL, "/user/2024-1"); got != http.StatusNotFound {
			t.Errorf("/user/2024-1: %d, want 404", got)
		}

		one := plugintest.Start(t, dialect, func(c *plugin.Config) { c.API.Prefixes, c.API.Prefix = nil, "/v9" })
		if got := servedAt(t, one.URL, "/v9"); got != http.StatusUnauthorized {
			t.Errorf("api.prefix /v9: %d, want 401", got)
		}
		for _, prefix := range []string{"/user/2024-2", "/user/2024-3"} {
			if got := servedAt(t, one.URL, prefix); got != http.StatusNotFound {
				t.Errorf("api.prefix /v9, %s: %d, want 404", prefix, got)
			}
		}
	})
}

// Embedded, every prefix is served below the plugin's mount prefix, and an
// unclean path under any of them is the user API's JSON:API 404 (behind a
// gorilla/mux host that skips cleaning).
func TestAPIPrefixes_Embedded(t *testing.T) {
	for _, serveMux := range []bool{false, true} {
		hp := &plugintest.HostPlugin{Prefix: "/mfa"}
		var h *plugintest.Host
		if serveMux {
			h = plugintest.StartServeMuxHost(t, hp)
		} else {
			h = plugintest.StartHost(t, hp)
		}
		for _, prefix := range []string{"/user/2024-2", "/user/2024-3"} {
			if got := servedAt(t, h.URL, "/mfa"+prefix); got != http.StatusUnauthorized {
				t.Errorf("serveMux %v, /mfa%s: %d, want 401", serveMux, prefix, got)
			}
			if serveMux {
				continue // net/http's ServeMux cleans the path before otpstep sees it
			}
			resp, err := http.Get(h.URL + "/mfa" + prefix + "/./nope")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/vnd.api+json" {
				t.Errorf("serveMux %v, unclean path under /mfa%s: %d %s", serveMux, prefix, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
	}
}
