package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/otpstep/otpstep/web/jsonapi"
	"github.com/otpstep/otpstep/web/openapitest"
)

// The 401 example of PACE's PUT /sessions/{sessionId}
// (docs/pace-update-session.txt), byte for byte.
const seedMissingLinkedIdentity = `{
    "errors": [
        {
            "id": "cbgmhslmp1o9or9kh1p0",
            "title": "Missing linked identity for authorized access",
            "detail": "Linked identity is needed to access this resource, please check why the user does not have a linked identity",
            "status": "401",
            "code": "missing-linked-identity"
        }
    ]
}`

func TestOpenAPI_SpecParsesAndValidates(t *testing.T) {
	v := openapitest.Load(t)
	if v.Doc().OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", v.Doc().OpenAPI)
	}
	// The embedded copy is the file in the tree, and validates on its own.
	path, err := openapitest.SpecPath()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, OpenAPISpec) {
		t.Errorf("OpenAPISpec differs from %s", path)
	}
	if _, err := openapitest.Parse(OpenAPISpec, openapitest.DefaultPrefix); err != nil {
		t.Errorf("embedded spec: %v", err)
	}
}

func TestOpenAPI_ParseRejectsAnInvalidSpec(t *testing.T) {
	// PACE's example (docs/pace-update-session.txt) must satisfy the 401
	// schema; a wrong code in it makes the document invalid, so examples
	// are checked at load.
	bad := bytes.Replace(OpenAPISpec, []byte("code: missing-linked-identity"), []byte("code: missing-identity"), 1)
	if bytes.Equal(bad, OpenAPISpec) {
		t.Fatal("the Unauthorized example was not found in the spec")
	}
	if _, err := openapitest.Parse(bad, openapitest.DefaultPrefix); err == nil {
		t.Error("a spec whose example breaks its schema parsed without error")
	}
	if _, err := openapitest.Parse(OpenAPISpec, "user/"); err == nil {
		t.Error("prefix user/ accepted")
	}
}

func TestOpenAPI_HandlerServesSpec(t *testing.T) {
	v := openapitest.Load(t)
	srv := httptest.NewServer(OpenAPIHandler())
	defer srv.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/openapi.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := v.CheckRoundTrip(t, srv.Client(), req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
	if !bytes.Equal(body, OpenAPISpec) {
		t.Error("body is not OpenAPISpec")
	}

	post := httptest.NewRecorder()
	OpenAPIHandler().ServeHTTP(post, httptest.NewRequest(http.MethodPost, "/openapi.yaml", nil))
	if post.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", post.Code)
	}
}

func TestOpenAPI_EveryAPIMDRouteIsDocumented(t *testing.T) {
	doc := openapitest.Load(t).Doc()
	p := openapitest.DefaultPrefix
	routes := []struct{ method, path string }{
		{http.MethodPut, p + "/sessions/{sessionId}"},
		{http.MethodPost, p + "/user/otp/verify"},
		{http.MethodPost, p + "/user/otp"},
		{http.MethodPost, p + "/user/otp/sendmail"},
		{http.MethodGet, p + "/federated-identities"},
		{http.MethodPut, p + "/federated-identities/{identityProvider}"},
		{http.MethodDelete, p + "/federated-identities/{identityProvider}"},
		{http.MethodPut, "/admin/users/{userId}/federated-identities/{identityProvider}"},
		{http.MethodDelete, "/admin/users/{userId}/federated-identities/{identityProvider}"},
		{http.MethodGet, "/federated-identities/{identityProvider}/link"},
		{http.MethodPost, "/federated-identities/{identityProvider}/link"},
		{http.MethodGet, "/federated-identities/{identityProvider}/callback"},
		{http.MethodGet, "/.well-known/openid-configuration"},
		{http.MethodGet, "/.well-known/jwks.json"},
		{http.MethodGet, "/oauth2/auth"},
		{http.MethodPost, "/oauth2/consent"},
		{http.MethodPost, "/oauth2/token"},
		{http.MethodPost, "/oauth2/introspect"},
		{http.MethodPost, "/oauth2/revoke"},
		{http.MethodGet, "/userinfo"},
		{http.MethodPost, "/userinfo"},
		{http.MethodGet, "/oauth2/sessions/logout"},
		{http.MethodGet, "/login"},
		{http.MethodPost, "/login"},
		{http.MethodGet, "/login/otp"},
		{http.MethodPost, "/login/otp"},
		{http.MethodPost, "/login/otp/resend"},
		{http.MethodGet, "/logout"},
		{http.MethodPost, "/logout"},
		{http.MethodGet, "/health/alive"},
		{http.MethodGet, "/health/ready"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/openapi.yaml"},
	}
	for _, r := range routes {
		item := doc.Paths.Value(r.path)
		if item == nil || item.GetOperation(r.method) == nil {
			t.Errorf("%s %s is not in openapi.yaml", r.method, r.path)
		}
	}
}

// TestOpenAPI_UserAPIStatuses pins each user and admin operation's statuses
// to docs/api.md, and its conventions: bearer + one oauth2 scope named in the
// description, both JSON request types, application/json successes, and
// JSON:API errors carrying X-Request-Id (and Retry-After on 429 and 503).
func TestOpenAPI_UserAPIStatuses(t *testing.T) {
	doc := openapitest.Load(t).Doc()
	p := openapitest.DefaultPrefix
	ops := []struct {
		method, path, scope string
		statuses            []int
	}{
		{http.MethodPut, p + "/sessions/{sessionId}", "user:sessions:update",
			[]int{200, 204, 400, 401, 403, 404, 406, 415, 422, 429, 500, 503}},
		{http.MethodPost, p + "/user/otp/verify", "user:otp:verify",
			[]int{204, 400, 401, 403, 404, 406, 415, 422, 429, 500, 503}},
		{http.MethodPost, p + "/user/otp", "user:otp:create",
			[]int{201, 400, 401, 403, 404, 406, 415, 422, 429, 500, 503}},
		{http.MethodPost, p + "/user/otp/sendmail", "user:otp:create",
			[]int{204, 401, 403, 406, 415, 429, 500, 503}},
		{http.MethodGet, p + "/federated-identities", "user:federated-identity:read",
			[]int{200, 401, 403, 406, 500, 503}},
		{http.MethodPut, p + "/federated-identities/{identityProvider}", "user:federated-identity:set",
			[]int{204, 400, 401, 403, 404, 406, 409, 415, 422, 500, 503}},
		{http.MethodDelete, p + "/federated-identities/{identityProvider}", "user:federated-identity:delete",
			[]int{204, 401, 403, 404, 406, 415, 500, 503}},
		{http.MethodPut, "/admin/users/{userId}/federated-identities/{identityProvider}", "admin:federated-identity:write",
			[]int{200, 400, 401, 403, 404, 406, 409, 415, 422, 500, 503}},
		{http.MethodDelete, "/admin/users/{userId}/federated-identities/{identityProvider}", "admin:federated-identity:write",
			[]int{204, 401, 403, 404, 406, 415, 422, 500, 503}},
	}
	for _, o := range ops {
		t.Run(o.method+" "+o.path, func(t *testing.T) {
			item := doc.Paths.Value(o.path)
			if item == nil || item.GetOperation(o.method) == nil {
				t.Fatal("operation missing")
			}
			op := item.GetOperation(o.method)
			if op.Security == nil || len(*op.Security) != 1 {
				t.Fatalf("security = %v, want one requirement", op.Security)
			}
			req := (*op.Security)[0]
			if scopes, ok := req["oauth2"]; !ok || !slices.Equal(scopes, []string{o.scope}) {
				t.Errorf("oauth2 scopes = %v, want [%s]", req["oauth2"], o.scope)
			}
			if _, ok := req["bearer"]; !ok {
				t.Error("security lacks the bearer scheme")
			}
			if !strings.Contains(op.Description, "`"+o.scope+"`") {
				t.Errorf("description does not name the scope %s", o.scope)
			}
			var got []int
			for code := range op.Responses.Map() {
				var n int
				if _, err := fmt.Sscan(code, &n); err != nil {
					t.Fatalf("response key %q", code)
				}
				got = append(got, n)
			}
			sort.Ints(got)
			if !slices.Equal(got, o.statuses) {
				t.Errorf("statuses = %v, want %v", got, o.statuses)
			}
			if rb := op.RequestBody; rb != nil {
				c := rb.Value.Content
				j, a := c.Get("application/json"), c.Get("application/vnd.api+json")
				if j == nil || a == nil || j.Schema.Ref != a.Schema.Ref || len(c) != 2 {
					t.Errorf("request body content %v: want application/json and application/vnd.api+json with one schema", keys(c))
				}
			}
			for _, n := range got {
				resp := op.Responses.Status(n).Value
				switch {
				case n < 300:
					if n == 204 {
						if len(resp.Content) != 0 {
							t.Errorf("204 declares a body")
						}
						continue
					}
					if resp.Content.Get("application/json") == nil || len(resp.Content) != 1 {
						t.Errorf("%d content %v, want application/json", n, keys(resp.Content))
					}
				default:
					if resp.Content.Get("application/vnd.api+json") == nil || len(resp.Content) != 1 {
						t.Errorf("%d content %v, want application/vnd.api+json only", n, keys(resp.Content))
					}
					if h := resp.Headers["X-Request-Id"]; h == nil || !h.Value.Required {
						t.Errorf("%d lacks a required X-Request-Id header", n)
					}
					if n == 429 || n == 503 {
						if h := resp.Headers["Retry-After"]; h == nil || !h.Value.Required {
							t.Errorf("%d lacks a required Retry-After header", n)
						}
					}
				}
			}
		})
	}
}

func keys(c openapi3.Content) []string {
	var out []string
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// recordingTB captures the failures Check reports instead of failing the test.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Error(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failures = append(r.failures, "fatal: "+fmt.Sprintf(format, args...))
}
func (r *recordingTB) Fatal(args ...any) {
	r.failures = append(r.failures, "fatal: "+fmt.Sprint(args...))
}
func (r *recordingTB) Fail()    { r.failures = append(r.failures, "Fail") }
func (r *recordingTB) FailNow() { r.failures = append(r.failures, "FailNow") }

func TestOpenAPI_Check(t *testing.T) {
	const (
		sessionURL = "http://127.0.0.1:54321/user/2024-3/sessions/ddac0bf6-e618-499e-b6ee-2c45530ea8ed"
		verifyURL  = "http://127.0.0.1:54321/user/2024-3/user/otp/verify"
		rid        = "cbgmhslmp1o9or9kh1p0"
		updateBody = `{"userId":"738e379f-fe30-45ab-819c-ba88804b6368","passedLoginOTP":false}`
		jsonCT     = "application/json; charset=utf-8"
		apiCT      = "application/vnd.api+json"
	)
	errorBody := func(status, code string) string {
		return fmt.Sprintf(`{"errors":[{"id":%q,"status":%q,"code":%q,"title":"T","detail":"D"}]}`, rid, status, code)
	}
	type header = map[string]string
	cases := []struct {
		name     string
		method   string
		url      string
		status   int
		header   header
		body     string
		wantFail string // a substring of the failure, "" when the response must pass
	}{
		{name: "UpdateSession 200 with otp and expiresAt passes",
			method: http.MethodPut, url: sessionURL, status: 200,
			header: header{"Content-Type": jsonCT},
			body:   `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.520Z"}`},
		{name: "UpdateSession 200 without otp passes (otp.return_in_response=false)",
			method: http.MethodPut, url: sessionURL, status: 200,
			header: header{"Content-Type": "application/json"},
			body:   `{"expiresAt":"2021-04-12T23:20:50.000Z"}`},
		{name: "UpdateSession 200 without expiresAt fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"773829"}`,
			wantFail: "expiresAt"},
		{name: "UpdateSession 200 with a non-RFC3339 expiresAt fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"773829","expiresAt":"12.04.2021 23:20"}`,
			wantFail: "expiresAt"},
		// The iOS SDK decodes seconds.SSS'Z' and nothing else.
		{name: "UpdateSession 200 with a microsecond expiresAt fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.520123Z"}`,
			wantFail: "expiresAt"},
		{name: "UpdateSession 200 with an expiresAt not in UTC fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.520+02:00"}`,
			wantFail: "expiresAt"},
		{name: "UpdateSession 200 leaking another member fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.000Z","hash":"x"}`,
			wantFail: "hash"},
		{name: "UpdateSession 200 as JSON:API fails",
			method: http.MethodPut, url: sessionURL, status: 200,
			header:   header{"Content-Type": apiCT},
			body:     `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.000Z"}`,
			wantFail: "Content-Type"},
		{name: "UpdateSession 204 passes",
			method: http.MethodPut, url: sessionURL, status: 204},
		{name: "UpdateSession 404 as JSON:API passes",
			method: http.MethodPut, url: sessionURL, status: 404,
			header: header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:   errorBody("404", "not-found")},
		{name: "an error with the wrong content type fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": jsonCT, "X-Request-Id": rid},
			body:     errorBody("404", "not-found"),
			wantFail: "Content-Type"},
		{name: "the seed's 401 missing-linked-identity example passes",
			method: http.MethodPut, url: sessionURL, status: 401,
			header: header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:   seedMissingLinkedIdentity},
		{name: "missing-linked-identity with another title fails",
			method: http.MethodPut, url: sessionURL, status: 401,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     strings.Replace(seedMissingLinkedIdentity, "Missing linked identity for authorized access", "Unauthorized", 1),
			wantFail: "title"},
		{name: "401 unauthorized passes",
			method: http.MethodPut, url: sessionURL, status: 401,
			header: header{"Content-Type": apiCT, "X-Request-Id": rid, "WWW-Authenticate": "Bearer"},
			body:   errorBody("401", "unauthorized")},
		{name: "a 404 carrying the code of a 401 fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("404", "unauthorized"),
			wantFail: "code"},
		{name: "an unknown code fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("404", "no-such-session"),
			wantFail: "code"},
		{name: "an error object whose status is not the response's fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("400", "not-found"),
			wantFail: "status"},
		{name: "an error without X-Request-Id fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": apiCT},
			body:     errorBody("404", "not-found"),
			wantFail: "X-Request-Id"},
		{name: "an error id other than X-Request-Id fails",
			method: http.MethodPut, url: sessionURL, status: 404,
			header:   header{"Content-Type": apiCT, "X-Request-Id": "someotherid"},
			body:     errorBody("404", "not-found"),
			wantFail: "X-Request-Id"},
		{name: "422 naming its input passes",
			method: http.MethodPut, url: sessionURL, status: 422,
			header: header{"Content-Type": apiCT, "X-Request-Id": rid},
			body: fmt.Sprintf(`{"errors":[{"id":%q,"status":"422","code":"validation-failed","title":"Validation failed",`+
				`"detail":"userId must be a UUID.","source":{"pointer":"/userId"}}]}`, rid)},
		{name: "422 without source fails",
			method: http.MethodPut, url: sessionURL, status: 422,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("422", "validation-failed"),
			wantFail: "source"},
		{name: "429 with Retry-After passes",
			method: http.MethodPut, url: sessionURL, status: 429,
			header: header{"Content-Type": apiCT, "X-Request-Id": rid, "Retry-After": "30"},
			body:   errorBody("429", "too-many-requests")},
		{name: "429 without Retry-After fails",
			method: http.MethodPut, url: sessionURL, status: 429,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("429", "too-many-requests"),
			wantFail: "Retry-After"},
		{name: "503 without Retry-After fails",
			method: http.MethodPut, url: sessionURL, status: 503,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("503", "unavailable"),
			wantFail: "Retry-After"},
		{name: "an undocumented status fails",
			method: http.MethodPut, url: sessionURL, status: 409,
			header:   header{"Content-Type": apiCT, "X-Request-Id": rid},
			body:     errorBody("409", "identity-already-linked"),
			wantFail: "status is not supported"},
		{name: "CreateOTP 201 passes",
			method: http.MethodPost, url: "http://127.0.0.1:54321/user/2024-3/user/otp", status: 201,
			header: header{"Content-Type": jsonCT},
			body:   `{"otp":"0042","expiresAt":"2021-04-12T21:20:50.000Z"}`},
		{name: "CreateOTP 201 with a non-numeric otp fails",
			method: http.MethodPost, url: "http://127.0.0.1:54321/user/2024-3/user/otp", status: 201,
			header:   header{"Content-Type": jsonCT},
			body:     `{"otp":"abc","expiresAt":"2021-04-12T23:20:50.000Z"}`,
			wantFail: "/otp"},
		{name: "VerifyOTP 204 passes",
			method: http.MethodPost, url: verifyURL, status: 204},
		{name: "VerifyOTP 200 is undocumented",
			method: http.MethodPost, url: verifyURL, status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{}`,
			wantFail: "status is not supported"},
		{name: "a body on a status that declares none fails",
			method: http.MethodPost, url: "http://127.0.0.1:1/oauth2/revoke", status: 200,
			header:   header{"Content-Type": "text/plain"},
			body:     "revoked",
			wantFail: "declares no body"},
		{name: "a JWKS publishing a private key member fails",
			method: http.MethodGet, url: "http://localhost:8080/.well-known/jwks.json", status: 200,
			header:   header{"Content-Type": jsonCT},
			body:     `{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB","d":"secret"}]}`,
			wantFail: "jwks"},
		{name: "a public JWKS passes",
			method: http.MethodGet, url: "http://localhost:8080/.well-known/jwks.json", status: 200,
			header: header{"Content-Type": jsonCT},
			body:   `{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB"}]}`},
		{name: "readiness 503 with Retry-After passes",
			method: http.MethodGet, url: "http://127.0.0.1:1/health/ready", status: 503,
			header: header{"Content-Type": jsonCT, "Retry-After": "5"},
			body:   `{"status":"unavailable"}`},
		{name: "a login redirect passes",
			method: http.MethodPost, url: "http://127.0.0.1:1/login", status: 303,
			header: header{"Location": "/oauth2/auth?client_id=x"}},
		{name: "a redirect without Location fails",
			method: http.MethodPost, url: "http://127.0.0.1:1/login", status: 303,
			wantFail: "Location"},
		{name: "an unknown path answering 404 passes",
			method: http.MethodGet, url: "http://127.0.0.1:1/nope", status: 404,
			header: header{"Content-Type": "text/html; charset=utf-8"},
			body:   "<p>This page does not exist.</p>"},
		{name: "an unknown path answering 200 fails",
			method: http.MethodGet, url: "http://127.0.0.1:1/nope", status: 200,
			header:   header{"Content-Type": "text/html; charset=utf-8"},
			wantFail: "no path of openapi.yaml"},
		{name: "an undocumented method answering 405 passes",
			method: http.MethodDelete, url: "http://127.0.0.1:1/login", status: 405,
			header: header{"Content-Type": "text/plain; charset=utf-8"},
			body:   "method not allowed"},
	}
	v := openapitest.Load(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reqBody []byte
			if tc.method == http.MethodPut {
				reqBody = []byte(updateBody)
			}
			req := httptest.NewRequest(tc.method, tc.url, bytes.NewReader(reqBody))
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body))}
			for k, val := range tc.header {
				resp.Header.Set(k, val)
			}
			rec := &recordingTB{TB: t}
			v.Check(rec, req, reqBody, resp, []byte(tc.body))
			switch {
			case tc.wantFail == "" && len(rec.failures) > 0:
				t.Errorf("Check failed a valid response:\n%s", strings.Join(rec.failures, "\n"))
			case tc.wantFail != "" && len(rec.failures) == 0:
				t.Errorf("Check passed a response that breaks the spec (want a failure mentioning %q)", tc.wantFail)
			case tc.wantFail != "" && !strings.Contains(strings.Join(rec.failures, "\n"), tc.wantFail):
				t.Errorf("failure does not mention %q:\n%s", tc.wantFail, strings.Join(rec.failures, "\n"))
			}
		})
	}
}

// TestOpenAPI_JSONAPIWriterKeepsContract sends every error the JSON:API
// writer makes, through the request-id middleware, and checks it against the
// operation documenting that status.
func TestOpenAPI_JSONAPIWriterKeepsContract(t *testing.T) {
	v := openapitest.Load(t)
	const (
		session = "/user/2024-3/sessions/ddac0bf6-e618-499e-b6ee-2c45530ea8ed"
		link    = "/user/2024-3/federated-identities/upstream"
	)
	cases := []struct {
		method, path string
		err          *jsonapi.Error
	}{
		{http.MethodPut, session, jsonapi.BadRequest("The request body is not valid JSON.")},
		{http.MethodPut, session, jsonapi.Unauthorized("")},
		{http.MethodPut, session, jsonapi.MissingLinkedIdentity()},
		{http.MethodPut, session, jsonapi.InsufficientScope("user:sessions:update")},
		{http.MethodPut, session, jsonapi.NotFound("")},
		{http.MethodPut, session, jsonapi.NotAcceptable()},
		{http.MethodPut, session, jsonapi.UnsupportedMediaType()},
		{http.MethodPut, session, jsonapi.Validation("/userId", "userId must be a UUID.")},
		{http.MethodPut, session, jsonapi.ValidationParam("sessionId", "sessionId must be a UUID.")},
		{http.MethodPut, link, jsonapi.Conflict(jsonapi.CodeIdentityAlreadyLinked, "")},
		{http.MethodPut, session, jsonapi.TooManyRequests(0)},
		{http.MethodPut, session, jsonapi.Internal(errors.New("db: connection refused"))},
		{http.MethodPut, session, jsonapi.Unavailable(0, errors.New("db: connection refused"))},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				jsonapi.Write(w, r, tc.err)
			}))
			req := httptest.NewRequest(tc.method, tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			v.CheckRecorder(t, req, nil, rec)
		})
	}
}

func TestOpenAPI_CheckRoundTrip(t *testing.T) {
	v := openapitest.Load(t)
	var answer struct {
		status int
		ct     string
		body   string
	}
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", answer.ct)
		w.WriteHeader(answer.status)
		_, _ = io.WriteString(w, answer.body)
	}))
	defer srv.Close()
	const sent = `{"userId":"738e379f-fe30-45ab-819c-ba88804b6368","passedLoginOTP":false}`
	newReq := func() *http.Request {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/user/2024-3/sessions/ddac0bf6-e618-499e-b6ee-2c45530ea8ed", strings.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		return req
	}

	answer.status, answer.ct, answer.body = 200, "application/json", `{"otp":"773829","expiresAt":"2021-04-12T23:20:50.520Z"}`
	resp, body := v.CheckRoundTrip(t, srv.Client(), newReq())
	if resp.StatusCode != 200 || string(body) != answer.body {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if string(gotBody) != sent {
		t.Errorf("server received %q, want %q", gotBody, sent)
	}
	if again, _ := io.ReadAll(resp.Body); string(again) != answer.body {
		t.Errorf("resp.Body re-read %q", again)
	}

	answer.body = `{"otp":"773829"}`
	rec := &recordingTB{TB: t}
	v.CheckRoundTrip(rec, srv.Client(), newReq())
	if len(rec.failures) != 1 || !strings.Contains(rec.failures[0], "expiresAt") || !strings.Contains(rec.failures[0], sent) {
		t.Errorf("want one failure naming expiresAt and quoting the request, got %q", rec.failures)
	}
}

func TestOpenAPI_LoadPrefix(t *testing.T) {
	v := openapitest.LoadPrefix(t, "/api/v1")
	if v.Doc().Paths.Value("/api/v1/sessions/{sessionId}") == nil {
		t.Fatal("user-API paths were not moved under /api/v1")
	}
	if v.Doc().Paths.Value("/oauth2/token") == nil {
		t.Fatal("non-user-API paths moved")
	}
	req := httptest.NewRequest(http.MethodPut, "/api/v1/sessions/ddac0bf6-e618-499e-b6ee-2c45530ea8ed", nil)
	resp := &http.Response{StatusCode: 204, Header: http.Header{}}
	if err := v.Validate(req, resp, nil); err != nil {
		t.Errorf("204 under the custom prefix: %v", err)
	}
	// The default validator is unaffected.
	if openapitest.Load(t).Doc().Paths.Value("/api/v1/sessions/{sessionId}") != nil {
		t.Error("LoadPrefix changed the default validator")
	}
}

var (
	pageForm   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)"[^>]*>(.*?)</form>`)
	fieldNamed = regexp.MustCompile(`<(?:input|button|select|textarea)\b[^>]*\bname="([^"]+)"`)
)

// TestOpenAPI_PageFormsDocumentTheFieldsTheyPost renders every page with a
// form through the pages' own CSRF middleware (so the token field is the
// one gorilla/csrf really writes) and checks that the operation each form
// posts to documents exactly the fields the form posts, the CSRF token's
// among them.
func TestOpenAPI_PageFormsDocumentTheFieldsTheyPost(t *testing.T) {
	doc := openapitest.Load(t).Doc()
	pages, _ := newTestPages(t)
	tests := []struct {
		page string
		data func(csrf template.HTML) any
		// forms maps each form's action to the openapi path it posts to.
		forms map[string]string
	}{
		{"login", func(c template.HTML) any { return LoginPage{ReturnTo: "/oauth2/auth?x=1", CSRFField: c} },
			map[string]string{"/login": "/login"}},
		{"login_otp", func(c template.HTML) any {
			return OTPPage{Destination: "j***@example.com", CSRFField: c, Authenticator: true}
		},
			map[string]string{"/login/otp": "/login/otp", "/login/otp/resend": "/login/otp/resend", "/login/otp/authenticator": "/login/otp/authenticator"}},
		{"consent", func(c template.HTML) any {
			return ConsentPage{ClientName: "rp", Scopes: []string{"openid"}, AuthorizeQuery: "client_id=rp", CSRFField: c}
		}, map[string]string{"/oauth2/consent": "/oauth2/consent"}},
		{"logout_confirm", func(c template.HTML) any {
			return LogoutPage{CSRFField: c, Carried: []HiddenField{{"id_token_hint", "h"}, {"client_id", "rp"},
				{"post_logout_redirect_uri", "https://rp.example/"}, {"state", "s"}}}
		},
			map[string]string{"/logout": "/logout"}},
		{"settings_totp", func(c template.HTML) any { p := sampleSettingsTOTP(true); p.CSRFField = c; return p },
			map[string]string{"/settings/totp/confirm": "/settings/totp/confirm", "/settings/totp/delete": "/settings/totp/delete"}},
		{"settings_totp", func(c template.HTML) any { p := sampleSettingsTOTP(false); p.CSRFField = c; return p },
			map[string]string{"/settings/totp": "/settings/totp", "/settings/totp/delete": "/settings/totp/delete"}},
		{"recover", func(c template.HTML) any { return RecoveryPage{Action: "/login/recover", CSRFField: c} },
			map[string]string{"/login/recover": "/login/recover"}},
		{"recover_code", func(c template.HTML) any { return RecoveryPage{Action: "/login/recover/code", CSRFField: c} },
			map[string]string{"/login/recover/code": "/login/recover/code"}},
		{"recover_authenticator", func(c template.HTML) any { return RecoveryPage{Action: "/login/recover/authenticator", CSRFField: c} },
			map[string]string{"/login/recover/authenticator": "/login/recover/authenticator"}},
		{"recover_password", func(c template.HTML) any { return RecoveryPage{Action: "/login/recover/password", CSRFField: c} },
			map[string]string{"/login/recover/password": "/login/recover/password"}},
		{"federated_link", func(c template.HTML) any {
			return FederatedLinkPage{Provider: "acme", Action: "/federated-identities/acme/link", CSRFField: c}
		}, map[string]string{"/federated-identities/acme/link": "/federated-identities/{identityProvider}/link"}},
	}
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			app := NewCSRF(bytes.Repeat([]byte{7}, 32), false, "csrf", CSRFWithPages(pages))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				pages.Render(w, r, http.StatusOK, tt.page, tt.data(csrfField(r)))
			}))
			w := httptest.NewRecorder()
			app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/page", nil))
			forms := pageForm.FindAllStringSubmatch(w.Body.String(), -1)
			// A page may carry several forms to one action (a Remove
			// button per authenticator): each is checked.
			actions := map[string]bool{}
			for _, f := range forms {
				actions[f[1]] = true
			}
			if w.Code != http.StatusOK || len(actions) != len(tt.forms) {
				t.Fatalf("%d, forms to %d actions, want %d:\n%s", w.Code, len(actions), len(tt.forms), w.Body.String())
			}
			for _, form := range forms {
				path, ok := tt.forms[form[1]]
				if !ok {
					t.Fatalf("a form posts to %q", form[1])
				}
				var posted []string
				for _, m := range fieldNamed.FindAllStringSubmatch(form[2], -1) {
					if !slices.Contains(posted, m[1]) {
						posted = append(posted, m[1])
					}
				}
				if !slices.Contains(posted, csrfFieldName) {
					t.Errorf("the form to %s posts no %s: %v", form[1], csrfFieldName, posted)
				}
				item := doc.Paths.Value(path)
				if item == nil || item.Post == nil || item.Post.RequestBody == nil {
					t.Fatalf("openapi.yaml has no POST %s with a request body", path)
				}
				mt := item.Post.RequestBody.Value.Content.Get("application/x-www-form-urlencoded")
				if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
					t.Fatalf("POST %s documents no form body", path)
				}
				var documented []string
				for name := range mt.Schema.Value.Properties {
					documented = append(documented, name)
				}
				sort.Strings(posted)
				sort.Strings(documented)
				if !slices.Equal(posted, documented) {
					t.Errorf("POST %s: the form posts %v, openapi.yaml documents %v", path, posted, documented)
				}
			}
		})
	}
}
