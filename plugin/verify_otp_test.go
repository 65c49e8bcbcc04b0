package plugin_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/storage"
)

type storageLinkedIdentity = storage.LinkedIdentity

// challenge logs alice in (aal1 token with sid) and asks for a login OTP on
// her session through PUT /sessions/{sid}.
func challenge(t *testing.T, srv *plugintest.Server, api *apiClient) (tok, sid, code string, alice *plugintest.User) {
	t.Helper()
	client := srv.NewLoginUI(t, allUserScopes...)
	alice = srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, alice)
	resp := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false)
	if resp.Status != 200 {
		t.Fatalf("challenge: %d %s", resp.Status, resp.Body)
	}
	code, _ = resp.json(t)["otp"].(string)
	return login.Token.AccessToken, login.SID, code, alice
}

func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestVerifyOTP_StatusTable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		tok, sid, code, _ := challenge(t, srv, api)

		if r := api.verify(tok, code, "login", "bogus"); r.Status != 422 || r.errorCode(t) != "validation-failed" || r.errorObject(t)["source"].(map[string]any)["pointer"] != "/types" {
			t.Fatalf("unknown type: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPost, "/user/otp/verify", tok, "application/json", `{"types":["login"]}`); r.Status != 422 {
			t.Fatalf("missing otp: %d %s", r.Status, r.Body)
		}
		// PACE's default types (device-totp, account) do not look at login codes.
		if r := api.verify(tok, code); r.Status != 404 {
			t.Fatalf("default types with a login code: %d %s", r.Status, r.Body)
		}
		if r := api.verify(tok, code, "totp", "device-totp"); r.Status != 404 {
			t.Fatalf("totp types: %d %s", r.Status, r.Body)
		}
		if r := api.verify(tok, wrongCode(code), "login"); r.Status != 404 || r.errorCode(t) != "not-found" {
			t.Fatalf("wrong code: %d %s", r.Status, r.Body)
		}
		if r := api.verify(tok, code, "login"); r.Status != 204 {
			t.Fatalf("right code: %d %s", r.Status, r.Body)
		}
		// Single use.
		if r := api.verify(tok, code, "login"); r.Status != 404 {
			t.Fatalf("code reused: %d %s", r.Status, r.Body)
		}
		ls, err := srv.Store.GetLoginSession(t.Context(), sid)
		if err != nil || !ls.PassedLoginOTP {
			t.Fatalf("session not passed: %+v %v", ls, err)
		}
	})
}

func TestVerifyOTP_ChallengeBurnsAfterMaxAttempts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		tok, sid, code, alice := challenge(t, srv, api)
		for i := 0; i < 5; i++ {
			if r := api.verify(tok, wrongCode(code), "login"); r.Status != 404 {
				t.Fatalf("wrong try %d: %d %s", i+1, r.Status, r.Body)
			}
		}
		// Burned: even the right code now answers 429 until a new challenge.
		r := api.verify(tok, code, "login")
		if r.Status != 429 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("after max attempts: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(31e9)
		fresh := api.putSession(tok, sid, alice.ID, false)
		newCode, _ := fresh.json(t)["otp"].(string)
		if r := api.verify(tok, newCode, "login"); r.Status != 204 {
			t.Fatalf("new challenge: %d %s", r.Status, r.Body)
		}
	})
}

func TestVerifyOTP_ParallelWrongCodesCountExactlyMaxAttempts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 1000 })
		api := newAPIClient(t, srv)
		tok, sid, code, alice := challenge(t, srv, api)
		var notFound, tooMany, other atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch api.verify(tok, wrongCode(code), "login").Status {
				case 404:
					notFound.Add(1)
				case 429:
					tooMany.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if notFound.Load() != 5 || tooMany.Load() != 45 || other.Load() != 0 {
			t.Fatalf("404=%d 429=%d other=%d, want 5/45/0", notFound.Load(), tooMany.Load(), other.Load())
		}
		ch, err := srv.Store.LiveOTPChallenge(t.Context(), "login", alice.ID, sid)
		if err != nil || ch.Attempts != 5 {
			t.Fatalf("challenge after the race: %+v %v, want exactly 5 attempts counted", ch, err)
		}
	})
}

func TestVerifyOTP_ParallelRightCodesExactlyOneWins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		tok, _, code, _ := challenge(t, srv, api)
		var ok, notOK atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if api.verify(tok, code, "login").Status == 204 {
					ok.Add(1)
				} else {
					notOK.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || notOK.Load() != 1 {
			t.Fatalf("204s=%d others=%d", ok.Load(), notOK.Load())
		}
	})
}

func TestVerifyOTP_PerUserFailureLimitAcrossSessions(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 3 })
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, allUserScopes...)
	alice := srv.NewUser(t)
	var last apiResponse
	for i := 0; i < 4; i++ {
		// A new session (and challenge) each time: only the per-user limit can stop this.
		login := srv.LoginWithPassword(t, client, alice)
		resp := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false)
		code, _ := resp.json(t)["otp"].(string)
		last = api.verify(login.Token.AccessToken, wrongCode(code), "login")
		if i < 3 && last.Status != 404 {
			t.Fatalf("try %d: %d %s", i+1, last.Status, last.Body)
		}
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("4th wrong try: %d %s", last.Status, last.Body)
	}
	_ = uuid.NewString
}
