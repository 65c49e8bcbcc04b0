package plugin_test

import (
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
)

var pinScopes = []string{"user:otp:create", "user:users.pin:check", "user:users.pin:update", "user:users.password:check"}

func pinBody(pin, otp string) string {
	return `{"data":{"type":"pin","id":"d7101f72-a672-453c-9d36-d5809ef0ded6","attributes":{"pin":"` + pin + `","otp":"` + otp + `"}}}`
}

// PACE's PIN routes in order: no PIN (404), an insecure PIN (406, no code
// spent), a wrong account code (403), the PIN set (200), then the checks
// see it and CreateOTP re-authenticates with it.
func TestPIN_SetAndCheck(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewClient(t, false, pinScopes...)
		onlyPIN := srv.NewClient(t, false, "user:users.pin:check")
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
		weak := srv.LoginWithPassword(t, onlyPIN, alice).Token.AccessToken

		if r := api.do(http.MethodGet, "/user/pin", tok, "", ""); r.Status != 404 || r.errorCode(t) != "not-found" {
			t.Fatalf("no PIN yet: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodGet, "/user/pin-or-password", tok, "", ""); r.Status != 200 || r.json(t)["pin"] != false || r.json(t)["password"] != true {
			t.Fatalf("pin-or-password before: %d %s", r.Status, r.Body)
		}
		created := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"password":"`+alice.Password+`"}`)
		if created.Status != 201 {
			t.Fatalf("account code: %d %s", created.Status, created.Body)
		}
		code, _ := created.json(t)["otp"].(string)
		for _, bad := range []string{"1234", "4321", "1122", "123", "12a4"} {
			r := api.do(http.MethodPut, "/user/pin", tok, "application/vnd.api+json", pinBody(bad, code))
			if r.Status != 406 || r.errorCode(t) != "pin-not-secure" {
				t.Fatalf("PIN %q: %d %s", bad, r.Status, r.Body)
			}
			if p, _ := r.errorObject(t)["source"].(map[string]any)["pointer"].(string); p != "/data/attributes/pin" {
				t.Fatalf("PIN %q: pointer %q", bad, p)
			}
		}
		if r := api.do(http.MethodPut, "/user/pin", tok, "application/vnd.api+json", pinBody("8350", wrongCode(code))); r.Status != 403 || r.errorCode(t) != "invalid-credentials" {
			t.Fatalf("wrong code: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPut, "/user/pin", tok, "application/vnd.api+json", `{"data":{"type":"user","attributes":{"pin":"8350","otp":"`+code+`"}}}`); r.Status != 422 {
			t.Fatalf("wrong type: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPut, "/user/pin", weak, "application/vnd.api+json", pinBody("8350", code)); r.Status != 403 || r.errorCode(t) != "insufficient-scope" {
			t.Fatalf("without pin:update: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPut, "/user/pin", tok, "application/vnd.api+json", pinBody("8350", code)); r.Status != 200 {
			t.Fatalf("set PIN: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPut, "/user/pin", tok, "application/vnd.api+json", pinBody("8351", code)); r.Status != 403 {
			t.Fatalf("the code again: %d %s, want 403 (used)", r.Status, r.Body)
		}
		if r := api.do(http.MethodGet, "/user/pin", tok, "", ""); r.Status != 200 {
			t.Fatalf("PIN set: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodGet, "/user/pin-or-password", tok, "", ""); r.Status != 200 || r.json(t)["pin"] != true || r.json(t)["password"] != true {
			t.Fatalf("pin-or-password after: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodGet, "/user/pin-or-password", weak, "", ""); r.Status != 403 || r.errorCode(t) != "insufficient-scope" {
			t.Fatalf("pin-or-password without password:check: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodGet, "/user/password", tok, "", ""); r.Status != 200 {
			t.Fatalf("password: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(31e9) // past otp.resend_interval of the first account code
		if r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"pin":"8350"}`); r.Status != 201 {
			t.Fatalf("CreateOTP with the PIN: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"pin":"8351"}`); r.Status != 404 {
			t.Fatalf("CreateOTP with a wrong PIN: %d %s", r.Status, r.Body)
		}
	})
}

// A user an embedding host authenticates has no password in otpstep:
// CheckUserPassword answers 404 and pin-or-password says so.
func TestPIN_HostUserHasNoPassword(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	h := plugintest.StartHost(t, hp)
	u := h.NewUser(t)
	ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:users.pin:check", "user:users.password:check")
	verifier := oauth2.GenerateVerifier()
	tok := h.Exchange(t, ui, h.HostLogin(t, plugintest.NewBrowser(t), hp, ui, u, verifier), verifier)
	if status, body := hostAPI(t, h, hp, http.MethodGet, "/user/password", tok.AccessToken, nil); status != http.StatusNotFound {
		t.Fatalf("password of a host user: %d %v", status, body)
	}
	if status, body := hostAPI(t, h, hp, http.MethodGet, "/user/pin-or-password", tok.AccessToken, nil); status != http.StatusOK || body["pin"] != false || body["password"] != false {
		t.Fatalf("pin-or-password of a host user: %d %v", status, body)
	}
}
