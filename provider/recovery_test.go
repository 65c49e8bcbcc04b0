package provider_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// startWithMailbox runs a server whose mail lands in a Mailbox.
func startWithMailbox(t *testing.T, dialect string) (*plugintest.Server, *plugintest.Mailbox) {
	t.Helper()
	box := plugintest.NewMailbox()
	srv := plugintest.StartOnWith(t, plugintest.NewStore(t, dialect), nil, func(o *plugin.Options) { o.Mailer = box })
	return srv, box
}

func forDialects(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range plugintest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func wantLimit(t *testing.T, err error, limit string) {
	t.Helper()
	var tm *provider.TooManyAttemptsError
	if !errors.As(err, &tm) || tm.Limit != limit || tm.RetryAfter <= 0 {
		t.Fatalf("err = %v, want %s", err, limit)
	}
}

func TestRecovery_CodeSetsThePasswordEndsEverySessionAndStaysAAL1(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		srv, box := startWithMailbox(t, dialect)
		p, ctx := srv.Plugin.Provider, context.Background()
		alice := srv.NewUser(t)
		old, err := p.StartLoginSession(ctx, alice.ID, provider.AMRPassword)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: " " + alice.Email + " ", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		code := box.Code(t, 1, alice.Email)
		if m := box.Messages()[0]; m.Subject == "" || !strings.Contains(m.Subject, "recovery") {
			t.Fatalf("subject %q", m.Subject)
		}
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		if _, err := p.VerifyRecoveryCode(ctx, alice.Email, wrong, "192.0.2.1"); !errors.Is(err, provider.ErrOTPMismatch) {
			t.Fatalf("wrong code: %v", err)
		}
		grant, err := p.VerifyRecoveryCode(ctx, alice.Email, code, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		// Single use: the code is consumed.
		if _, err := p.VerifyRecoveryCode(ctx, alice.Email, code, "192.0.2.1"); !errors.Is(err, provider.ErrOTPMismatch) {
			t.Fatalf("the code again: %v", err)
		}
		if _, _, err := p.CompleteRecovery(ctx, grant, "short", "192.0.2.1", ""); !errors.Is(err, provider.ErrInvalidInput) {
			t.Fatalf("short password: %v", err)
		}
		ls, u, err := p.CompleteRecovery(ctx, grant, "a new long password", "192.0.2.1", "")
		if err != nil {
			t.Fatal(err)
		}
		if !ls.Recovered || provider.ACR(ls) != provider.ACRPassword || ls.BrowserKey == "" || u.ID != alice.ID {
			t.Fatalf("recovered session %+v", ls)
		}
		// The grant sets a password once.
		if _, _, err := p.CompleteRecovery(ctx, grant, "another long password", "192.0.2.1", ""); !errors.Is(err, provider.ErrRecoveryExpired) {
			t.Fatalf("the grant again: %v", err)
		}
		if _, _, err := p.LoginSession(ctx, old.ID); !errors.Is(err, provider.ErrLoginSessionGone) {
			t.Fatalf("the old session: %v", err)
		}
		if _, err := p.Authenticate(ctx, alice.Email, alice.Password, "192.0.2.1"); !errors.Is(err, provider.ErrInvalidCredentials) {
			t.Fatalf("old password: %v", err)
		}
		if _, err := p.Authenticate(ctx, alice.Email, "a new long password", "192.0.2.1"); err != nil {
			t.Fatalf("new password: %v", err)
		}
		// No emailed code lifts the recovered session: none is sent, and
		// a login UI cannot pass it either.
		err = p.EnsureLoginOTP(ctx, provider.OTPRequest{User: u, SessionID: ls.ID})
		if !errors.Is(err, provider.ErrRecoveredSession) {
			t.Fatalf("login code for the recovered session: %v", err)
		}
		_, err = p.UpdateSessionOTP(ctx, provider.OTPRequest{User: u, SessionID: ls.ID, LoginUI: true}, true)
		if !errors.Is(err, provider.ErrRecoveredSession) {
			t.Fatalf("PUT passed on the recovered session: %v", err)
		}
		_, err = p.UpdateSessionOTP(ctx, provider.OTPRequest{User: u, SessionID: ls.ID, LoginUI: true}, false)
		if !errors.Is(err, provider.ErrRecoveredSession) {
			t.Fatalf("PUT re-challenge on the recovered session: %v", err)
		}
		got, err := srv.Store.GetLoginSession(ctx, ls.ID)
		if err != nil || got.PassedLoginOTP || !got.Recovered {
			t.Fatalf("recovered session after the tries: %+v %v", got, err)
		}
		if n := len(box.Messages()); n != 1 {
			t.Fatalf("%d mails, want only the recovery code", n)
		}
		events, err := srv.Store.ListAuditEvents(ctx, alice.ID, 50)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range events {
			seen[e.Type] = true
		}
		if !seen[provider.AuditRecoveryRequested] || !seen[provider.AuditRecoveryCompleted] {
			t.Fatalf("audit events %v", seen)
		}
	})
}

func TestRecovery_UnknownAndDisabledAddressesAnswerAsAKnownOne(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		srv, box := startWithMailbox(t, dialect)
		p, ctx := srv.Plugin.Provider, context.Background()
		cfg := p.Config()
		known, disabled := srv.NewUser(t), srv.NewUser(t)
		if err := p.DisableUser(ctx, disabled.ID); err != nil {
			t.Fatal(err)
		}
		for i, email := range []string{known.Email, "nobody-" + plugintest.RandomString(6) + "@example.com", disabled.Email} {
			if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: email, IP: "192.0.2.7"}); err != nil {
				t.Fatalf("%s: %v", email, err)
			}
			// Wrong codes: the same answers, then the same limit.
			for range cfg.OTP.MaxAttempts {
				if _, err := p.VerifyRecoveryCode(ctx, email, "12345678", "192.0.2.7"); !errors.Is(err, provider.ErrOTPMismatch) {
					t.Fatalf("%d %s: %v", i, email, err)
				}
			}
			_, err := p.VerifyRecoveryCode(ctx, email, "12345678", "192.0.2.7")
			wantLimit(t, err, "otp.max_attempts")
			// Up to the request limit the answer is the same, then the same refusal.
			for range cfg.Recovery.MaxRequestsPerAccount - 1 {
				if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: email, IP: "192.0.2.7"}); err != nil {
					t.Fatalf("%s: %v", email, err)
				}
			}
			wantLimit(t, p.RequestRecovery(ctx, provider.RecoveryRequest{Email: email, IP: "192.0.2.7"}), "recovery.max_requests_per_account")
		}
		// Only the known, enabled account got mail (its first code, and
		// the resend interval held the next ones back).
		box.Wait(t, 1, 20*time.Second)
		for _, m := range box.Messages() {
			if m.To != known.Email {
				t.Fatalf("mail to %v", m.To)
			}
		}
		// Recovery tries count apart from the sign-in codes: the known
		// user's login is not locked.
		if _, err := p.Authenticate(ctx, known.Email, known.Password, "192.0.2.8"); err != nil {
			t.Fatal(err)
		}
		if n, _, err := srv.Store.PeekRateCounter(ctx, "otp:failures:"+known.ID, time.Hour); err != nil || n != 0 {
			t.Fatalf("otp failures of the user: %d %v", n, err)
		}
	})
}

// The user's limit on wrong recovery codes (otp.max_failures_per_user per
// otp.failure_window) refuses an address no account has at the same try and
// in the same words as a known one: otherwise a guesser who keeps asking for
// codes learns which addresses have accounts.
func TestRecovery_TheUserFailureLimitRefusesUnknownAddressesAlike(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		srv, _ := startWithMailbox(t, dialect)
		p, ctx := srv.Plugin.Provider, context.Background()
		cfg := p.Config()
		known := srv.NewUser(t)
		outcomes := func(email, ip string) []string {
			var seen []string
			for range cfg.Recovery.MaxRequestsPerAccount {
				if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: email, IP: ip}); err != nil {
					t.Fatalf("%s: request: %v", email, err)
				}
				for range cfg.OTP.MaxAttempts + 1 {
					_, err := p.VerifyRecoveryCode(ctx, email, "12345678", ip)
					var tm *provider.TooManyAttemptsError
					switch {
					case errors.Is(err, provider.ErrOTPMismatch):
						seen = append(seen, "mismatch")
					case errors.As(err, &tm):
						seen = append(seen, tm.Limit)
					default:
						t.Fatalf("%s: %v", email, err)
					}
				}
			}
			return seen
		}
		got := outcomes(known.Email, "192.0.2.31")
		unknown := outcomes("nobody-"+plugintest.RandomString(6)+"@example.com", "192.0.2.32")
		if strings.Join(got, ",") != strings.Join(unknown, ",") {
			t.Fatalf("known address:   %v\nunknown address: %v", got, unknown)
		}
		if got[len(got)-1] != "otp.max_failures_per_user" {
			t.Fatalf("the last try: %v, want otp.max_failures_per_user (%v)", got[len(got)-1], got)
		}
	})
}

func TestRecovery_RequestsAreLimitedPerIP(t *testing.T) {
	srv, _ := startWithMailbox(t, "sqlite")
	p, ctx := srv.Plugin.Provider, context.Background()
	n := p.Config().Recovery.MaxRequestsPerIP
	for i := range n {
		if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: plugintest.RandomString(6) + "@example.com", IP: "192.0.2.9"}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	wantLimit(t, p.RequestRecovery(ctx, provider.RecoveryRequest{Email: "x@example.com", IP: "192.0.2.9"}), "recovery.max_requests_per_ip")
	if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: "x@example.com", IP: "192.0.2.10"}); err != nil {
		t.Fatal(err)
	}
}

// A user with a confirmed authenticator TOTP sets no password with the
// emailed recovery code alone: CompleteRecovery refuses the grant until
// VerifyRecoveryTOTP passed a code of the app (replay-safe: the step the
// enrollment used is refused; a wrong code counts in
// otp.max_failures_per_user on the sign-in counter), and the recovered
// session is aal1 all the same.
func TestRecovery_AuthenticatorTOTPMustPass(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		srv, box := startWithMailbox(t, dialect)
		p, ctx := srv.Plugin.Provider, context.Background()
		alice := srv.NewUser(t)
		k, err := p.BeginAuthenticatorTOTP(ctx, alice.User)
		if err != nil {
			t.Fatal(err)
		}
		enrolled := totpAt(t, k, srv.Clock.Now())
		if err := p.ConfirmAuthenticatorTOTP(ctx, alice.User, k.ID, enrolled); err != nil {
			t.Fatal(err)
		}
		if err := p.RequestRecovery(ctx, provider.RecoveryRequest{Email: alice.Email, IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		grant, err := p.VerifyRecoveryCode(ctx, alice.Email, box.Code(t, 1, alice.Email), "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if needs, err := p.RecoveryNeedsTOTP(ctx, grant); err != nil || !needs {
			t.Fatalf("RecoveryNeedsTOTP %v %v", needs, err)
		}
		if _, _, err := p.CompleteRecovery(ctx, grant, "a new long password", "192.0.2.1", ""); !errors.Is(err, provider.ErrRecoveryNeedsTOTP) {
			t.Fatalf("a password without the TOTP: %v, want ErrRecoveryNeedsTOTP", err)
		}
		// The code the enrollment used is spent (RFC 6238 §5.2).
		if _, err := p.VerifyRecoveryTOTP(ctx, grant, enrolled); !errors.Is(err, provider.ErrOTPMismatch) {
			t.Fatalf("the enrollment's code again: %v, want ErrOTPMismatch", err)
		}
		failures := func() int {
			n, _, err := srv.Store.PeekRateCounter(ctx, "otp:failures:"+alice.ID, p.Config().OTP.FailureWindow)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := failures()
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		code := totpAt(t, k, srv.Clock.Now())
		if _, err := p.VerifyRecoveryTOTP(ctx, grant, wrong(code)); !errors.Is(err, provider.ErrOTPMismatch) {
			t.Fatalf("a wrong TOTP: %v", err)
		}
		if got := failures(); got != before+1 {
			t.Fatalf("a wrong TOTP counted %d failures, want 1", got-before)
		}
		passed, err := p.VerifyRecoveryTOTP(ctx, grant, code)
		if err != nil || !passed.TOTP {
			t.Fatalf("the TOTP: %+v %v", passed, err)
		}
		if _, err := p.VerifyRecoveryTOTP(ctx, grant, code); !errors.Is(err, provider.ErrOTPMismatch) {
			t.Fatalf("the same TOTP again: %v, want ErrOTPMismatch", err)
		}
		if needs, err := p.RecoveryNeedsTOTP(ctx, passed); err != nil || needs {
			t.Fatalf("RecoveryNeedsTOTP after the TOTP: %v %v", needs, err)
		}
		ls, _, err := p.CompleteRecovery(ctx, passed, "a new long password", "192.0.2.1", "")
		if err != nil {
			t.Fatal(err)
		}
		if !ls.Recovered || provider.ACR(ls) != provider.ACRPassword {
			t.Fatalf("recovered session %+v", ls)
		}
		if _, err := p.VerifyRecoveryTOTP(ctx, passed, totpAt(t, k, srv.Clock.Now().Add(provider.TOTPPeriod*time.Second))); !errors.Is(err, provider.ErrRecoveryExpired) {
			t.Fatalf("a used grant: %v, want ErrRecoveryExpired", err)
		}
	})
}
