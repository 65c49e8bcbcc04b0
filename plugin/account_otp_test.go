package plugin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

func TestCreateOTPAndSendmail(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		alice := srv.NewUser(t)
		tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken

		if r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{}`); r.Status != 422 {
			t.Fatalf("no credentials: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"password":"wrong password!"}`); r.Status != 404 || r.errorCode(t) != "not-found" {
			t.Fatalf("wrong password: %d %s", r.Status, r.Body)
		}
		if r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"pin":"1234"}`); r.Status != 404 {
			t.Fatalf("pin only: %d %s", r.Status, r.Body)
		}
		r := api.do(http.MethodPost, "/user/otp", tok, "application/json", `{"password":"`+alice.Password+`"}`)
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		code, _ := r.json(t)["otp"].(string)
		// An account code verifies with PACE's default types.
		if v := api.verify(tok, code); v.Status != 204 {
			t.Fatalf("verify account code: %d %s", v.Status, v.Body)
		}
		// The created code is mailed too: wait for that mail, so the next
		// one is the second accepted (mail.smtp_max_connections senders may
		// deliver two queued mails in either order).
		if got := codeFrom(t, smtpSrv, 1, alice.Email); got != code {
			t.Fatalf("mail 1 carries %s, want the created code %s", got, code)
		}
		// The SMTP peer holds the mail before its sender has heard the 250
		// and deleted the outbox row. Moving the clock past the resend
		// interval then would also move it past that row's lease
		// (outbox.DefaultLease): another sender claims it and mails the
		// created code again, which was message 2 of the flake ("verify
		// mailed code: 404", the code spent above).
		waitOutboxSettled(t, srv)
		srv.Clock.Advance(31e9)
		if r := api.do(http.MethodPost, "/user/otp/sendmail", tok, "", ""); r.Status != 204 {
			t.Fatalf("sendmail: %d %s", r.Status, r.Body)
		}
		mailed := codeFrom(t, smtpSrv, 2, alice.Email)
		if mailed == code {
			t.Fatalf("mail 2 carries the created code %s again", code)
		}
		if v := api.verify(tok, mailed, "account"); v.Status != 204 {
			t.Fatalf("verify mailed code: %d %s", v.Status, v.Body)
		}
		if r := api.do(http.MethodPost, "/user/otp/sendmail", tok, "", ""); r.Status != 429 {
			t.Fatalf("sendmail within the resend interval: %d %s", r.Status, r.Body)
		}
	})
}

// waitOutboxSettled waits until srv's outbox holds no message: every mail
// queued so far was sent and its row deleted, so no lease of it is left for
// a clock move to expire.
func waitOutboxSettled(t *testing.T, srv *plugintest.Server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pending, _, err := srv.Store.OutboxBacklog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %d message(s) still queued after 20s", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every event docs/api.md and the issue name leaves an audit row.
func TestAudit_SecondFactorEvents(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	api := newAPIClient(t, srv)
	tok, sid, code, alice := challenge(t, srv, api)
	for i := 0; i < 5; i++ {
		api.verify(tok, wrongCode(code), "login")
	}
	srv.Clock.Advance(31e9)
	fresh := api.putSession(tok, sid, alice.ID, false)
	newCode, _ := fresh.json(t)["otp"].(string)
	api.verify(tok, newCode, "login")
	api.putSession(tok, sid, alice.ID, true)

	events, err := srv.Store.ListAuditEvents(context.Background(), alice.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range events {
		got[e.Type]++
		if e.Type == provider.AuditOTPIssued && (e.ClientID == "" || e.Detail["in_response"] != true) {
			t.Fatalf("otp.issued without client or in_response: %+v", e)
		}
	}
	for _, want := range []string{provider.AuditLoginPassed, provider.AuditOTPIssued, provider.AuditOTPVerifyFailed, provider.AuditOTPChallengeBurned, provider.AuditOTPVerifyPassed, provider.AuditSessionPassedViaPUT} {
		if got[want] == 0 {
			t.Errorf("no %s event (got %v)", want, got)
		}
	}
}

func TestAudit_LockoutAndSessionCreated(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 1 })
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, allUserScopes...)
	alice := srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, alice)
	tok := login.Token.AccessToken
	if r := api.putSession(tok, "5f0c6c1e-3d0e-4a55-9a7e-3b1f6f7a1b2c", alice.ID, false); r.Status != 200 {
		t.Fatalf("create a session: %d", r.Status)
	}
	r := api.putSession(tok, login.SID, alice.ID, false)
	code, _ := r.json(t)["otp"].(string)
	api.verify(tok, wrongCode(code), "login")
	if v := api.verify(tok, wrongCode(code), "login"); v.Status != 429 {
		t.Fatalf("second failure with max 1: %d", v.Status)
	}
	events, _ := srv.Store.ListAuditEvents(context.Background(), alice.ID, 100)
	got := map[string]bool{}
	for _, e := range events {
		got[e.Type] = true
	}
	if !got[provider.AuditSessionCreated] || !got[provider.AuditUserLockedOut] {
		t.Fatalf("events %v", got)
	}
}
