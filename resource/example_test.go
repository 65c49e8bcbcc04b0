package resource_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/otpstep/otpstep/resource"
)

// A payments API that needs the second factor (aal2) within the last five
// minutes. The authorization server here is a stand-in that knows one token,
// issued to a password-only (aal1) login; against otpstep the
// IntrospectionURL is its introspection_endpoint and the client is one
// registered for the resource server (otpstep clients create).
func ExampleGuard_Protect() {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("token") != "aal1-token" {
			_, _ = io.WriteString(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"sub":"user-1","scope":"openid","acr":"aal1","amr":["pwd"],"auth_time":%d}`, time.Now().Unix())
	}))
	defer as.Close()

	guard, err := resource.New(resource.Config{
		IntrospectionURL: as.URL + "/oauth2/introspect",
		ClientID:         "payments-api",
		ClientSecret:     "its secret",
	})
	if err != nil {
		panic(err)
	}
	payments := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := resource.TokenFrom(r.Context())
		fmt.Fprintf(w, "paid by %s\n", tok.Subject)
	})
	api := httptest.NewServer(guard.Protect(resource.Require{ACR: "aal2", MaxAge: 5 * time.Minute}, payments))
	defer api.Close()

	req, _ := http.NewRequest(http.MethodPost, api.URL, nil)
	req.Header.Set("Authorization", "Bearer aal1-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	fmt.Println(resp.Header.Get("WWW-Authenticate"))
	// Output:
	// 401
	// Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="aal2", max_age="300"
}
