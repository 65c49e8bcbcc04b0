package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/openapitest"
)

var allUserScopes = []string{"user:sessions:update", "user:otp:verify", "user:otp:create"}

// apiClient calls the user API and validates every response against
// web/openapi.yaml.
type apiClient struct {
	t   *testing.T
	srv *plugintest.Server
	v   *openapitest.Validator
}

type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// errorCode is the code of the first JSON:API error.
func (r apiResponse) errorCode(t *testing.T) string {
	t.Helper()
	errs, _ := r.json(t)["errors"].([]any)
	if len(errs) == 0 {
		t.Fatalf("no errors in %s", r.Body)
	}
	code, _ := errs[0].(map[string]any)["code"].(string)
	return code
}

func (r apiResponse) errorObject(t *testing.T) map[string]any {
	t.Helper()
	errs, _ := r.json(t)["errors"].([]any)
	if len(errs) != 1 {
		t.Fatalf("want one error in %s", r.Body)
	}
	return errs[0].(map[string]any)
}

func newAPIClient(t *testing.T, srv *plugintest.Server) *apiClient {
	return &apiClient{t: t, srv: srv, v: openapitest.LoadPrefix(t, openapitest.DefaultPrefix)}
}

func (c *apiClient) do(method, path, token, contentType, body string, headers ...string) apiResponse {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+openapitest.DefaultPrefix+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, data := c.v.CheckRoundTrip(c.t, http.DefaultClient, req)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.api+json" {
			c.t.Fatalf("error with content type %q", ct)
		}
		if rid := resp.Header.Get("X-Request-Id"); rid == "" || !bytes.Contains(data, []byte(`"id":"`+rid+`"`)) {
			c.t.Fatalf("error id is not the request id %q: %s", rid, data)
		}
	}
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func (c *apiClient) putSession(token, sid, userID string, passed bool) apiResponse {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"userId": userID, "passedLoginOTP": passed})
	return c.do(http.MethodPut, "/sessions/"+sid, token, "application/json", string(body))
}

func (c *apiClient) verify(token, code string, types ...string) apiResponse {
	c.t.Helper()
	body := map[string]any{"otp": code}
	if types != nil {
		body["types"] = types
	}
	b, _ := json.Marshal(body)
	return c.do(http.MethodPost, "/user/otp/verify", token, "application/vnd.api+json", string(b))
}

func TestUpdateSession_StatusTable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		noScope := srv.NewClient(t, false)
		alice := srv.NewUser(t)
		bob := srv.NewUser(t)
		login := srv.LoginWithPassword(t, client, alice)
		bobLogin := srv.LoginWithPassword(t, client, bob)
		weak := srv.LoginWithPassword(t, noScope, alice)
		tok := login.Token.AccessToken
		valid := `{"userId":"` + alice.ID + `","passedLoginOTP":false}`
		newSID := uuid.NewString()

		cases := []struct {
			name        string
			token       string
			path        string
			contentType string
			body        string
			headers     []string
			wantStatus  int
			wantCode    string
			wantPointer string
			wantParam   string
		}{
			{"no bearer token", "", "/sessions/" + newSID, "application/json", valid, nil, 401, "unauthorized", "", ""},
			{"garbage token", "ory_at_nope.nope", "/sessions/" + newSID, "application/json", valid, nil, 401, "unauthorized", "", ""},
			{"refresh token as bearer", login.Token.RefreshToken, "/sessions/" + newSID, "application/json", valid, nil, 401, "unauthorized", "", ""},
			{"token without the scope", weak.Token.AccessToken, "/sessions/" + newSID, "application/json", valid, nil, 403, "insufficient-scope", "", ""},
			{"body is not JSON", tok, "/sessions/" + newSID, "application/json", `{"userId":`, nil, 400, "bad-request", "", ""},
			{"body is not an object", tok, "/sessions/" + newSID, "application/json", `["x"]`, nil, 400, "bad-request", "", ""},
			{"member named twice", tok, "/sessions/" + newSID, "application/json", `{"userId":"` + alice.ID + `","passedLoginOTP":false,"passedLoginOTP":true}`, nil, 400, "bad-request", "/passedLoginOTP", ""},
			{"member named twice in two cases", tok, "/sessions/" + newSID, "application/json", `{"userId":"` + alice.ID + `","passedLoginOTP":false,"PassedLoginOTP":true}`, nil, 400, "bad-request", "/PassedLoginOTP", ""},
			{"member in another case only", tok, "/sessions/" + newSID, "application/json", `{"UserId":"` + alice.ID + `","passedLoginOTP":false}`, nil, 422, "validation-failed", "/userId", ""},
			{"text/plain body", tok, "/sessions/" + newSID, "text/plain", valid, nil, 415, "unsupported-media-type", "", ""},
			{"JSON:API media type with parameters", tok, "/sessions/" + newSID, "application/vnd.api+json; ext=x", valid, nil, 415, "unsupported-media-type", "", ""},
			{"Accept allows no JSON", tok, "/sessions/" + newSID, "application/json", valid, []string{"Accept", "text/html"}, 406, "not-acceptable", "", ""},
			{"sessionId is not a uuid", tok, "/sessions/not-a-uuid", "application/json", valid, nil, 422, "validation-failed", "", "sessionId"},
			{"userId missing", tok, "/sessions/" + newSID, "application/json", `{"passedLoginOTP":false}`, nil, 422, "validation-failed", "/userId", ""},
			{"userId malformed", tok, "/sessions/" + newSID, "application/json", `{"userId":"x","passedLoginOTP":false}`, nil, 422, "validation-failed", "/userId", ""},
			{"userId wrong type", tok, "/sessions/" + newSID, "application/json", `{"userId":5,"passedLoginOTP":false}`, nil, 422, "validation-failed", "/userId", ""},
			{"passedLoginOTP missing", tok, "/sessions/" + newSID, "application/json", `{"userId":"` + alice.ID + `"}`, nil, 422, "validation-failed", "/passedLoginOTP", ""},
			{"userId of another user", tok, "/sessions/" + newSID, "application/json", `{"userId":"` + bob.ID + `","passedLoginOTP":false}`, nil, 404, "not-found", "", ""},
			{"another user's session", tok, "/sessions/" + bobLogin.SID, "application/json", valid, nil, 404, "not-found", "", ""},
			{"another user's session, passed", tok, "/sessions/" + bobLogin.SID, "application/json", `{"userId":"` + alice.ID + `","passedLoginOTP":true}`, nil, 404, "not-found", "", ""},
			{"unknown session, passed", tok, "/sessions/" + uuid.NewString(), "application/json", `{"userId":"` + alice.ID + `","passedLoginOTP":true}`, nil, 404, "not-found", "", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				api.t = t
				resp := api.do(http.MethodPut, tc.path, tc.token, tc.contentType, tc.body, tc.headers...)
				if resp.Status != tc.wantStatus {
					t.Fatalf("status %d, want %d: %s", resp.Status, tc.wantStatus, resp.Body)
				}
				e := resp.errorObject(t)
				if e["code"] != tc.wantCode || e["status"] != itoa(tc.wantStatus) {
					t.Fatalf("error %v, want code %s", e, tc.wantCode)
				}
				src, _ := e["source"].(map[string]any)
				if tc.wantPointer != "" && (src == nil || src["pointer"] != tc.wantPointer) {
					t.Fatalf("source %v, want pointer %s", src, tc.wantPointer)
				}
				if tc.wantParam != "" && (src == nil || src["parameter"] != tc.wantParam) {
					t.Fatalf("source %v, want parameter %s", src, tc.wantParam)
				}
			})
		}
		api.t = t

		t.Run("create, resend limit, re-challenge, pass, repeat", func(t *testing.T) {
			api.t = t
			sid := uuid.NewString()
			first := api.putSession(tok, sid, alice.ID, false)
			if first.Status != 200 {
				t.Fatalf("create: %d %s", first.Status, first.Body)
			}
			body := first.json(t)
			code, _ := body["otp"].(string)
			exp, err := time.Parse(time.RFC3339Nano, body["expiresAt"].(string))
			if len(code) != 6 || err != nil || exp.Sub(srv.Clock.Now()) > 5*time.Minute+time.Second || exp.Sub(srv.Clock.Now()) < 4*time.Minute {
				t.Fatalf("200 body %s", first.Body)
			}
			again := api.putSession(tok, sid, alice.ID, false)
			if again.Status != 429 || again.errorCode(t) != "too-many-requests" || again.Header.Get("Retry-After") == "" {
				t.Fatalf("resend within the interval: %d %s", again.Status, again.Body)
			}
			srv.Clock.Advance(31 * time.Second)
			second := api.putSession(tok, sid, alice.ID, false)
			if second.Status != 200 {
				t.Fatalf("re-challenge: %d %s", second.Status, second.Body)
			}
			if pass := api.putSession(tok, sid, alice.ID, true); pass.Status != 204 || len(pass.Body) != 0 {
				t.Fatalf("pass: %d %s", pass.Status, pass.Body)
			}
			if pass := api.putSession(tok, sid, alice.ID, true); pass.Status != 204 {
				t.Fatalf("pass again: %d %s", pass.Status, pass.Body)
			}
			ls, err := srv.Store.GetLoginSession(context.Background(), sid)
			if err != nil || !ls.PassedLoginOTP {
				t.Fatalf("session after pass: %+v %v", ls, err)
			}
		})
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestUpdateSession_ReturnInResponseFalse(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.OTP.ReturnInResponse = false })
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, allUserScopes...)
	alice := srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, alice)
	resp := api.putSession(login.Token.AccessToken, uuid.NewString(), alice.ID, false)
	body := resp.json(t)
	if resp.Status != 200 || body["otp"] != nil || body["expiresAt"] == nil {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
}

func TestUpdateSession_MaxSendsPerHour(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.OTP.MaxSendsPerHour = 2 })
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
		sids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
		for i, want := range []int{200, 200, 429} {
			resp := api.putSession(tok, sids[i], alice.ID, false)
			if resp.Status != want {
				t.Fatalf("send %d: %d %s", i+1, resp.Status, resp.Body)
			}
		}
		// The session, challenge, mail and counters of a PUT are one
		// transaction: the refused one left nothing behind.
		ctx := context.Background()
		if _, err := srv.Store.GetLoginSession(ctx, sids[2]); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("refused PUT's session: %v", err)
		}
		if _, err := srv.Store.LiveOTPChallenge(ctx, "login", alice.ID, sids[2]); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("refused PUT's challenge: %v", err)
		}
		if n, _, err := srv.Store.PeekRateCounter(ctx, "otp:sends:"+alice.ID, time.Hour); err != nil || n != 2 {
			t.Fatalf("sends counted: %d %v", n, err)
		}
		if resp := api.putSession(tok, sids[2], alice.ID, true); resp.Status != 404 {
			t.Fatalf("pass the refused session: %d %s", resp.Status, resp.Body)
		}
		events, err := srv.Store.ListAuditEvents(ctx, alice.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range events {
			count[e.Type]++
			if e.Type == provider.AuditOTPIssued && (e.SessionID == "" || e.ClientID != client.ID || e.IP == "" ||
				e.Detail["in_response"] != true || e.Detail["kind"] != "login" || e.Detail["challenge_id"] == nil) {
				t.Fatalf("otp.issued: %+v", e)
			}
		}
		if count[provider.AuditSessionCreated] != 2 || count[provider.AuditOTPIssued] != 2 {
			t.Fatalf("audit events: %v", count)
		}
	})
}

func TestUserAPI_MissingLinkedIdentity(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.LinkedIdentity.Required = true })
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, allUserScopes...)
	alice := srv.NewUser(t)
	tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
	resp := api.putSession(tok, uuid.NewString(), alice.ID, false)
	e := resp.errorObject(t)
	if resp.Status != 401 || e["code"] != "missing-linked-identity" || e["status"] != "401" ||
		e["title"] != "Missing linked identity for authorized access" ||
		e["detail"] != "Linked identity is needed to access this resource, please check why the user does not have a linked identity" {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
	if err := srv.Store.CreateLinkedIdentity(context.Background(), &storageLinkedIdentity{UserID: alice.ID, Provider: "partner", Subject: "p-1"}); err != nil {
		t.Fatal(err)
	}
	if resp := api.putSession(tok, uuid.NewString(), alice.ID, false); resp.Status != 200 {
		t.Fatalf("after linking: %d %s", resp.Status, resp.Body)
	}
}

func TestUserAPI_DisabledUserIsRefusedAtOnce(t *testing.T) {
	// The bearer check reads the token's user with the token (one query):
	// a user disabled after the token was issued is refused on the next call.
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
		if resp := api.putSession(tok, uuid.NewString(), alice.ID, false); resp.Status != 200 {
			t.Fatalf("before: %d %s", resp.Status, resp.Body)
		}
		pr, err := srv.Plugin.Provider.AuthenticateBearer(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if pr.User == nil || pr.User.ID != alice.ID || pr.User.Disabled {
			t.Fatalf("the user read with the token: %+v", pr.User)
		}
		if err := srv.Store.SetUserDisabled(context.Background(), alice.ID, true); err != nil {
			t.Fatal(err)
		}
		resp := api.putSession(tok, uuid.NewString(), alice.ID, false)
		e := resp.errorObject(t)
		if resp.Status != 401 || e["code"] != "unauthorized" || e["detail"] != "The access token's user is unknown or disabled." {
			t.Fatalf("after disable: %d %s", resp.Status, resp.Body)
		}
	})
}
