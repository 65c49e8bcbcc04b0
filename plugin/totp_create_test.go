package plugin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/web/openapitest"
)

// createTOTPScopes are the scopes of a login UI that makes device TOTPs
// and verifies their codes.
var createTOTPScopes = []string{"user:device-totps:create", "user:otp:verify", "user:otp:create"}

// totpFlavour is how one of PACE's generated SDKs sends a request with a
// body: iOS (PACECloudSDK/API/User/Generated/Requests/TOTP/UserAPICreateTOTP.swift)
// sets the content type it declares, application/vnd.api+json, and Accept
// equal to it; Android (api/user/generated/request/totp/CreateTOTPAPI.kt,
// through its retrofit client) sends Content-Type application/json.
type totpFlavour struct {
	name, contentType, accept string
}

var totpFlavours = []totpFlavour{
	{"ios", "application/vnd.api+json", "application/vnd.api+json"},
	{"android", "application/json", "application/vnd.api+json"},
}

// postTOTP sends CreateTOTP as flavour f under prefix, validated against
// web/openapi.yaml.
func postTOTP(t *testing.T, srv *plugintest.Server, prefix string, f totpFlavour, token, body string) apiResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+prefix+"/user/devices/totp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", f.contentType)
	req.Header.Set("Accept", f.accept)
	resp, data := openapitest.LoadPrefix(t, prefix).CheckRoundTrip(t, http.DefaultClient, req)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func totpBody(deviceID string, attrs map[string]string) string {
	data := map[string]any{"type": "deviceTOTP", "id": deviceID}
	if attrs != nil {
		data["attributes"] = attrs
	}
	b, _ := json.Marshal(map[string]any{"data": data})
	return string(b)
}

// createdTOTP reads a 201 of CreateTOTP as PACE's DeviceTOTP model.
func createdTOTP(t *testing.T, r apiResponse, deviceID string) *provider.NewTOTP {
	t.Helper()
	var out struct {
		Data struct {
			Type       string `json:"type"`
			ID         string `json:"id"`
			Attributes struct {
				Secret    string `json:"secret"`
				Period    int    `json:"period"`
				Digits    int    `json:"digits"`
				Algorithm string `json:"algorithm"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if r.Status != http.StatusCreated {
		t.Fatalf("CreateTOTP: %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	a := out.Data.Attributes
	if out.Data.Type != "deviceTOTP" || out.Data.ID != deviceID || a.Secret == "" || a.Period != 30 || a.Digits != 6 || a.Algorithm != "SHA1" ||
		r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != "application/vnd.api+json" {
		t.Fatalf("CreateTOTP body %s, headers %v", r.Body, r.Header)
	}
	return &provider.NewTOTP{DeviceID: out.Data.ID, Secret: a.Secret, Period: a.Period, Digits: a.Digits, Algorithm: a.Algorithm}
}

// CreateTOTP as both SDKs send it, under both prefixes: each credential
// (OTP, password, PIN) makes a TOTP whose codes VerifyOTP device-totp then
// accepts; the secret is sealed at rest.
func TestCreateTOTP_EachCredentialBothSDKsBothPrefixes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewClient(t, false, createTOTPScopes...)
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
		p := srv.Plugin.Provider
		ctx := t.Context()
		accountCode := func() string {
			issued, err := p.IssueOTP(ctx, provider.OTPRequest{Kind: provider.OTPKindAccount, User: alice.User, InResponse: true})
			if err != nil {
				t.Fatal(err)
			}
			srv.Clock.Advance(p.Config().OTP.ResendInterval)
			return issued.Code
		}
		pin := "8350"
		if err := p.SetPIN(ctx, alice.User, pin, accountCode()); err != nil {
			t.Fatal(err)
		}
		for _, prefix := range []string{"/user/2024-2", "/user/2024-3"} {
			for _, f := range totpFlavours {
				for _, cred := range []string{"otp", "password", "pin"} {
					value := map[string]string{"otp": "", "password": alice.Password, "pin": pin}[cred]
					if cred == "otp" {
						value = accountCode()
					}
					device := uuid.NewString()
					k := createdTOTP(t, postTOTP(t, srv, prefix, f, tok, totpBody(device, map[string]string{cred: value})), device)
					srv.Clock.Advance(provider.TOTPPeriod * time.Second)
					if r := api.verify(tok, totpCodeAt(t, k, srv.Clock.Now()), "device-totp"); r.Status != 204 {
						t.Fatalf("%s %s %s: VerifyOTP with the new TOTP's code: %d %s", prefix, f.name, cred, r.Status, r.Body)
					}
				}
			}
		}
		creds, err := srv.Store.ListTOTPCredentials(ctx, alice.ID, "")
		if err != nil || len(creds) != 12 {
			t.Fatalf("stored device TOTPs: %d %v", len(creds), err)
		}
	})
}

// The refusals: wrong credentials → 403 invalid-credentials (a wrong OTP
// then a right password passes, in PACE's order); none → 403 unless the
// -after-login scope and an account under 5 minutes old; the body's type and
// id checked (422); no scope → 403 insufficient-scope. A device's TOTP made
// again replaces the old one.
func TestCreateTOTP_Refusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, srv.NewClient(t, false, createTOTPScopes...), alice).Token.AccessToken
		afterLogin := srv.LoginWithPassword(t, srv.NewClient(t, false, "user:device-totps:create-after-login", "user:otp:verify"), alice).Token.AccessToken
		noScope := srv.LoginWithPassword(t, srv.NewClient(t, false, "user:otp:verify"), alice).Token.AccessToken
		ios := totpFlavours[0]
		prefix := openapitest.DefaultPrefix
		device := uuid.NewString()
		code := func(r apiResponse) string {
			t.Helper()
			return r.errorCode(t)
		}
		if r := postTOTP(t, srv, prefix, ios, tok, totpBody(device, map[string]string{"password": "wrong password"})); r.Status != 403 || code(r) != "invalid-credentials" {
			t.Fatalf("wrong password: %d %s", r.Status, r.Body)
		}
		if r := postTOTP(t, srv, prefix, ios, tok, totpBody(device, map[string]string{"pin": "8350"})); r.Status != 403 || code(r) != "invalid-credentials" {
			t.Fatalf("a PIN of a user without one: %d %s", r.Status, r.Body)
		}
		if r := postTOTP(t, srv, prefix, ios, tok, totpBody(device, map[string]string{"otp": "000000"})); r.Status != 403 || code(r) != "invalid-credentials" {
			t.Fatalf("wrong otp: %d %s", r.Status, r.Body)
		}
		if r := postTOTP(t, srv, prefix, ios, tok, totpBody(device, nil)); r.Status != 403 || code(r) != "invalid-credentials" {
			t.Fatalf("no credentials with the create scope: %d %s", r.Status, r.Body)
		}
		first := createdTOTP(t, postTOTP(t, srv, prefix, ios, tok, totpBody(device, map[string]string{"otp": "000000", "password": alice.Password})), device)
		// Within 5 minutes of the account's creation, -after-login needs nothing.
		second := createdTOTP(t, postTOTP(t, srv, prefix, totpFlavours[1], afterLogin, totpBody(device, map[string]string{})), device)
		if first.Secret == second.Secret {
			t.Fatal("the device's second TOTP has the first's secret")
		}
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		if r := api.verify(afterLogin, totpCodeAt(t, first, srv.Clock.Now()), "device-totp"); r.Status != 404 {
			t.Fatalf("the replaced TOTP's code: %d %s", r.Status, r.Body)
		}
		if r := api.verify(afterLogin, totpCodeAt(t, second, srv.Clock.Now()), "device-totp"); r.Status != 204 {
			t.Fatalf("the new TOTP's code: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(provider.DeviceTOTPFreshAccountWindow)
		if r := postTOTP(t, srv, prefix, ios, afterLogin, totpBody(uuid.NewString(), nil)); r.Status != 403 || code(r) != "invalid-credentials" {
			t.Fatalf("-after-login 5 minutes after the account's creation: %d %s", r.Status, r.Body)
		}
		if r := postTOTP(t, srv, prefix, ios, noScope, totpBody(uuid.NewString(), map[string]string{"password": alice.Password})); r.Status != 403 || code(r) != "insufficient-scope" {
			t.Fatalf("no scope: %d %s", r.Status, r.Body)
		}
		for _, tc := range []struct{ name, body, pointer string }{
			{"no data", `{}`, "/data"},
			{"wrong type", `{"data":{"type":"pin","id":"` + uuid.NewString() + `"}}`, "/data/type"},
			{"no id", `{"data":{"type":"deviceTOTP"}}`, "/data/id"},
			{"id not a uuid", `{"data":{"type":"deviceTOTP","id":"phone"}}`, "/data/id"},
		} {
			r := postTOTP(t, srv, prefix, ios, tok, tc.body)
			if r.Status != 422 || r.errorObject(t)["source"].(map[string]any)["pointer"] != tc.pointer {
				t.Fatalf("%s: %d %s", tc.name, r.Status, r.Body)
			}
		}
	})
}
