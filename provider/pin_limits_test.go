package provider_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/openapitest"
)

// setPIN gives u the PIN pin through SetPIN, authorised by a fresh account
// code.
func setPIN(t *testing.T, srv *plugintest.Server, u *storage.User, pin string) {
	t.Helper()
	p := srv.Plugin.Provider
	issued, err := p.IssueOTP(t.Context(), provider.OTPRequest{Kind: provider.OTPKindAccount, User: u, InResponse: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetPIN(t.Context(), u, pin, issued.Code); err != nil {
		t.Fatal(err)
	}
}

// A 4-digit PIN has 10,000 values: CreateOTP with a pin reserves a failure
// of the user before the PIN's hash is compared, so 20 wrong PINs at once
// compare at most 5 (MaxPINFailures) and the rest answer 429; so does the
// right one until otp.failure_window passes.
func TestCreateOTP_PINBurstChecksNoMoreThanFive(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			client := srv.NewClient(t, false, "user:otp:create")
			alice := srv.NewUser(t)
			token := srv.LoginWithPassword(t, client, alice).Token.AccessToken
			u, err := srv.Store.GetUser(t.Context(), alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			setPIN(t, srv, u, "8350")
			checks := provider.CountPasswordChecks(srv.Plugin.Provider)
			createOTP := func(pin string) *http.Response {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+openapitest.DefaultPrefix+"/user/otp", strings.NewReader(`{"pin":"`+pin+`"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			got := burst(t, 20, func(int) (*http.Response, error) {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+openapitest.DefaultPrefix+"/user/otp", strings.NewReader(`{"pin":"1111"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				return http.DefaultClient.Do(req)
			})
			if got[http.StatusNotFound] != provider.MaxPINFailures || got[http.StatusTooManyRequests] != 20-provider.MaxPINFailures || checks() != provider.MaxPINFailures {
				t.Fatalf("20 wrong PINs: statuses %v, %d compared; want 5 compared (404), the rest 429", got, checks())
			}
			if resp := createOTP("8350"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || checks() != provider.MaxPINFailures {
				t.Fatalf("the right PIN after the burst: %d, %d compared; want 429 uncompared", resp.StatusCode, checks())
			}
			srv.Clock.Advance(srv.Plugin.Provider.Config().OTP.FailureWindow)
			if resp := createOTP("8350"); resp.StatusCode != http.StatusCreated {
				t.Fatalf("the right PIN after otp.failure_window: %d", resp.StatusCode)
			}
		})
	}
}

// CheckPIN (which device TOTPs use too) keeps the same limit; the right PIN
// gives its reservation back, a wrong one keeps it, and a user without a PIN
// is wrong credentials after an equal comparison.
func TestCheckPIN_RightPINGivesItsReservationBack(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			p := srv.Plugin.Provider
			alice, bob := srv.NewUser(t), srv.NewUser(t)
			u, _ := srv.Store.GetUser(t.Context(), alice.ID)
			noPIN, _ := srv.Store.GetUser(t.Context(), bob.ID)
			setPIN(t, srv, u, "8350")
			peek := func(id string) int {
				t.Helper()
				n, _, err := srv.Store.PeekRateCounter(t.Context(), "pin:user:"+id, p.Config().OTP.FailureWindow)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			checks := provider.CountPasswordChecks(p)
			if err := p.CheckPIN(t.Context(), u, "1111"); !errors.Is(err, provider.ErrInvalidCredentials) {
				t.Fatalf("wrong PIN: %v", err)
			}
			for i := range 10 {
				if err := p.CheckPIN(t.Context(), u, "8350"); err != nil {
					t.Fatalf("right PIN %d: %v", i+1, err)
				}
			}
			if n := peek(u.ID); n != 1 {
				t.Fatalf("after 1 wrong and 10 right PINs: %d failures counted, want 1", n)
			}
			if err := p.CheckPIN(t.Context(), noPIN, "8350"); !errors.Is(err, provider.ErrInvalidCredentials) || peek(noPIN.ID) != 1 {
				t.Fatalf("a user without a PIN: %v, %d counted", err, peek(noPIN.ID))
			}
			if checks() != 12 {
				t.Fatalf("%d PINs compared, want 12 (the user without one against a dummy hash)", checks())
			}
			for range provider.MaxPINFailures - 1 {
				_ = p.CheckPIN(t.Context(), u, "1111")
			}
			var tooMany *provider.TooManyAttemptsError
			if err := p.CheckPIN(t.Context(), u, "8350"); !errors.As(err, &tooMany) || tooMany.RetryAfter <= 0 || tooMany.UserID != u.ID {
				t.Fatalf("the sixth check after 5 wrong PINs: %v, want *TooManyAttemptsError", err)
			}
		})
	}
}
