package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web"
	"github.com/otpstep/otpstep/web/openapitest"
)

// PACE's generated user-API clients, replayed against otpstep as they send
// and judged as they decode: pace/cloud-sdk-ios 26.2.1
// (PACECloudSDK/API/User/Generated/Requests/) and pace/cloud-sdk-android
// 25.1.1 (library/src/main/java/cloud/pace/sdk/api/user/generated/request/).
// Each row names the two files it mirrors; it is sent under every prefix of
// the default api.prefixes and in each SDK's flavour of headers, and every
// answer is checked against web/openapi.yaml.

// Media types the SDK files set per request (iOS contentType, Android
// headers(…, contentType, accept)).
const (
	sdkJSON    = "application/json"
	sdkJSONAPI = "application/vnd.api+json"
)

// sdkFlavour is how one SDK puts a request on the wire.
type sdkFlavour struct {
	name string
	// headers sets the SDK's headers on req: contentType is the request's
	// media type, hasBody whether the SDK sends a body, bearer the user's
	// access token ("" for none).
	headers func(req *http.Request, contentType string, hasBody bool, bearer string)
	// success is whether the SDK reads status as success: Android (Retrofit)
	// any 2xx, iOS exactly the success cases of the file's Response enum.
	success func(status int, iosSuccess []int) bool
}

var sdkFlavours = []sdkFlavour{
	{
		// BaseRequest.headers: Accept and Content-Type on every request,
		// GET and empty bodies included (Retrofit sends an empty body for a
		// PUT or POST without @Body), the API key, a trace id and the SDK's
		// User-Agent; Authorization from API.additionalHeaders.
		name: "android",
		headers: func(req *http.Request, contentType string, _ bool, bearer string) {
			req.Header.Set("Accept", contentType)
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("API-Key", "pace-sdk-test")
			req.Header.Set("uber-trace-id", "5d2b7b7e0f1a3c4d:1:0:1")
			req.Header.Set("User-Agent", "PACECloudSDK/25.1.1 (Android 14)")
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
		},
		success: func(status int, _ []int) bool { return status >= 200 && status < 300 },
	},
	{
		// UserAPIRequest.createURLRequest: Accept is the content type, and
		// Content-Type is set only with an encoded body; Authorization from
		// headerParameters (API.accessToken).
		name: "ios",
		headers: func(req *http.Request, contentType string, hasBody bool, bearer string) {
			req.Header.Set("Accept", contentType)
			if hasBody {
				req.Header.Set("Content-Type", contentType)
			}
			req.Header.Set("User-Agent", "PACECloudSDK/26.2.1 (iOS 18)")
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
		},
		success: func(status int, iosSuccess []int) bool { return slices.Contains(iosSuccess, status) },
	},
}

// sdkEnv is one user's run through the table: a partner account linked to
// them, a login session that signed in with the partner (as a PACE login UI
// starts one), and what earlier rows left for later ones.
type sdkEnv struct {
	f      *plugintest.Federation
	user   *plugintest.User
	upUser *plugintest.User
	login  *plugintest.Login
	tok    string
	// code is the last one-time code an answer carried.
	code string
	pin  string
	// totp is the TOTP CreateTOTP (or an authenticator enrollment) made,
	// whose codes the VerifyOTP TOTP rows send.
	totp *provider.NewTOTP
}

// sdkRow is one SDK operation as both SDKs send it.
type sdkRow struct {
	name string
	// ios and android are the generated files the row mirrors.
	ios, android string
	method       string
	// path is under the prefix; {sid} is the env's login session.
	path        string
	contentType string
	// body is what the SDKs send (nil: no body); androidBody, when set, is
	// Android's where it differs.
	body, androidBody func(e *sdkEnv) string
	// noBearer: the generated request sends no Authorization (iOS declares
	// no security requirement, Android calls headers(false, …)); the app
	// adds the user's token (iOS customHeaders, Android additionalHeaders)
	// unless withoutToken.
	noBearer, withoutToken bool
	// before prepares the state the request needs.
	before func(t *testing.T, e *sdkEnv)
	// status is the answer expected; iosDecodes every status the iOS
	// Response enum decodes, iosSuccess those it reads as success.
	status                 int
	iosDecodes, iosSuccess []int
	// decode reads the body as the SDKs' models do.
	decode func(t *testing.T, e *sdkEnv, body []byte)
}

// iosDates are the two formats of the iOS SDK's dateDecoder
// (API/Generated/Common/Coding.swift): UTC with a Z, whole seconds or
// milliseconds. Android's Rfc3339DateJsonAdapter reads both.
var iosDates = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$`)

// decodeStrict unmarshals body into v, failing on a member of the wrong
// type, as the SDKs' Codable and Moshi models do.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("the SDK model does not decode %s: %v", body, err)
	}
}

// decodeCreateOTP is PCUserCreateOTP (iOS) and CreateOTP (Android): the
// code when the client may see it, and expiresAt as a date both decode.
func decodeCreateOTP(t *testing.T, e *sdkEnv, body []byte) {
	t.Helper()
	var m struct {
		ExpiresAt *string `json:"expiresAt"`
		OTP       *string `json:"otp"`
		Password  *string `json:"password"`
		PIN       *string `json:"pin"`
	}
	decodeStrict(t, body, &m)
	if m.ExpiresAt == nil || !iosDates.MatchString(*m.ExpiresAt) {
		t.Fatalf("expiresAt is not a date the iOS SDK decodes: %s", body)
	}
	at, err := time.Parse(time.RFC3339, *m.ExpiresAt)
	if err != nil || !at.After(e.f.Down.Clock.Now().Add(-time.Second)) {
		t.Fatalf("expiresAt %q: %v", *m.ExpiresAt, err)
	}
	if m.OTP == nil || *m.OTP == "" {
		t.Fatalf("no otp for the login UI: %s", body)
	}
	e.code = *m.OTP
}

// decodeNoContent is a Void response: 204 carries no body.
func decodeNoContent(t *testing.T, _ *sdkEnv, body []byte) {
	t.Helper()
	if len(body) != 0 {
		t.Fatalf("204 with a body: %q", body)
	}
}

// decodeIgnored is a status the iOS enum decodes without reading the body
// (case 200: self = .status200), and Android's ResponseBody.
func decodeIgnored(*testing.T, *sdkEnv, []byte) {}

// sdkRows is the table, in the order one user's run needs: each row may
// use what an earlier one left (a code, the PIN, the link).
func sdkRows() []sdkRow {
	const (
		iosReq = "PACECloudSDK/API/User/Generated/Requests/"
		andReq = "api/user/generated/request/"
	)
	passBody := func(passed bool) func(e *sdkEnv) string {
		return func(e *sdkEnv) string {
			b, _ := json.Marshal(map[string]any{"passedLoginOTP": passed, "userId": e.user.ID})
			return string(b)
		}
	}
	verifyBody := func(types ...string) func(e *sdkEnv) string {
		return func(e *sdkEnv) string {
			b, _ := json.Marshal(map[string]any{"otp": e.code, "types": types})
			return string(b)
		}
	}
	// otp.resend_interval (30s) lies between two codes of one account.
	pastResend := func(t *testing.T, e *sdkEnv) { e.f.Down.Clock.Advance(31 * time.Second) }
	pinBody := func(withID bool) func(e *sdkEnv) string {
		return func(e *sdkEnv) string {
			data := map[string]any{"type": "pin", "attributes": map[string]string{"pin": e.pin, "otp": e.code}}
			if withID {
				data["id"] = uuid.NewString()
			}
			b, _ := json.Marshal(map[string]any{"data": data})
			return string(b)
		}
	}
	return []sdkRow{
		{
			name: "UpdateSession re-challenged (200)", ios: iosReq + "Sessions/UserAPIUpdateSession.swift", android: andReq + "sessions/UpdateSessionAPI.kt",
			method: http.MethodPut, path: "/sessions/{sid}", contentType: sdkJSON, body: passBody(false),
			status: 200, iosDecodes: []int{200, 204, 401, 404, 500}, iosSuccess: []int{200, 204}, decode: decodeCreateOTP,
		},
		{
			name: "VerifyOTP login", ios: iosReq + "TOTP/UserAPIVerifyOTP.swift", android: andReq + "totp/VerifyOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp/verify", contentType: sdkJSON, body: verifyBody("login"),
			status: 204, iosDecodes: []int{204, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "UpdateSession passed (204)", ios: iosReq + "Sessions/UserAPIUpdateSession.swift", android: andReq + "sessions/UpdateSessionAPI.kt",
			method: http.MethodPut, path: "/sessions/{sid}", contentType: sdkJSON, body: passBody(true),
			status: 204, iosDecodes: []int{200, 204, 401, 404, 500}, iosSuccess: []int{200, 204}, decode: decodeNoContent,
		},
		{
			name: "CreateOTP with the password", ios: iosReq + "TOTP/UserAPICreateOTP.swift", android: andReq + "totp/CreateOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp", contentType: sdkJSON,
			body: func(e *sdkEnv) string {
				b, _ := json.Marshal(map[string]string{"password": e.user.Password})
				return string(b)
			},
			before: pastResend,
			status: 201, iosDecodes: []int{201, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{201}, decode: decodeCreateOTP,
		},
		{
			name: "VerifyOTP account", ios: iosReq + "TOTP/UserAPIVerifyOTP.swift", android: andReq + "totp/VerifyOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp/verify", contentType: sdkJSON, body: verifyBody("account"),
			status: 204, iosDecodes: []int{204, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "SendmailOTP", ios: iosReq + "TOTP/UserAPISendmailOTP.swift", android: andReq + "totp/SendmailOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp/sendmail", contentType: sdkJSON, before: pastResend,
			status: 204, iosDecodes: []int{204, 401, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "CheckUserPassword", ios: iosReq + "Credentials/UserAPICheckUserPassword.swift", android: andReq + "credentials/CheckUserPasswordAPI.kt",
			method: http.MethodGet, path: "/user/password", contentType: sdkJSON,
			status: 200, iosDecodes: []int{200, 401, 404, 501}, iosSuccess: []int{200}, decode: decodeIgnored,
		},
		{
			name: "UpdateUserPIN", ios: iosReq + "Credentials/UserAPIUpdateUserPIN.swift", android: andReq + "credentials/UpdateUserPINAPI.kt",
			method: http.MethodPut, path: "/user/pin", contentType: sdkJSONAPI,
			// Android's UserPINAndOTPBody has an id, which its app fills.
			body: pinBody(false), androidBody: pinBody(true),
			before: func(t *testing.T, e *sdkEnv) {
				t.Helper()
				pastResend(t, e)
				// The code the app has from CreateOTP or SendmailOTP.
				issued, err := e.f.Down.Plugin.Provider.IssueOTP(context.Background(), provider.OTPRequest{
					Kind: provider.OTPKindAccount, User: e.user.User, InResponse: true,
				})
				if err != nil {
					t.Fatalf("an account code for the PIN: %v", err)
				}
				e.code, e.pin = issued.Code, "8350"
			},
			status: 200, iosDecodes: []int{200, 401, 403, 406, 501}, iosSuccess: []int{200}, decode: decodeIgnored,
		},
		{
			name: "CheckUserPIN", ios: iosReq + "Credentials/UserAPICheckUserPIN.swift", android: andReq + "credentials/CheckUserPINAPI.kt",
			method: http.MethodGet, path: "/user/pin", contentType: sdkJSON,
			status: 200, iosDecodes: []int{200, 401, 404, 501}, iosSuccess: []int{200}, decode: decodeIgnored,
		},
		{
			name: "CheckUserPinOrPassword", ios: iosReq + "Credentials/UserAPICheckUserPinOrPassword.swift", android: andReq + "credentials/CheckUserPinOrPasswordAPI.kt",
			method: http.MethodGet, path: "/user/pin-or-password", contentType: sdkJSON,
			status: 200, iosDecodes: []int{200, 401, 501}, iosSuccess: []int{200},
			decode: func(t *testing.T, _ *sdkEnv, body []byte) {
				t.Helper()
				var m struct { // PCUserPinOrPassword, PinOrPassword
					PIN      *bool `json:"pin"`
					Password *bool `json:"password"`
				}
				decodeStrict(t, body, &m)
				if m.PIN == nil || !*m.PIN || m.Password == nil || !*m.Password {
					t.Fatalf("pin-or-password %s, want both true", body)
				}
			},
		},
		{
			name: "CreateOTP with the PIN", ios: iosReq + "TOTP/UserAPICreateOTP.swift", android: andReq + "totp/CreateOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp", contentType: sdkJSON,
			body:   func(e *sdkEnv) string { b, _ := json.Marshal(map[string]string{"pin": e.pin}); return string(b) },
			before: pastResend,
			status: 201, iosDecodes: []int{201, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{201}, decode: decodeCreateOTP,
		},
		{
			name: "CreateTOTP with the password", ios: iosReq + "TOTP/UserAPICreateTOTP.swift", android: andReq + "totp/CreateTOTPAPI.kt",
			method: http.MethodPost, path: "/user/devices/totp", contentType: sdkJSONAPI,
			body: func(e *sdkEnv) string {
				// PCUserDeviceTOTPRequest / DeviceTOTPBody: the device's id and
				// one credential.
				b, _ := json.Marshal(map[string]any{"data": map[string]any{"type": "deviceTOTP", "id": uuid.NewString(),
					"attributes": map[string]string{"password": e.user.Password}}})
				return string(b)
			},
			status: 201, iosDecodes: []int{201, 401, 403, 406, 415, 422, 500}, iosSuccess: []int{201},
			decode: func(t *testing.T, e *sdkEnv, body []byte) {
				t.Helper()
				var m struct { // Status201 of PCUserDeviceTOTP, DeviceTOTP (a JSON:API resource)
					Data *struct {
						Type       *string `json:"type"`
						ID         *string `json:"id"`
						Attributes *struct {
							Algorithm *string `json:"algorithm"`
							Digits    *int    `json:"digits"`
							Period    *int    `json:"period"`
							Secret    *string `json:"secret"`
						} `json:"attributes"`
					} `json:"data"`
				}
				decodeStrict(t, body, &m)
				if m.Data == nil || m.Data.Type == nil || *m.Data.Type != "deviceTOTP" || m.Data.ID == nil || m.Data.Attributes == nil {
					t.Fatalf("DeviceTOTP %s", body)
				}
				a := m.Data.Attributes
				if a.Secret == nil || *a.Secret == "" || a.Period == nil || a.Digits == nil || a.Algorithm == nil ||
					!slices.Contains([]string{"SHA1", "SHA256", "SHA512"}, *a.Algorithm) {
					t.Fatalf("DeviceTOTP attributes %s", body)
				}
				e.totp = &provider.NewTOTP{DeviceID: *m.Data.ID, Secret: *a.Secret, Period: *a.Period, Digits: *a.Digits, Algorithm: *a.Algorithm}
			},
		},
		{
			name: "VerifyOTP device-totp", ios: iosReq + "TOTP/UserAPIVerifyOTP.swift", android: andReq + "totp/VerifyOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp/verify", contentType: sdkJSON, body: verifyBody("device-totp"),
			before: func(t *testing.T, e *sdkEnv) {
				t.Helper()
				e.f.Down.Clock.Advance(provider.TOTPPeriod * time.Second)
				e.code = totpCodeAt(t, e.totp, e.f.Down.Clock.Now())
			},
			status: 204, iosDecodes: []int{204, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "VerifyOTP totp (an authenticator app)", ios: iosReq + "TOTP/UserAPIVerifyOTP.swift", android: andReq + "totp/VerifyOTPAPI.kt",
			method: http.MethodPost, path: "/user/otp/verify", contentType: sdkJSON, body: verifyBody("totp"),
			before: func(t *testing.T, e *sdkEnv) {
				t.Helper()
				// Enrolled at /settings/totp (not an SDK operation).
				p := e.f.Down.Plugin.Provider
				k, err := p.BeginAuthenticatorTOTP(context.Background(), e.user.User)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.ConfirmAuthenticatorTOTP(context.Background(), e.user.User, k.ID, totpCodeAt(t, k, e.f.Down.Clock.Now())); err != nil {
					t.Fatal(err)
				}
				e.f.Down.Clock.Advance(provider.TOTPPeriod * time.Second)
				e.totp, e.code = k, totpCodeAt(t, k, e.f.Down.Clock.Now())
			},
			status: 204, iosDecodes: []int{204, 401, 404, 406, 415, 422, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "GrantFederatedToken", ios: iosReq + "FederatedIdentity/UserAPIGrantFederatedToken.swift", android: andReq + "federatedIdentity/GrantFederatedTokenAPI.kt",
			method: http.MethodPost, path: "/federated-identities/partner/token", contentType: sdkJSON, noBearer: true,
			status: 200, iosDecodes: []int{200, 401, 404, 500}, iosSuccess: []int{200},
			decode: func(t *testing.T, _ *sdkEnv, body []byte) {
				t.Helper()
				// PCUserAccessToken's coding keys (RFC 6749 §5.1). Android's
				// AccessToken has camelCase fields and no @Json names, so its
				// Moshi reads none of them (null, not an error).
				var m struct {
					AccessToken  *string `json:"access_token"`
					ExpiresIn    *int    `json:"expires_in"`
					RefreshToken *string `json:"refresh_token"`
					Scope        *string `json:"scope"`
					TokenType    *string `json:"token_type"`
				}
				decodeStrict(t, body, &m)
				if m.AccessToken == nil || *m.AccessToken == "" || m.TokenType == nil || !strings.EqualFold(*m.TokenType, "bearer") ||
					m.ExpiresIn == nil || *m.ExpiresIn <= 0 || m.Scope == nil {
					t.Fatalf("granted %s", body)
				}
			},
		},
		{
			name: "GrantFederatedToken without the user's token (401)", ios: iosReq + "FederatedIdentity/UserAPIGrantFederatedToken.swift", android: andReq + "federatedIdentity/GrantFederatedTokenAPI.kt",
			method: http.MethodPost, path: "/federated-identities/partner/token", contentType: sdkJSON, noBearer: true, withoutToken: true,
			status: 401, iosDecodes: []int{200, 401, 404, 500}, iosSuccess: []int{200},
			decode: func(t *testing.T, _ *sdkEnv, body []byte) {
				t.Helper()
				var m struct { // Status401
					Errors []struct {
						Code, Detail, ID, Status, Title *string
					} `json:"errors"`
				}
				decodeStrict(t, body, &m)
				if len(m.Errors) != 1 || m.Errors[0].Status == nil || *m.Errors[0].Status != "401" {
					t.Fatalf("401 body %s", body)
				}
			},
		},
		{
			name: "DeleteFederatedIdentity", ios: iosReq + "FederatedIdentity/UserAPIDeleteFederatedIdentity.swift", android: andReq + "federatedIdentity/DeleteFederatedIdentityAPI.kt",
			method: http.MethodDelete, path: "/federated-identities/partner", contentType: sdkJSON,
			status: 204, iosDecodes: []int{204, 401, 404, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
		{
			name: "SetFederatedIdentity without a body", ios: iosReq + "FederatedIdentity/UserAPISetFederatedIdentity.swift", android: andReq + "federatedIdentity/SetFederatedIdentityAPI.kt",
			method: http.MethodPut, path: "/federated-identities/partner", contentType: sdkJSON,
			status: 204, iosDecodes: []int{204, 401, 404, 500}, iosSuccess: []int{204},
			decode: func(t *testing.T, e *sdkEnv, body []byte) {
				t.Helper()
				decodeNoContent(t, e, body)
				li, err := e.f.Down.Store.GetLinkedIdentityBySubject(context.Background(), "partner", e.upUser.ID)
				if err != nil || li.UserID != e.user.ID {
					t.Fatalf("the partner identity the session signed in with is not linked: %+v %v", li, err)
				}
			},
		},
		{
			// The SDKs send no body; otpstep's documented {"idToken"} body
			// (docs/api.md) answers as they decode all the same.
			name: "SetFederatedIdentity with an idToken", ios: iosReq + "FederatedIdentity/UserAPISetFederatedIdentity.swift", android: andReq + "federatedIdentity/SetFederatedIdentityAPI.kt",
			method: http.MethodPut, path: "/federated-identities/partner", contentType: sdkJSON,
			body: func(e *sdkEnv) string {
				b, _ := json.Marshal(map[string]string{"idToken": e.code})
				return string(b)
			},
			before: func(t *testing.T, e *sdkEnv) { t.Helper(); e.code = upstreamIDToken(t, e.f, e.upUser) },
			status: 204, iosDecodes: []int{204, 401, 404, 500}, iosSuccess: []int{204}, decode: decodeNoContent,
		},
	}
}

// sendAsSDK sends row as flavour does under prefix and checks the answer
// against openapi.yaml (under that prefix).
func sendAsSDK(t *testing.T, e *sdkEnv, v *openapitest.Validator, fl sdkFlavour, prefix string, row sdkRow) (*http.Response, []byte) {
	t.Helper()
	body := ""
	if row.body != nil {
		body = row.body(e)
		if fl.name == "android" && row.androidBody != nil {
			body = row.androidBody(e)
		}
	}
	path := strings.ReplaceAll(row.path, "{sid}", e.login.SID)
	req, err := http.NewRequest(row.method, e.f.Down.URL+prefix+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	bearer := e.tok
	if row.withoutToken {
		bearer = ""
	}
	fl.headers(req, row.contentType, row.body != nil, bearer)
	return v.CheckRoundTrip(t, http.DefaultClient, req)
}

// TestPACESDKs replays every user-API operation of PACE's two SDKs, under
// both default prefixes and in both SDKs' header flavours, on both
// databases: each answer is one the SDK reads as success (the 401 row: one
// it decodes), its body decodes as the SDK's model does, and it keeps
// web/openapi.yaml.
func TestPACESDKs(t *testing.T) {
	prefixes := plugin.DefaultConfig().API.Paths()
	if !slices.Equal(prefixes, []string{"/user/2024-2", "/user/2024-3"}) {
		t.Fatalf("default api.prefixes %v", prefixes)
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := plugintest.StartFederation(t, dialect, "partner", true, func(c *plugin.Config) {
			// One user per prefix and flavour, each with a handful of codes,
			// while the clock moves past otp.resend_interval before each: the
			// sign-ins and upstream ID tokens must stay recent enough.
			c.OTP.MaxSendsPerHour = 100
			c.LinkedIdentity.ReauthMaxAge = time.Hour
			c.LinkedIdentity.IDTokenMaxAge = time.Hour
		})
		ctx := context.Background()
		ui := f.Down.NewLoginUI(t, slices.Concat(allUserScopes, pinScopes, []string{web.ScopeDeviceTOTPCreate, web.ScopeFederatedIdentitySet,
			web.ScopeFederatedIdentityDelete, web.ScopeFederatedIdentityToken})...)

		// Every sign-in first: fosite refuses a login whose auth_time is
		// ahead of the wall clock, and the rows move the test clock.
		type run struct {
			prefix string
			fl     sdkFlavour
			env    *sdkEnv
		}
		var runs []run
		for _, prefix := range prefixes {
			for _, fl := range sdkFlavours {
				u, up := f.Down.NewUser(t), f.Up.NewUser(t)
				if err := f.Down.Store.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: up.ID}); err != nil {
					t.Fatal(err)
				}
				login := signInWithPartner(t, f, ui, up)
				runs = append(runs, run{prefix, fl, &sdkEnv{f: f, user: u, upUser: up, login: login, tok: login.Token.AccessToken}})
			}
		}
		for _, r := range runs {
			v := openapitest.LoadPrefix(t, r.prefix)
			t.Run(r.fl.name+strings.ReplaceAll(r.prefix, "/", "_"), func(t *testing.T) {
				for _, row := range sdkRows() {
					t.Run(row.name, func(t *testing.T) {
						if !slices.Contains(row.iosDecodes, row.status) {
							t.Fatalf("the table expects %d, which %s does not decode", row.status, row.ios)
						}
						if row.before != nil {
							row.before(t, r.env)
						}
						resp, body := sendAsSDK(t, r.env, v, r.fl, r.prefix, row)
						if resp.StatusCode != row.status {
							t.Fatalf("%s %s as %s (%s): %d, want %d: %s", row.method, row.path, r.fl.name, row.android, resp.StatusCode, row.status, body)
						}
						if got := r.fl.success(resp.StatusCode, row.iosSuccess); got != !row.withoutToken {
							t.Fatalf("%s reads %d as success=%v", r.fl.name, resp.StatusCode, got)
						}
						// JSON, or JSON:API for a JSON:API resource (CreateTOTP's
						// DeviceTOTP): both SDKs decode either.
						if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusNoContent && len(bytes.TrimSpace(body)) > 0 && resp.StatusCode < 300 &&
							!strings.HasPrefix(ct, "application/json") && ct != sdkJSONAPI {
							t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
						}
						row.decode(t, r.env, body)
					})
				}
			})
		}
	})
}
