package provider_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// totpAt is the code of a NewTOTP's secret at t, computed apart from the
// provider (as a device or an authenticator app would).
func totpAt(t *testing.T, k *provider.NewTOTP, at time.Time) string {
	t.Helper()
	if k.Algorithm != "SHA1" {
		t.Fatalf("algorithm %s", k.Algorithm)
	}
	code, err := totp.GenerateCodeCustom(k.Secret, at, totp.ValidateOpts{Period: uint(k.Period), Digits: otp.Digits(k.Digits), Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// stepStart is the start of the time step holding the clock's now, so that
// codes of the steps around it do not depend on where in its step the test
// happens to run.
func stepStart(srv *plugintest.Server) time.Time {
	now := srv.Clock.Now()
	return now.Truncate(provider.TOTPPeriod * time.Second)
}

// Device TOTPs: a code of now's step or one step either side is accepted,
// two steps off refused; a step is accepted once per device (replay), and
// never one earlier than a step used; failures count in
// otp.max_failures_per_user; a match passes the token's login session (amr
// otp) and its audit event names the method.
func TestDeviceTOTP_SkewReplayAndFailures(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			ctx := t.Context()
			u := v.user.User
			dev, err := v.p.CreateDeviceTOTP(ctx, u, "3d3b4e2c-5a4e-4a39-9d2f-1f1f5b0c2d61")
			if err != nil {
				t.Fatal(err)
			}
			if dev.Secret == "" || dev.Period != 30 || dev.Digits != 6 || dev.Algorithm != "SHA1" || dev.Kind != provider.TOTPKindDevice {
				t.Fatalf("new device TOTP %+v", dev)
			}
			// Move to 10 s into a step, so that ±1 and ±2 steps are exact.
			now := v.srv.Clock.Now()
			v.srv.Clock.Advance(stepStart(v.srv).Add(40 * time.Second).Sub(now))
			now = v.srv.Clock.Now()
			step := func(d int) time.Time { return now.Add(time.Duration(d) * 30 * time.Second) }
			verify := func(code string) error {
				_, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, v.sid, code)
				return err
			}
			for _, d := range []int{-2, 2} {
				if err := verify(totpAt(t, dev, step(d))); !errors.Is(err, provider.ErrOTPMismatch) {
					t.Fatalf("a code %+d steps off: %v, want ErrOTPMismatch", d, err)
				}
			}
			if got := v.failures(t); got != 2 {
				t.Fatalf("failures after two refused codes: %d, want 2", got)
			}
			if err := verify(totpAt(t, dev, step(-1))); err != nil {
				t.Fatalf("a code one step back: %v", err)
			}
			ls, err := v.srv.Store.GetLoginSession(ctx, v.sid)
			if err != nil {
				t.Fatal(err)
			}
			if !ls.PassedLoginOTP || !slices.Contains(provider.AMR(ls), provider.AMROTP) {
				t.Fatalf("session after a device TOTP: passed %v amr %v", ls.PassedLoginOTP, provider.AMR(ls))
			}
			if err := verify(totpAt(t, dev, step(-1))); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("the same code again (replay): %v, want ErrOTPMismatch", err)
			}
			if err := verify(totpAt(t, dev, step(1))); err != nil {
				t.Fatalf("a code one step ahead: %v", err)
			}
			if err := verify(totpAt(t, dev, step(0))); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("now's code after the next step's was used: %v, want ErrOTPMismatch", err)
			}
			if got := v.failures(t); got != 4 {
				t.Fatalf("failures: %d, want 4 (two off, one replay, one earlier step)", got)
			}
			// The kind is checked: a device's code is no authenticator's.
			v.srv.Clock.Advance(2 * time.Minute)
			if err := verify(totpAt(t, dev, v.srv.Clock.Now())); err != nil {
				t.Fatalf("a later step's code: %v", err)
			}
			v.srv.Clock.Advance(time.Minute)
			if _, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindTOTP}, u, v.sid, totpAt(t, dev, v.srv.Clock.Now())); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("a device code as totp: %v, want ErrOTPMismatch", err)
			}
			events, err := v.srv.Store.ListAuditEvents(ctx, u.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			passed := 0
			for _, e := range events {
				if e.Type == provider.AuditOTPVerifyPassed && e.Detail["method"] == provider.OTPKindDeviceTOTP && e.Detail["totp_id"] == dev.ID {
					passed++
				}
			}
			if passed != 3 {
				t.Fatalf("otp.verify_passed events naming device-totp: %d, want 3", passed)
			}
			if u2, _ := v.srv.Store.GetUser(ctx, u.ID); u2.EmailVerified {
				t.Fatal("a TOTP marked the email verified")
			}
		})
	}
}

// The failure limit holds for TOTP codes as for emailed ones: past
// otp.max_failures_per_user even the right code is refused until the window
// passes.
func TestTOTP_FailuresReachTheUserLimit(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			ctx := t.Context()
			u := v.user.User
			dev, err := v.p.CreateDeviceTOTP(ctx, u, "b7c1f7f0-5d0f-4f7a-8f5e-1b2b3c4d5e6f")
			if err != nil {
				t.Fatal(err)
			}
			limit := v.p.Config().OTP.MaxFailuresPerUser
			for i := range limit {
				if _, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", "000000"+string(rune('0'+i%10))); !errors.Is(err, provider.ErrOTPMismatch) {
					t.Fatalf("wrong code %d: %v", i, err)
				}
			}
			var tooMany *provider.TooManyAttemptsError
			if _, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", totpAt(t, dev, v.srv.Clock.Now())); !errors.As(err, &tooMany) || tooMany.Limit != "otp.max_failures_per_user" {
				t.Fatalf("the right code past the limit: %v, want otp.max_failures_per_user", err)
			}
			v.srv.Clock.Advance(v.p.Config().OTP.FailureWindow)
			if _, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", totpAt(t, dev, v.srv.Clock.Now())); err != nil {
				t.Fatalf("the right code after the window: %v", err)
			}
		})
	}
}

// An authenticator: begun (secret and otpauth URI), it verifies nothing
// until confirmed with a first code; the confirming code's step is used;
// listed without its secret; deleted only by its user.
func TestAuthenticatorTOTP_EnrollConfirmVerifyDelete(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			ctx := t.Context()
			u := v.user.User
			other := v.srv.NewUser(t).User
			k, err := v.p.BeginAuthenticatorTOTP(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			uri, err := url.Parse(k.URI)
			if err != nil || uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Query().Get("secret") != k.Secret ||
				uri.Query().Get("issuer") != v.p.Config().UI.ProductName || uri.Path != "/"+v.p.Config().UI.ProductName+":"+u.Email {
				t.Fatalf("otpauth URI %q (%v)", k.URI, err)
			}
			code := totpAt(t, k, v.srv.Clock.Now())
			totpVerify := func(code string) error {
				_, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindTOTP}, u, "", code)
				return err
			}
			if err := totpVerify(code); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("an unconfirmed authenticator's code: %v, want ErrOTPMismatch", err)
			}
			if has, err := v.p.HasAuthenticatorTOTP(ctx, u.ID); err != nil || has {
				t.Fatalf("HasAuthenticatorTOTP before confirmation: %v %v", has, err)
			}
			if err := v.p.ConfirmAuthenticatorTOTP(ctx, other, k.ID, code); !errors.Is(err, provider.ErrTOTPNotFound) {
				t.Fatalf("another user confirms: %v, want ErrTOTPNotFound", err)
			}
			before := v.failures(t)
			if err := v.p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, wrong(code)); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("confirm with a wrong code: %v, want ErrOTPMismatch", err)
			}
			if got := v.failures(t); got != before+1 {
				t.Fatalf("a wrong confirmation counted %d, want 1", got-before)
			}
			if err := v.p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, code); err != nil {
				t.Fatalf("confirm: %v", err)
			}
			if err := v.p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, code); !errors.Is(err, provider.ErrTOTPNotFound) {
				t.Fatalf("confirm again: %v, want ErrTOTPNotFound", err)
			}
			if err := totpVerify(code); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("the confirming code again: %v, want ErrOTPMismatch (its step is used)", err)
			}
			v.srv.Clock.Advance(provider.TOTPPeriod * time.Second)
			if err := totpVerify(totpAt(t, k, v.srv.Clock.Now())); err != nil {
				t.Fatalf("the next step's code: %v", err)
			}
			if has, err := v.p.HasAuthenticatorTOTP(ctx, u.ID); err != nil || !has {
				t.Fatalf("HasAuthenticatorTOTP after confirmation: %v %v", has, err)
			}
			list, err := v.p.ListTOTPs(ctx, u.ID)
			if err != nil || len(list) != 1 || list[0].ID != k.ID || !list[0].Confirmed || list[0].Kind != provider.TOTPKindAuthenticator || list[0].LastUsedAt.IsZero() {
				t.Fatalf("ListTOTPs: %+v %v", list, err)
			}
			// The secret is sealed at rest.
			creds, err := v.srv.Store.ListTOTPCredentials(ctx, u.ID, "")
			if err != nil || len(creds) != 1 || bytes.Contains(creds[0].Sealed, []byte(k.Secret)) {
				t.Fatalf("stored credential: %v %v", creds, err)
			}
			if err := v.p.DeleteTOTP(ctx, other.ID, k.ID); !errors.Is(err, provider.ErrTOTPNotFound) {
				t.Fatalf("another user deletes: %v, want ErrTOTPNotFound", err)
			}
			if err := v.p.DeleteTOTP(ctx, u.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			v.srv.Clock.Advance(provider.TOTPPeriod * time.Second)
			if err := totpVerify(totpAt(t, k, v.srv.Clock.Now())); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("a deleted authenticator's code: %v, want ErrOTPMismatch", err)
			}
		})
	}
}

// The secrets depend on secrets.system alone: after otpstep keys rotate (a
// new signing key) and on a second instance on the same database, a TOTP
// still verifies.
func TestTOTP_ReadableAfterKeyRotationAndOnAnotherInstance(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			store := plugintest.NewStore(t, dialect)
			srv := plugintest.StartOn(t, store, nil)
			u := srv.NewUser(t).User
			ctx := t.Context()
			dev, err := srv.Plugin.Provider.CreateDeviceTOTP(ctx, u, "0f7e2c58-8a51-4c8c-9b8e-6f3c9d1a2b3c")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Plugin.Provider.Keys.RotateAlg(ctx, srv.Plugin.Provider.Keys.DefaultAlgorithm()); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Plugin.Provider.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", totpAt(t, dev, srv.Clock.Now())); err != nil {
				t.Fatalf("after keys rotate: %v", err)
			}
			second := plugintest.StartOn(t, store, nil)
			second.Clock.Advance(srv.Clock.Now().Sub(second.Clock.Now()) + provider.TOTPPeriod*time.Second)
			if _, err := second.Plugin.Provider.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", totpAt(t, dev, second.Clock.Now())); err != nil {
				t.Fatalf("on a second instance: %v", err)
			}
		})
	}
}

// The sign-in page's path: an authenticator code passes the browser's
// session under a new browser key; a wrong one spends nothing of it.
func TestPassLoginTOTPInBrowser_PassesTheSessionUnderANewKey(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			ctx := t.Context()
			u := v.user.User
			k, err := v.p.BeginAuthenticatorTOTP(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, totpAt(t, k, v.srv.Clock.Now())); err != nil {
				t.Fatal(err)
			}
			v.srv.Clock.Advance(provider.TOTPPeriod * time.Second)
			ls, err := v.srv.Store.GetLoginSession(ctx, v.sid)
			if err != nil {
				t.Fatal(err)
			}
			code := totpAt(t, k, v.srv.Clock.Now())
			if err := v.p.PassLoginTOTPInBrowser(ctx, u, ls, wrong(code)); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("wrong code: %v", err)
			}
			if err := v.p.PassLoginTOTPInBrowser(ctx, u, ls, code); err != nil {
				t.Fatal(err)
			}
			after, err := v.srv.Store.GetLoginSession(ctx, v.sid)
			if err != nil {
				t.Fatal(err)
			}
			if ls.BrowserKey == "" || !after.PassedLoginOTP || !slices.Contains(provider.AMR(after), provider.AMROTP) {
				t.Fatalf("after the code: key %q passed %v amr %v", ls.BrowserKey, after.PassedLoginOTP, provider.AMR(after))
			}
			// The emailed login code of the session is burned.
			if _, err := v.verify(t, v.code); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("the emailed code after the TOTP: %v, want ErrOTPMismatch", err)
			}
		})
	}
}

// One code, sent at once to two instances on one database, is accepted
// exactly once: the step is taken by a conditional UPDATE, not a check in
// memory.
func TestDeviceTOTP_OneCodeOnceAcrossInstances(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			store := plugintest.NewStore(t, dialect)
			a, b := plugintest.StartOn(t, store, nil), plugintest.StartOn(t, store, nil)
			b.Clock.Advance(a.Clock.Now().Sub(b.Clock.Now()))
			u := a.NewUser(t).User
			dev, err := a.Plugin.Provider.CreateDeviceTOTP(t.Context(), u, "6c1e7d3a-2b4f-4e8a-9c5d-7e6f5a4b3c2d")
			if err != nil {
				t.Fatal(err)
			}
			code := totpAt(t, dev, a.Clock.Now())
			const n = 8
			errs := make(chan error, n)
			for i := range n {
				p := a.Plugin.Provider
				if i%2 == 1 {
					p = b.Plugin.Provider
				}
				go func() {
					_, err := p.VerifyOTP(context.Background(), []string{provider.OTPKindDeviceTOTP}, u, "", code)
					errs <- err
				}()
			}
			accepted := 0
			for range n {
				switch err := <-errs; {
				case err == nil:
					accepted++
				case !errors.Is(err, provider.ErrOTPMismatch):
					t.Fatalf("a refused copy: %v, want ErrOTPMismatch", err)
				}
			}
			if accepted != 1 {
				t.Fatalf("one code sent %d times to two instances: accepted %d times, want once", n, accepted)
			}
		})
	}
}

// A TOTP whose secret no longer opens (secrets.system changed since it was
// sealed) matches nothing and never fails the verification of the user's
// other codes: PACE's default types try device-totp before account.
func TestTOTP_UnreadableSecretMatchesNothingAndBlocksNothing(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			ctx := t.Context()
			u := v.user.User
			sealer, err := provider.NewSealer([]byte(strings.Repeat("another-secret-", 4)), provider.SealPurposeTOTP)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := sealer.Seal([]byte("JBSWY3DPEHPK3PXP"), []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.srv.Store.CreateTOTPCredential(ctx, &storage.TOTPCredential{UserID: u.ID, Kind: storage.TOTPKindDevice,
				DeviceID: "2f4d6b8a-1c3e-4a5b-8d7f-9e0a1b2c3d4e", Sealed: sealed, Period: 30, Digits: 6, Algorithm: "SHA1",
				ConfirmedAt: v.srv.Clock.Now()}); err != nil {
				t.Fatal(err)
			}
			if _, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP}, u, "", "123456"); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("a code for the unreadable TOTP: %v, want ErrOTPMismatch", err)
			}
			issued, err := v.p.IssueOTP(ctx, provider.OTPRequest{Kind: provider.OTPKindAccount, User: u, InResponse: true})
			if err != nil {
				t.Fatal(err)
			}
			if kind, err := v.p.VerifyOTP(ctx, []string{provider.OTPKindDeviceTOTP, provider.OTPKindAccount}, u, "", issued.Code); err != nil || kind != provider.OTPKindAccount {
				t.Fatalf("an account code with the default types: %q %v", kind, err)
			}
		})
	}
}

// PendingAuthenticatorTOTP shows the enrollment waiting for its first code
// again, the same secret and otpauth URI as BeginAuthenticatorTOTP gave
// (the newest when begun twice), and none once confirmed; OTPFailuresLeft
// counts the wrong codes of an authenticator in otp.max_failures_per_user.
func TestPendingAuthenticatorTOTP_TheSameEnrollmentUntilConfirmed(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			p := srv.Plugin.Provider
			u := srv.NewUser(t).User
			ctx := t.Context()
			if _, err := p.PendingAuthenticatorTOTP(ctx, u); !errors.Is(err, provider.ErrTOTPNotFound) {
				t.Fatalf("no enrollment: %v", err)
			}
			first, err := p.BeginAuthenticatorTOTP(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			k, err := p.BeginAuthenticatorTOTP(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.PendingAuthenticatorTOTP(ctx, u)
			if err != nil || got.ID != k.ID || got.ID == first.ID || got.Secret != k.Secret || got.URI != k.URI {
				t.Fatalf("pending %+v %v, want %+v", got, err, k)
			}
			key, err := otp.NewKeyFromURL(got.URI)
			if err != nil || key.Secret() != k.Secret || key.Issuer() != "otpstep" || key.AccountName() != u.Email || key.Period() != 30 {
				t.Fatalf("otpauth URI %q: %v", got.URI, err)
			}
			left, locked, err := p.OTPFailuresLeft(ctx, u)
			limit := p.Config().OTP.MaxFailuresPerUser
			if err != nil || locked != nil || left != limit {
				t.Fatalf("failures left at first: %d %v %v", left, locked, err)
			}
			right := totpAt(t, k, srv.Clock.Now())
			wrong := string(rune('0'+(right[0]-'0'+1)%10)) + right[1:] // another first digit
			if err := p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, wrong); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("a wrong first code: %v", err)
			}
			if left, _, _ := p.OTPFailuresLeft(ctx, u); left != limit-1 {
				t.Fatalf("failures left after a wrong code: %d, want %d", left, limit-1)
			}
			if err := p.ConfirmAuthenticatorTOTP(ctx, u, k.ID, right); err != nil {
				t.Fatal(err)
			}
			if _, err := p.PendingAuthenticatorTOTP(ctx, u); !errors.Is(err, provider.ErrTOTPNotFound) {
				t.Fatalf("after confirming: %v", err)
			}
		})
	}
}
