package jsonapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/web/requestid"
)

// serve writes e for a request with request id "req-1" and returns the recorder.
func serve(t *testing.T, write func(w http.ResponseWriter, r *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPut, "/user/2024-3/sessions/x?q=1", nil)
	r = r.WithContext(requestid.NewContext(r.Context(), "req-1"))
	w := httptest.NewRecorder()
	write(w, r)
	return w
}

func decodeDoc(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body.String(), err)
	}
	return doc
}

func TestWrite_Documents(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	tests := []struct {
		name       string
		err        *Error
		wantStatus int
		wantRetry  string
		wantBody   string
	}{
		{"bad request", BadRequest("The request body is not valid JSON."), 400, "",
			`{"errors":[{"id":"req-1","status":"400","code":"bad-request","title":"Bad request","detail":"The request body is not valid JSON."}]}`},
		{"unauthorized", Unauthorized("The access token is expired."), 401, "",
			`{"errors":[{"id":"req-1","status":"401","code":"unauthorized","title":"Unauthorized","detail":"The access token is expired."}]}`},
		{"missing linked identity", MissingLinkedIdentity(), 401, "",
			`{"errors":[{"id":"req-1","status":"401","code":"missing-linked-identity","title":"Missing linked identity for authorized access","detail":"Linked identity is needed to access this resource, please check why the user does not have a linked identity"}]}`},
		{"missing linked identity ignores caller detail", &Error{Code: CodeMissingLinkedIdentity, Detail: "other"}, 401, "",
			`{"errors":[{"id":"req-1","status":"401","code":"missing-linked-identity","title":"Missing linked identity for authorized access","detail":"Linked identity is needed to access this resource, please check why the user does not have a linked identity"}]}`},
		{"insufficient scope", InsufficientScope("user:sessions:update"), 403, "",
			`{"errors":[{"id":"req-1","status":"403","code":"insufficient-scope","title":"Insufficient scope","detail":"The access token lacks the scope user:sessions:update."}]}`},
		{"not found", NotFound("Session not found."), 404, "",
			`{"errors":[{"id":"req-1","status":"404","code":"not-found","title":"Not found","detail":"Session not found."}]}`},
		{"not acceptable", NotAcceptable(), 406, "",
			`{"errors":[{"id":"req-1","status":"406","code":"not-acceptable","title":"Not acceptable","detail":"The Accept header allows neither application/json nor application/vnd.api+json without parameters."}]}`},
		{"unsupported media type", UnsupportedMediaType(), 415, "",
			`{"errors":[{"id":"req-1","status":"415","code":"unsupported-media-type","title":"Unsupported media type","detail":"The request body must be application/json or application/vnd.api+json without parameters."}]}`},
		{"validation pointer", Validation("/userId", "userId must be a UUID."), 422, "",
			`{"errors":[{"id":"req-1","status":"422","code":"validation-failed","title":"Validation failed","detail":"userId must be a UUID.","source":{"pointer":"/userId"}}]}`},
		{"validation parameter", ValidationParam("sessionId", "sessionId must be a UUID."), 422, "",
			`{"errors":[{"id":"req-1","status":"422","code":"validation-failed","title":"Validation failed","detail":"sessionId must be a UUID.","source":{"parameter":"sessionId"}}]}`},
		{"conflict", Conflict(CodeIdentityAlreadyLinked, "The upstream subject is linked to another user."), 409, "",
			`{"errors":[{"id":"req-1","status":"409","code":"identity-already-linked","title":"Identity already linked","detail":"The upstream subject is linked to another user."}]}`},
		{"too many requests rounds up", TooManyRequests(1500 * time.Millisecond), 429, "2",
			`{"errors":[{"id":"req-1","status":"429","code":"too-many-requests","title":"Too many requests","detail":"Too many attempts, please try again later."}]}`},
		{"too many requests at least one second", TooManyRequests(0), 429, "1",
			`{"errors":[{"id":"req-1","status":"429","code":"too-many-requests","title":"Too many requests","detail":"Too many attempts, please try again later."}]}`},
		{"internal hides cause and detail", &Error{Status: 500, Code: CodeInternalError, Detail: "secret detail", Cause: cause}, 500, "",
			`{"errors":[{"id":"req-1","status":"500","code":"internal-error","title":"Internal server error","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`},
		{"unavailable hides cause", Unavailable(30*time.Second, cause), 503, "30",
			`{"errors":[{"id":"req-1","status":"503","code":"unavailable","title":"Service unavailable","detail":"The service is temporarily unavailable, please try again later."}]}`},
		{"unlisted 5xx hides detail", &Error{Status: 502, Code: "bad-gateway", Detail: "upstream said 10.0.0.5"}, 502, "",
			`{"errors":[{"id":"req-1","status":"502","code":"bad-gateway","title":"Bad Gateway","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`},
		{"unlisted 4xx code keeps detail", Conflict("email-taken", "The email is taken."), 409, "",
			`{"errors":[{"id":"req-1","status":"409","code":"email-taken","title":"Conflict","detail":"The email is taken."}]}`},
		{"5xx drops source", &Error{Status: 500, Code: CodeInternalError, Pointer: "/secret"}, 500, "",
			`{"errors":[{"id":"req-1","status":"500","code":"internal-error","title":"Internal server error","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`},
		{"status only derives code", &Error{Status: 404}, 404, "",
			`{"errors":[{"id":"req-1","status":"404","code":"not-found","title":"Not found","detail":"The requested resource was not found."}]}`},
		{"code only derives status", &Error{Code: CodeBadRequest, Detail: "x"}, 400, "",
			`{"errors":[{"id":"req-1","status":"400","code":"bad-request","title":"Bad request","detail":"x"}]}`},
		{"no status or code is internal", &Error{Detail: "leak"}, 500, "",
			`{"errors":[{"id":"req-1","status":"500","code":"internal-error","title":"Internal server error","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`},
		{"nil is internal", nil, 500, "",
			`{"errors":[{"id":"req-1","status":"500","code":"internal-error","title":"Internal server error","detail":"An unexpected error occurred; please quote the error id when reporting it."}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, func(w http.ResponseWriter, r *http.Request) { Write(w, r, tt.err) })
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("Content-Type"); got != "application/vnd.api+json" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
				t.Errorf("body =\n%s\nwant\n%s", got, tt.wantBody)
			}
			if strings.Contains(w.Body.String(), "10.0.0.5") {
				t.Errorf("body leaks the cause: %s", w.Body.String())
			}
		})
	}
}

func TestWrite_RetryAfterRounding(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{time.Nanosecond, "1"},
		{time.Second, "1"},
		{time.Second + time.Nanosecond, "2"},
		{90 * time.Second, "90"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			w := serve(t, func(w http.ResponseWriter, r *http.Request) {
				Write(w, r, &Error{Status: 404, Code: CodeNotFound, RetryAfter: tt.d})
			})
			if got := w.Header().Get("Retry-After"); got != tt.want {
				t.Fatalf("Retry-After = %q, want %q", got, tt.want)
			}
			// The pages name the moment RetryAfter gives: the header's.
			if got := fmt.Sprint(int64(RetryAfter(tt.d) / time.Second)); got != tt.want {
				t.Fatalf("RetryAfter(%s) = %s s, want %s s", tt.d, got, tt.want)
			}
		})
	}
}

func TestError_UnwrapsCause(t *testing.T) {
	cause := errors.New("boom")
	e := Internal(cause)
	if !errors.Is(e, cause) {
		t.Fatal("errors.Is(Internal(cause), cause) = false")
	}
	if !strings.Contains(e.Error(), "boom") || !strings.Contains(e.Error(), "internal-error") {
		t.Fatalf("Error() = %q", e.Error())
	}
}

func TestWriter_LogsServerErrorsWithCause(t *testing.T) {
	var logs bytes.Buffer
	wr := Writer{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	cause := errors.New("connection refused")
	w := serve(t, func(w http.ResponseWriter, r *http.Request) {
		wr.Write(w, r, fmt.Errorf("update session: %w", Unavailable(5*time.Second, cause)))
	})
	if w.Code != 503 || w.Header().Get("Retry-After") != "5" {
		t.Fatalf("status %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if strings.Contains(w.Body.String(), "connection refused") {
		t.Fatalf("body leaks cause: %s", w.Body.String())
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	want := map[string]any{"level": "ERROR", "status": float64(503), "code": "unavailable", "request_id": "req-1",
		"method": "PUT", "path": "/user/2024-3/sessions/x"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if msg, _ := line["error"].(string); !strings.Contains(msg, "update session") || !strings.Contains(msg, "connection refused") {
		t.Errorf("log error = %q, want the whole chain", msg)
	}
}

func TestWriter_PlainErrorIsInternal(t *testing.T) {
	var logs bytes.Buffer
	wr := Writer{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	w := serve(t, func(w http.ResponseWriter, r *http.Request) { wr.Write(w, r, errors.New("sql: no rows")) })
	if w.Code != 500 {
		t.Fatalf("status = %d", w.Code)
	}
	doc := decodeDoc(t, w)
	obj := doc["errors"].([]any)[0].(map[string]any)
	if obj["code"] != "internal-error" || obj["id"] != "req-1" {
		t.Fatalf("object = %v", obj)
	}
	if strings.Contains(w.Body.String(), "sql") {
		t.Fatalf("body leaks cause: %s", w.Body.String())
	}
	if !strings.Contains(logs.String(), "sql: no rows") {
		t.Fatalf("cause not logged: %s", logs.String())
	}
}

func TestWriter_ClientErrorsNotLoggedAtErrorLevel(t *testing.T) {
	var logs bytes.Buffer
	wr := Writer{Logger: slog.New(slog.NewJSONHandler(&logs, nil))} // info level
	w := serve(t, func(w http.ResponseWriter, r *http.Request) { wr.Write(w, r, NotFound("no such session")) })
	if w.Code != 404 {
		t.Fatalf("status = %d", w.Code)
	}
	if logs.Len() != 0 {
		t.Fatalf("4xx logged above debug: %s", logs.String())
	}
}

func TestWriter_NilLoggerWrites(t *testing.T) {
	w := serve(t, func(w http.ResponseWriter, r *http.Request) { Writer{}.Write(w, r, errors.New("x")) })
	if w.Code != 500 {
		t.Fatalf("status = %d", w.Code)
	}
}
