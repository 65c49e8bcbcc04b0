package provider_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/openapitest"
)

// verifySetup is a user with a login session (a token bound to it) and the
// code of its live login challenge, asked for through PUT /sessions/{sid}.
type verifySetup struct {
	srv   *plugintest.Server
	p     *provider.Provider
	user  *plugintest.User
	token string
	sid   string
	code  string
}

func startVerify(t *testing.T, dialect string, mutate func(*plugin.Config)) *verifySetup {
	t.Helper()
	srv := plugintest.Start(t, dialect, mutate)
	client := srv.NewLoginUI(t, "user:sessions:update", "user:otp:verify")
	user := srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, user)
	v := &verifySetup{srv: srv, p: srv.Plugin.Provider, user: user, token: login.Token.AccessToken, sid: login.SID}
	v.code = v.challenge(t)
	return v
}

// challenge asks for a new login OTP on the session and returns its code.
func (v *verifySetup) challenge(t *testing.T) string {
	t.Helper()
	status, body := v.putSession(t, false)
	if status != http.StatusOK {
		t.Fatalf("PUT /sessions: %d %s", status, body)
	}
	var out struct {
		OTP string `json:"otp"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.OTP == "" {
		t.Fatalf("PUT /sessions body %s: %v", body, err)
	}
	return out.OTP
}

func (v *verifySetup) putSession(t *testing.T, passed bool) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"userId": v.user.ID, "passedLoginOTP": passed})
	req, err := http.NewRequest(http.MethodPut, v.srv.URL+openapitest.DefaultPrefix+"/sessions/"+v.sid, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (v *verifySetup) verify(t *testing.T, code string) (string, error) {
	t.Helper()
	return v.p.VerifyOTP(t.Context(), []string{provider.OTPKindLogin}, v.user.User, v.sid, code)
}

func (v *verifySetup) failures(t *testing.T) int {
	t.Helper()
	n, _, err := v.srv.Store.PeekRateCounter(t.Context(), "otp:failures:"+v.user.ID, v.p.Config().OTP.FailureWindow)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (v *verifySetup) auditTypes(t *testing.T) []string {
	t.Helper()
	events, err := v.srv.Store.ListAuditEvents(t.Context(), v.user.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}

func countOf(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestVerifyOTP_RightCodePassesTheSessionInItsTransaction(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			kind, err := v.verify(t, v.code)
			if err != nil || kind != provider.OTPKindLogin {
				t.Fatalf("right code: %q %v", kind, err)
			}
			ls, err := v.srv.Store.GetLoginSession(t.Context(), v.sid)
			if err != nil {
				t.Fatal(err)
			}
			if !ls.PassedLoginOTP || countOf(ls.AMR, provider.AMROTP) != 1 || !slices.Contains(ls.AMR, provider.AMRPassword) {
				t.Errorf("session after the right code: passed=%v amr=%v", ls.PassedLoginOTP, ls.AMR)
			}
			if _, err := v.srv.Store.LiveOTPChallenge(t.Context(), provider.OTPKindLogin, v.user.ID, v.sid); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("a login challenge is still live: %v", err)
			}
			if n := v.failures(t); n != 0 {
				t.Errorf("failure counter %d after a right code, want 0", n)
			}
			if got := v.auditTypes(t); countOf(got, provider.AuditOTPVerifyPassed) != 1 || countOf(got, provider.AuditOTPVerifyFailed) != 0 {
				t.Errorf("audit events %v", got)
			}
			if _, err := v.verify(t, v.code); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Errorf("the code again: %v, want ErrOTPMismatch", err)
			}
		})
	}
}

func TestVerifyOTP_WrongCodeIsCountedAndCommitted(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			if _, err := v.verify(t, wrong(v.code)); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("wrong code: %v, want ErrOTPMismatch", err)
			}
			ch, err := v.srv.Store.LiveOTPChallenge(t.Context(), provider.OTPKindLogin, v.user.ID, v.sid)
			if err != nil || ch.Attempts != 1 {
				t.Fatalf("challenge after a wrong code: %+v %v, want 1 attempt", ch, err)
			}
			if n := v.failures(t); n != 1 {
				t.Errorf("failure counter %d, want 1", n)
			}
			if got := v.auditTypes(t); countOf(got, provider.AuditOTPVerifyFailed) != 1 {
				t.Errorf("audit events %v", got)
			}
			ls, err := v.srv.Store.GetLoginSession(t.Context(), v.sid)
			if err != nil || ls.PassedLoginOTP {
				t.Errorf("session after a wrong code: %+v %v", ls, err)
			}
		})
	}
}

func TestVerifyOTP_LastAttemptBurnsThenTooManyUntilANewChallenge(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			maxAttempts := v.p.Config().OTP.MaxAttempts
			for i := range maxAttempts {
				if _, err := v.verify(t, wrong(v.code)); !errors.Is(err, provider.ErrOTPMismatch) {
					t.Fatalf("wrong try %d: %v", i+1, err)
				}
			}
			got := v.auditTypes(t)
			if countOf(got, provider.AuditOTPChallengeBurned) != 1 || countOf(got, provider.AuditOTPVerifyFailed) != maxAttempts {
				t.Errorf("audit events %v: want one otp.challenge_burned and %d otp.verify_failed", got, maxAttempts)
			}
			var tooMany *provider.TooManyAttemptsError
			if _, err := v.verify(t, v.code); !errors.As(err, &tooMany) || tooMany.Limit != "otp.max_attempts" {
				t.Fatalf("right code on a used-up challenge: %v, want otp.max_attempts", err)
			}
			if n := v.failures(t); n != maxAttempts {
				t.Errorf("failure counter %d, want %d (a refused try is not counted)", n, maxAttempts)
			}
			v.srv.Clock.Advance(v.p.Config().OTP.ResendInterval + time.Second)
			if _, err := v.verify(t, v.challenge(t)); err != nil {
				t.Fatalf("new challenge: %v", err)
			}
		})
	}
}

func TestVerifyOTP_ExpiredChallengeIsBurnedAndNotCounted(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			v.srv.Clock.Advance(v.p.Config().OTP.TTL)
			if _, err := v.verify(t, v.code); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("right code, expired: %v, want ErrOTPMismatch", err)
			}
			if _, err := v.srv.Store.LiveOTPChallenge(t.Context(), provider.OTPKindLogin, v.user.ID, v.sid); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the expired challenge is still live: %v", err)
			}
			if n := v.failures(t); n != 0 {
				t.Errorf("failure counter %d, want 0: no try was made", n)
			}
			ls, err := v.srv.Store.GetLoginSession(t.Context(), v.sid)
			if err != nil || ls.PassedLoginOTP {
				t.Errorf("session after an expired code: %+v %v", ls, err)
			}
		})
	}
}

func TestVerifyOTP_FirstRefusalOfTheFailureLimitIsAuditedOnce(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 2 })
			for i := range 2 {
				if _, err := v.verify(t, wrong(v.code)); !errors.Is(err, provider.ErrOTPMismatch) {
					t.Fatalf("wrong try %d: %v", i+1, err)
				}
			}
			for i := range 3 {
				var tooMany *provider.TooManyAttemptsError
				_, err := v.verify(t, v.code)
				if !errors.As(err, &tooMany) || tooMany.Limit != "otp.max_failures_per_user" || tooMany.RetryAfter <= 0 {
					t.Fatalf("refusal %d: %v", i+1, err)
				}
			}
			if got := v.auditTypes(t); countOf(got, provider.AuditUserLockedOut) != 1 {
				t.Errorf("audit events %v: want one user.locked_out", got)
			}
			ch, err := v.srv.Store.LiveOTPChallenge(t.Context(), provider.OTPKindLogin, v.user.ID, v.sid)
			if err != nil || ch.Attempts != 2 {
				t.Errorf("challenge: %+v %v, want 2 attempts (refusals spend none)", ch, err)
			}
			v.srv.Clock.Advance(v.p.Config().OTP.FailureWindow)
			if _, err := v.verify(t, v.challenge(t)); err != nil {
				t.Errorf("right code in a new window: %v", err)
			}
		})
	}
}

// A verification and PUT /sessions passedLoginOTP:true on the same session
// lock the challenge before the session, so running them together never
// deadlocks (PostgreSQL would abort one with 40P01): both succeed, or the
// verification finds the challenge burned by the PUT.
func TestVerifyOTP_ConcurrentPutPassedTrueNeverFails(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, func(c *plugin.Config) {
				c.OTP.ResendInterval = 0
				c.OTP.MaxSendsPerHour = 1000
			})
			for round := range 60 {
				code := v.code
				if round > 0 {
					code = v.challenge(t)
				}
				var (
					wg        sync.WaitGroup
					verifyErr error
					putStatus int
					putBody   []byte
				)
				wg.Add(2)
				go func() {
					defer wg.Done()
					_, verifyErr = v.verify(t, code)
				}()
				go func() {
					defer wg.Done()
					putStatus, putBody = v.putSession(t, true)
				}()
				wg.Wait()
				if verifyErr != nil && !errors.Is(verifyErr, provider.ErrOTPMismatch) {
					t.Fatalf("round %d: verify: %v", round, verifyErr)
				}
				if putStatus != http.StatusNoContent {
					t.Fatalf("round %d: PUT passedLoginOTP:true: %d %s", round, putStatus, putBody)
				}
				ls, err := v.srv.Store.GetLoginSession(t.Context(), v.sid)
				if err != nil || !ls.PassedLoginOTP || countOf(ls.AMR, provider.AMROTP) != 1 {
					t.Fatalf("round %d: session %+v %v", round, ls, err)
				}
			}
		})
	}
}

// postVerify is POST {prefix}/user/otp/verify with the setup's token.
func (v *verifySetup) postVerify(t *testing.T, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.srv.URL+openapitest.DefaultPrefix+"/user/otp/verify", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// types is a set: a kind named four times is tried once, so a request costs
// one attempt of the challenge and one failure of the user however often it
// repeats a kind (before, each duplicate spent an attempt, and two requests
// burned a code).
func TestVerifyOTP_DuplicateTypesCostWhatOneCosts(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			v := startVerify(t, dialect, nil)
			attempts := func() int {
				t.Helper()
				ch, err := v.srv.Store.LiveOTPChallenge(t.Context(), provider.OTPKindLogin, v.user.ID, v.sid)
				if err != nil {
					t.Fatalf("the login challenge: %v", err)
				}
				return ch.Attempts
			}
			for i := 1; i <= 2; i++ {
				if got := v.postVerify(t, `{"otp":"`+wrong(v.code)+`","types":["login","login","login","login"]}`); got != http.StatusNotFound {
					t.Fatalf("wrong code %d, login ×4: %d, want 404", i, got)
				}
				if a, f := attempts(), v.failures(t); a != i || f != i {
					t.Fatalf("after %d requests with login ×4: %d attempts, %d failures; want %d of each", i, a, f, i)
				}
			}
			if _, err := v.p.VerifyOTP(t.Context(), []string{provider.OTPKindLogin, provider.OTPKindAccount, provider.OTPKindLogin},
				v.user.User, v.sid, wrong(v.code)); !errors.Is(err, provider.ErrOTPMismatch) {
				t.Fatalf("login, account, login: %v", err)
			}
			if a := attempts(); a != 3 {
				t.Fatalf("after login, account, login: %d attempts, want 3", a)
			}
			if got := v.postVerify(t, `{"otp":"`+v.code+`","types":["login","login","login","login"]}`); got != http.StatusNoContent {
				t.Fatalf("right code, login ×4: %d, want 204", got)
			}
		})
	}
}
