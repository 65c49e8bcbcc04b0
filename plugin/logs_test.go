package plugin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
)

// oneLine fails unless exactly one logged line has every one of subs, and
// returns it.
func oneLine(t *testing.T, srv *plugintest.Server, subs ...string) string {
	t.Helper()
	lines := srv.Logs.Lines(subs...)
	if len(lines) != 1 {
		t.Fatalf("want one line with %q, got %d:\n%s", subs, len(lines), srv.Logs.String())
	}
	return lines[0]
}

func noStack(t *testing.T, line string) {
	t.Helper()
	if strings.Contains(line, ".go:") || strings.Contains(line, `\n`) || strings.Contains(line, "goroutine") {
		t.Fatalf("a stack in a 4xx line (%d bytes): %s", len(line), line)
	}
}

// A refused authorize or token request logs fosite's error, hint and
// description on one line, without the stack the wrapped error carries
// (before: a bad redirect_uri logged a 2.4 KB ory/x stack and no hint).
func TestLogs_FositeRefusalsAreOneLineWithTheHint(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		client := srv.NewClient(t, false)
		conf := client.Conf
		conf.RedirectURL = "https://evil.example/cb"
		b := plugintest.NewBrowser(t)
		if p := b.Follow(conf.AuthCodeURL("state-12345678"), ""); p.Status != http.StatusBadRequest {
			t.Fatalf("bad redirect_uri: %s", p)
		}
		line := oneLine(t, srv, `msg="authorize request refused"`)
		for _, want := range []string{"level=INFO", "status=400", "error=invalid_request", "hint=", "redirect_uri", "description="} {
			if !strings.Contains(line, want) {
				t.Errorf("authorize line lacks %s: %s", want, line)
			}
		}
		noStack(t, line)

		form := url.Values{"grant_type": {"client_credentials"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client.ID, "not-the-secret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d", res.StatusCode)
		}
		line = oneLine(t, srv, `msg="token request refused"`)
		for _, want := range []string{"level=INFO", "status=401", "error=invalid_client", "description="} {
			if !strings.Contains(line, want) {
				t.Errorf("token line lacks %s: %s", want, line)
			}
		}
		noStack(t, line)
	})
}

// Every 429 logs the limit key and whom it counted: the user id (an
// account's login failures count by email, and name the user when the
// account exists), or the IP.
func TestLogs_Every429NamesTheLimitAndWhomItCounted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) {
			c.Login.MaxFailuresPerAccount = 1
			c.Login.MaxFailuresPerIP = 3
		})
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := b.Follow(srv.URL+"/login", "")
		for range 2 {
			b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {"wrong password"}}, "")
		}
		line := oneLine(t, srv, "limit=login.max_failures_per_account")
		if !strings.Contains(line, "user_id="+alice.ID) || !strings.Contains(line, "status=429") || strings.Contains(line, alice.Email) {
			t.Errorf("account limit line: %s", line)
		}
		for i := range 3 { // each email once: only the IP's counter fills
			b.Submit(page, "/login", url.Values{"email": {"nobody" + itoa(i) + "@example.com"}, "password": {"wrong password"}}, "")
		}
		line = oneLine(t, srv, "limit=login.max_failures_per_ip")
		if !strings.Contains(line, "ip=127.0.0.1") || strings.Contains(line, "nobody@") {
			t.Errorf("IP limit line: %s", line)
		}

		// The API: a second code within otp.resend_interval, then a wrong
		// code past otp.max_failures_per_user.
		// On a server of its own: this IP may not log in here any more.
		srv = plugintest.Start(t, dialect, func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 1 })
		api := newAPIClient(t, srv)
		tok, sid, code, bob := challenge(t, srv, api)
		if r := api.putSession(tok, sid, bob.ID, false); r.Status != http.StatusTooManyRequests {
			t.Fatalf("second code: %d %s", r.Status, r.Body)
		}
		line = oneLine(t, srv, "limit=otp.resend_interval")
		if !strings.Contains(line, "user_id="+bob.ID) || !strings.Contains(line, "status=429") {
			t.Errorf("resend limit line: %s", line)
		}
		api.verify(tok, wrongCode(code), "login")
		if r := api.verify(tok, wrongCode(code), "login"); r.Status != http.StatusTooManyRequests {
			t.Fatalf("past the failures: %d %s", r.Status, r.Body)
		}
		line = oneLine(t, srv, "limit=otp.max_failures_per_user")
		if !strings.Contains(line, "user_id="+bob.ID) {
			t.Errorf("verify limit line: %s", line)
		}
	})
}

// A failed login logs the user id when the account exists, never the
// password, and the email not at all.
func TestLogs_LoginFailureNamesTheUserNotTheEmailOrPassword(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := b.Follow(srv.URL+"/login", "")
		b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {"wrong password 1"}}, "")
		line := oneLine(t, srv, `msg="login failed"`)
		if !strings.Contains(line, "user_id="+alice.ID) || !strings.Contains(line, `reason="wrong password"`) {
			t.Errorf("login failure line: %s", line)
		}
		b.Submit(page, "/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password 2"}}, "")
		if lines := srv.Logs.Lines(`msg="login failed"`, `reason="unknown email"`); len(lines) != 1 || strings.Contains(lines[0], "user_id=") {
			t.Errorf("unknown email: %q", lines)
		}
		for _, secret := range []string{"wrong password 1", "wrong password 2", alice.Email, "nobody@example.com"} {
			if strings.Contains(srv.Logs.String(), secret) {
				t.Errorf("the log holds %q", secret)
			}
		}
	})
}
