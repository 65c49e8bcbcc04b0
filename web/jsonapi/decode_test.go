package jsonapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type sessionBody struct {
	UserID         string `json:"userId"`
	PassedLoginOTP bool   `json:"passedLoginOTP"`
	Types          []string
	Nested         struct {
		Count int `json:"count"`
	} `json:"nested"`
	Slashed int `json:"a/b~c"`
}

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name        string
		body        io.Reader
		wantStatus  int
		wantPointer string
		wantDetail  string
	}{
		{"object", strings.NewReader(`{"userId":"u1","passedLoginOTP":true}`), 0, "", ""},
		{"unknown members ignored", strings.NewReader(`{"userId":"u1","extra":{"x":1}}`), 0, "", ""},
		{"surrounding whitespace", strings.NewReader(" \n{\"userId\":\"u1\"}\n "), 0, "", ""},
		{"empty", strings.NewReader(""), 400, "", "The request body is empty; a JSON object is required."},
		{"nil body", nil, 400, "", "The request body is empty; a JSON object is required."},
		{"not json", strings.NewReader(`userId=u1`), 400, "", "The request body is not valid JSON."},
		{"truncated", strings.NewReader(`{"userId":`), 400, "", "The request body is not valid JSON."},
		{"two objects", strings.NewReader(`{}{}`), 400, "", "The request body is not valid JSON."},
		{"array", strings.NewReader(`[{"userId":"u1"}]`), 400, "", "The request body must be a JSON object."},
		{"string", strings.NewReader(`"x"`), 400, "", "The request body must be a JSON object."},
		{"null", strings.NewReader(`null`), 400, "", "The request body must be a JSON object."},
		{"too large", strings.NewReader(`{"userId":"` + strings.Repeat("a", MaxBodyBytes) + `"}`), 400, "",
			"The request body is too large; at most 64 KiB are accepted."},
		{"type mismatch", strings.NewReader(`{"userId":42}`), 422, "/userId", "The member userId must not be a number."},
		{"bool mismatch", strings.NewReader(`{"passedLoginOTP":"yes"}`), 422, "/passedLoginOTP", "The member passedLoginOTP must not be a string."},
		{"nested mismatch", strings.NewReader(`{"nested":{"count":"x"}}`), 422, "/nested/count", "The member nested.count must not be a string."},
		{"pointer escaping", strings.NewReader(`{"a/b~c":"x"}`), 422, "/a~1b~0c", "The member a/b~c must not be a string."},
		{"element type mismatch", strings.NewReader(`{"Types":["x",5]}`), 422, "/Types/1", "The member Types.1 must not be a number."},
		{"duplicate member", strings.NewReader(`{"userId":"u1","userId":"u2"}`), 400, "/userId",
			"The member userId appears more than once."},
		{"duplicate unknown member", strings.NewReader(`{"userId":"u1","x":1,"x":2}`), 400, "/x",
			"The member x appears more than once."},
		{"duplicate nested member", strings.NewReader(`{"userId":"u1","nested":{"count":1,"count":2}}`), 400, "/nested/count",
			"The member nested.count appears more than once."},
		{"member differing only in case", strings.NewReader(`{"userId":"u1","USERID":"u2"}`), 400, "/USERID",
			"The member USERID differs from the member userId only in case."},
		{"case variant first", strings.NewReader(`{"UserId":"u2","userId":"u1"}`), 400, "/userId",
			"The member userId differs from the member UserId only in case."},
		{"case variant in a nested object", strings.NewReader(`{"userId":"u1","nested":{"count":1,"Count":2}}`), 400, "/nested/Count",
			"The member nested.Count differs from the member count only in case."},
		{"case variant by Unicode folding", strings.NewReader(`{"userId":"u1","k":1,"\u212a":2}`), 400, "/\u212a",
			"The member \u212a differs from the member k only in case."},
		{"case variant escaping", strings.NewReader(`{"userId":"u1","a/b":1,"A/B":2}`), 400, "/A~1B",
			"The member A/B differs from the member a/b only in case."},
		{"duplicate in an array element", strings.NewReader(`{"userId":"u1","list":[{"a":1},{"b":1,"b":2}]}`), 400, "/list/1/b",
			"The member list.1.b appears more than once."},
		{"invalid UTF-8", strings.NewReader("{\"userId\":\"u1\xff\"}"), 400, "", "The request body is not valid JSON."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/x", tt.body)
			if tt.body == nil {
				r.Body = nil
			}
			var dst sessionBody
			got := DecodeBody(r, &dst)
			if tt.wantStatus == 0 {
				if got != nil {
					t.Fatalf("DecodeBody = %v, want nil", got)
				}
				if dst.UserID != "u1" {
					t.Fatalf("UserID = %q", dst.UserID)
				}
				return
			}
			if got == nil {
				t.Fatalf("DecodeBody = nil, want %d", tt.wantStatus)
			}
			wantCode := CodeBadRequest
			if tt.wantStatus == 422 {
				wantCode = CodeValidationFailed
			}
			if got.Status != tt.wantStatus || got.Code != wantCode || got.Pointer != tt.wantPointer || got.Detail != tt.wantDetail {
				t.Fatalf("DecodeBody = {%d %s %q %q}, want {%d %s %q %q}",
					got.Status, got.Code, got.Pointer, got.Detail, tt.wantStatus, wantCode, tt.wantPointer, tt.wantDetail)
			}
		})
	}
}

// TestDecodeBody_NamesMatchCaseSensitively: a member named like a field
// but in another case is an unknown member (ignored), not the field, as
// encoding/json would have it.
func TestDecodeBody_NamesMatchCaseSensitively(t *testing.T) {
	for _, body := range []string{`{"UserID":"u1"}`, `{"userid":"u1","passedloginotp":true}`, `{"types":["login"]}`} {
		r := httptest.NewRequest(http.MethodPut, "/x", strings.NewReader(body))
		var dst sessionBody
		if err := DecodeBody(r, &dst); err != nil {
			t.Fatalf("DecodeBody(%s) = %v", body, err)
		}
		if dst.UserID != "" || dst.PassedLoginOTP || dst.Types != nil {
			t.Fatalf("DecodeBody(%s) matched a member by case folding: %+v", body, dst)
		}
	}
}

func TestDecodeBody_ExactlyMaxSizeAccepted(t *testing.T) {
	prefix, suffix := `{"userId":"u1","pad":"`, `"}`
	body := prefix + strings.Repeat("a", MaxBodyBytes-len(prefix)-len(suffix)) + suffix
	r := httptest.NewRequest(http.MethodPut, "/x", bytes.NewReader([]byte(body)))
	var dst sessionBody
	if err := DecodeBody(r, &dst); err != nil {
		t.Fatalf("DecodeBody(64 KiB) = %v", err)
	}
}

func TestDecodeBody_NonPointerIsInternal(t *testing.T) {
	r := httptest.NewRequest(http.MethodPut, "/x", strings.NewReader(`{}`))
	got := DecodeBody(r, sessionBody{})
	if got == nil || got.Status != 500 {
		t.Fatalf("DecodeBody(non-pointer) = %v, want 500", got)
	}
}

// TestDecodeOptionalBody: no body, an empty one (as Android's SDK sends it,
// with a Content-Type) or a blank one is absent and leaves dst alone; any
// other body is decoded, or refused, exactly as DecodeBody does.
func TestDecodeOptionalBody(t *testing.T) {
	tests := []struct {
		name        string
		body        io.Reader
		wantPresent bool
		wantStatus  int
		wantUserID  string
	}{
		{"nil body", nil, false, 0, "kept"},
		{"empty", strings.NewReader(""), false, 0, "kept"},
		{"blank", strings.NewReader(" \r\n\t"), false, 0, "kept"},
		{"object", strings.NewReader(`{"userId":"u1"}`), true, 0, "u1"},
		{"empty object", strings.NewReader(`{}`), true, 0, "kept"},
		{"not json", strings.NewReader(`userId=u1`), true, 400, "kept"},
		{"array", strings.NewReader(`[]`), true, 400, "kept"},
		{"type mismatch", strings.NewReader(`{"userId":42}`), true, 422, "kept"},
		{"too large", strings.NewReader(`{"userId":"` + strings.Repeat("a", MaxBodyBytes) + `"}`), true, 400, "kept"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/x", tc.body)
			if tc.body == nil {
				r.Body = nil
			}
			dst := sessionBody{UserID: "kept"}
			present, err := DecodeOptionalBody(r, &dst)
			if present != tc.wantPresent {
				t.Fatalf("present %v, want %v", present, tc.wantPresent)
			}
			switch {
			case tc.wantStatus == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantStatus != 0 && (err == nil || err.Status != tc.wantStatus):
				t.Fatalf("error %v, want status %d", err, tc.wantStatus)
			}
			if tc.wantStatus == 0 && dst.UserID != tc.wantUserID {
				t.Fatalf("userId %q, want %q", dst.UserID, tc.wantUserID)
			}
		})
	}
}
