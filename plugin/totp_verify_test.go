package plugin_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// totpCodeAt is the code of a new TOTP's secret at t, as a device or an
// authenticator app computes it.
func totpCodeAt(t *testing.T, k *provider.NewTOTP, at time.Time) string {
	t.Helper()
	algs := map[string]otp.Algorithm{"SHA1": otp.AlgorithmSHA1, "SHA256": otp.AlgorithmSHA256, "SHA512": otp.AlgorithmSHA512}
	alg, ok := algs[k.Algorithm]
	if !ok {
		t.Fatalf("algorithm %q", k.Algorithm)
	}
	code, err := totp.GenerateCodeCustom(k.Secret, at, totp.ValidateOpts{Period: uint(k.Period), Digits: otp.Digits(k.Digits), Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// VerifyOTP types ["device-totp"] (and PACE's default types, which name it)
// checks the user's device TOTPs, ["totp"] the confirmed authenticator: a
// right code → 204 and the token's session passes; the same code again, a
// code two steps off, or one of the other kind → 404; past
// otp.max_failures_per_user → 429, as for every kind.
func TestVerifyOTP_TOTPKinds(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		tok, sid, _, alice := challenge(t, srv, api)
		p := srv.Plugin.Provider
		ctx := t.Context()
		dev, err := p.CreateDeviceTOTP(ctx, alice.User, uuid.NewString())
		if err != nil {
			t.Fatal(err)
		}
		now := func() time.Time { return srv.Clock.Now() }
		if r := api.verify(tok, totpCodeAt(t, dev, now().Add(-2*provider.TOTPPeriod*time.Second)), "device-totp"); r.Status != 404 || r.errorCode(t) != "not-found" {
			t.Fatalf("a device code two steps old: %d %s", r.Status, r.Body)
		}
		code := totpCodeAt(t, dev, now())
		if r := api.verify(tok, code, "device-totp"); r.Status != 204 {
			t.Fatalf("device code: %d %s", r.Status, r.Body)
		}
		ls, err := srv.Store.GetLoginSession(ctx, sid)
		if err != nil || !ls.PassedLoginOTP {
			t.Fatalf("session after a device code: %+v %v", ls, err)
		}
		if r := api.verify(tok, code, "device-totp"); r.Status != 404 {
			t.Fatalf("device code replayed: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		if r := api.verify(tok, totpCodeAt(t, dev, now()), "totp"); r.Status != 404 {
			t.Fatalf("a device code as totp: %d %s", r.Status, r.Body)
		}
		if r := api.verify(tok, totpCodeAt(t, dev, now())); r.Status != 204 {
			t.Fatalf("device code with PACE's default types: %d %s", r.Status, r.Body)
		}

		k, err := p.BeginAuthenticatorTOTP(ctx, alice.User)
		if err != nil {
			t.Fatal(err)
		}
		if r := api.verify(tok, totpCodeAt(t, k, now()), "totp"); r.Status != 404 {
			t.Fatalf("an unconfirmed authenticator's code: %d %s", r.Status, r.Body)
		}
		if err := p.ConfirmAuthenticatorTOTP(ctx, alice.User, k.ID, totpCodeAt(t, k, now())); err != nil {
			t.Fatal(err)
		}
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		if r := api.verify(tok, totpCodeAt(t, k, now()), "totp", "login"); r.Status != 204 {
			t.Fatalf("authenticator code: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		if r := api.verify(tok, totpCodeAt(t, k, now()), "device-totp"); r.Status != 404 {
			t.Fatalf("an authenticator code as device-totp: %d %s", r.Status, r.Body)
		}

		// A new failure window: the refusals above counted in the last one.
		srv.Clock.Advance(p.Config().OTP.FailureWindow)
		right := totpCodeAt(t, k, now())
		for i := 0; i < p.Config().OTP.MaxFailuresPerUser; i++ {
			if r := api.verify(tok, wrongCode(right), "totp"); r.Status != 404 {
				t.Fatalf("wrong code %d: %d %s", i, r.Status, r.Body)
			}
		}
		if r := api.verify(tok, right, "totp"); r.Status != 429 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("the right code past otp.max_failures_per_user: %d %s", r.Status, r.Body)
		}
	})
}
