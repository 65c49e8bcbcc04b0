package plugin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin/plugintest"
)

// uncleanResponse is what a path that gorilla/mux would clean answered.
type uncleanResponse struct {
	status int
	header http.Header
	body   []byte
}

// sendUnclean sends method to base+path exactly as written (no client-side
// cleaning, no redirect followed).
func sendUnclean(t *testing.T, method, base, path string) uncleanResponse {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(`{"userId":"`+uuid.NewString()+`","passedLoginOTP":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := strings.Cut(path, "?"); req.URL.Path != p {
		t.Fatalf("the client changed the path %q to %q", path, req.URL.Path)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := plugintest.NoRedirectClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return uncleanResponse{status: resp.StatusCode, header: resp.Header, body: body}
}

// requireOTPStepHeaders: the request id and the security headers of
// web.SecurityHeaders, as on every other otpstep response.
func requireOTPStepHeaders(t *testing.T, path string, r uncleanResponse) {
	t.Helper()
	h := r.header
	if h.Get("X-Request-Id") == "" {
		t.Fatalf("%s: %d without X-Request-Id: %v", path, r.status, h)
	}
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
		"Cache-Control":          "no-store",
	} {
		if got := h.Get(name); got != want {
			t.Fatalf("%s: %s = %q, want %q", path, name, got, want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("%s: Content-Security-Policy %q", path, csp)
	}
}

// requireJSONAPI404: a JSON:API not-found whose id is the request id.
func requireJSONAPI404(t *testing.T, path string, r uncleanResponse) {
	t.Helper()
	if r.status != http.StatusNotFound || r.header.Get("Location") != "" {
		t.Fatalf("%s: %d (Location %q), want a 404: %s", path, r.status, r.header.Get("Location"), r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/vnd.api+json" {
		t.Fatalf("%s: Content-Type %q", path, ct)
	}
	var doc struct {
		Errors []struct{ ID, Status, Code string }
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || len(doc.Errors) != 1 {
		t.Fatalf("%s: body %s (%v)", path, r.body, err)
	}
	e := doc.Errors[0]
	if e.Status != "404" || e.Code != "not-found" || e.ID != r.header.Get("X-Request-Id") {
		t.Fatalf("%s: error %+v, request id %q", path, e, r.header.Get("X-Request-Id"))
	}
}

// TestCleanedPaths_Standalone: paths gorilla/mux cleans answered a bare 301
// (no request id, no security headers) before any middleware ran. Under
// the API prefix they are a JSON:API 404 now; elsewhere still a 301 to the
// clean path, with otpstep's headers.
func TestCleanedPaths_Standalone(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		sid := uuid.NewString()
		for _, path := range []string{
			"//user/2024-3/sessions/" + sid,
			"/user/2024-3//sessions/" + sid,
			"/user/2024-3/./sessions/" + sid,
			"/user/2024-3/sessions/x/../" + sid,
			"/user/2024-3/sessions/" + sid + "/.",
			"/static/../user/2024-3/sessions/" + sid,
		} {
			r := sendUnclean(t, http.MethodPut, srv.URL, path)
			requireJSONAPI404(t, path, r)
			requireOTPStepHeaders(t, path, r)
		}
		for path, want := range map[string]string{
			"//login":                            "/login",
			"/login/./otp":                       "/login/otp",
			"/oauth2/x/../auth?client_id=rp":     "/oauth2/auth?client_id=rp",
			"//.well-known/openid-configuration": "/.well-known/openid-configuration",
			"/nope//":                            "/nope/",
		} {
			r := sendUnclean(t, http.MethodGet, srv.URL, path)
			if r.status != http.StatusMovedPermanently || r.header.Get("Location") != want {
				t.Fatalf("%s: %d Location %q, want 301 to %s", path, r.status, r.header.Get("Location"), want)
			}
			requireOTPStepHeaders(t, path, r)
		}
	})
}

// TestCleanedPaths_Embedded: the same under a host's prefix, for a host
// whose router does not clean paths itself (SkipClean, as README's
// embedding section asks); the host's own unclean paths stay the host's.
func TestCleanedPaths_Embedded(t *testing.T) {
	for _, prefix := range []string{"/mfa", ""} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			hp := &plugintest.HostPlugin{Prefix: prefix}
			h := plugintest.StartHost(t, hp)
			sid := uuid.NewString()
			for _, path := range []string{
				prefix + "//user/2024-3/sessions/" + sid,
				prefix + "/user/2024-3/./sessions/" + sid,
				prefix + "/user/2024-3/sessions/x/../" + sid,
				prefix + "/user/2024-3/./nope",
			} {
				r := sendUnclean(t, http.MethodPut, h.URL, path)
				requireJSONAPI404(t, path, r)
				requireOTPStepHeaders(t, path, r)
			}
			path := prefix + "/login/./otp"
			r := sendUnclean(t, http.MethodGet, h.URL, path)
			if r.status != http.StatusMovedPermanently || r.header.Get("Location") != prefix+"/login/otp" {
				t.Fatalf("%s: %d Location %q", path, r.status, r.header.Get("Location"))
			}
			requireOTPStepHeaders(t, path, r)
			// A path of the host's own, cleaned or not, is none of otpstep's business.
			for _, path := range []string{"/host/./ping", "//host/ping", prefix + "/./nope"} {
				r := sendUnclean(t, http.MethodGet, h.URL, path)
				if r.header.Get("X-Request-Id") != "" || r.header.Get("Content-Security-Policy") != "" {
					t.Fatalf("%s: otpstep answered the host's path: %d %v", path, r.status, r.header)
				}
			}
		})
	}
}
