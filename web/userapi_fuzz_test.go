package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/web/jsonapi"
)

// FuzzDecodeUserAPIBodies: the request decoders of the user API never panic
// and answer only nil, 400 or 422 for any body.
func FuzzDecodeUserAPIBodies(f *testing.F) {
	for _, s := range []string{
		`{"userId":"738e379f-fe30-45ab-819c-ba88804b6368","passedLoginOTP":true}`,
		`{"otp":"773829","types":["login"]}`,
		`{"password":"x","pin":"1234"}`,
		`[]`, `null`, `{"userId":5}`, `{"types":"login"}`, `{"otp":{"a":1}}`, `{`, "\xff", `{"userId":"a","userId":"b"}`,
		`{"otp":"1","OTP":"2"}`, `{"Types":["login"],"types":["account"]}`, `{"password":"x","x":[{"k":1,"\u212a":2}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, dst := range []any{&updateSessionBody{}, &verifyOTPBody{}, &createOTPBody{}} {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if err := jsonapi.DecodeBody(r, dst); err != nil && err.Status != http.StatusBadRequest && err.Status != http.StatusUnprocessableEntity {
				t.Fatalf("body %q: status %d", body, err.Status)
			}
		}
	})
}
