package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

var sixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

// startWithSMTP runs a server that mails through a real SMTP peer.
func startWithSMTP(t *testing.T, dialect string, mutate func(*plugin.Config)) (*plugintest.Server, *mailtest.Server) {
	t.Helper()
	smtpSrv := mailtest.StartServer(t)
	srv := plugintest.Start(t, dialect, func(c *plugin.Config) {
		c.Mail.Driver = "smtp"
		c.Mail.SMTPURL = smtpSrv.URL()
		c.Mail.TLS = "none"
		c.Mail.From = "otpstep <otp@example.com>"
		if mutate != nil {
			mutate(c)
		}
	})
	return srv, smtpSrv
}

// codeFrom waits for the n-th message to addr and returns the code in it.
func codeFrom(t *testing.T, smtpSrv *mailtest.Server, n int, addr string) string {
	t.Helper()
	msgs := smtpSrv.WaitMessages(n, 20*time.Second)
	m := msgs[n-1]
	if len(m.To) != 1 || m.To[0] != addr {
		t.Fatalf("mail %d went to %v, want %s", n, m.To, addr)
	}
	code := sixDigits.FindString(m.Text)
	if code == "" || !strings.Contains(m.HTML, code) {
		t.Fatalf("no code in mail %d: %q", n, m.Text)
	}
	if strings.Contains(m.Subject, code) {
		t.Fatal("the code is in the subject")
	}
	return code
}

func TestBrowser_SecondFactorThroughThePages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		ctx := context.Background()
		client := srv.NewClient(t, true) // require_second_factor
		alice := srv.NewUser(t)
		op, err := oidc.NewProvider(ctx, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b := plugintest.NewBrowser(t)
		verifier, nonce := oauth2.GenerateVerifier(), plugintest.RandomString(12)
		authURL := client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
		page := b.Follow(authURL, plugintest.RedirectURI)
		page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		if page.Status != http.StatusOK || page.URL.Path != "/login/otp" {
			t.Fatalf("after the password: %s", page)
		}
		for _, attr := range []string{`name="otp"`, `autocomplete="one-time-code"`, `inputmode="numeric"`} {
			if !strings.Contains(page.Body, attr) {
				t.Fatalf("OTP page lacks %s", attr)
			}
		}
		code := codeFrom(t, smtpSrv, 1, alice.Email)

		// While the stage is pending, prompt=none must not issue a code.
		pending := b.Follow(client.Conf.AuthCodeURL("state-223456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")), plugintest.RedirectURI)
		if got := pending.URL.Query().Get("error"); got != "login_required" {
			t.Fatalf("prompt=none while pending: %s", pending)
		}

		wrong := b.Submit(page, "/login/otp", url.Values{"otp": {wrongCode(code)}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		// Post/redirect/get: the form again, telling the tries left.
		if wrong.Status != http.StatusOK || wrong.URL.Path != "/login/otp" || !strings.Contains(wrong.Body, "You can try 4 more times with this code.") {
			t.Fatalf("wrong code: %s", wrong)
		}
		back := b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		if back.URL.Query().Get("code") == "" {
			t.Fatalf("after the code: %s", back)
		}
		conf := client.Conf
		conf.Endpoint = op.Endpoint()
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		tok, err := conf.Exchange(ctx, back.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := op.Verifier(&oidc.Config{ClientID: client.ID}).Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Acr string   `json:"acr"`
			Amr []string `json:"amr"`
			Sid string   `json:"sid"`
		}
		_ = idt.Claims(&claims)
		if claims.Acr != "aal2" || strings.Join(claims.Amr, ",") != "pwd,otp" || claims.Sid == "" || idt.Nonce != nonce {
			t.Fatalf("claims %+v nonce %q", claims, idt.Nonce)
		}
	})
}

// A login UI passes the session through the API; the next authorize with
// prompt=none then issues aal2 tokens for the same session.
func TestAPI_SessionPassedThroughTheAPICountsForAuthorize(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.OTP.ReturnInResponse = false })
		api := newAPIClient(t, srv)
		loginUI := srv.NewLoginUI(t, allUserScopes...)
		rp := srv.NewClient(t, true)
		alice := srv.NewUser(t)
		login := srv.LoginWithPassword(t, loginUI, alice)
		if acr := plugintest.IDTokenClaim(t, login.Token, "acr"); acr != "aal1" {
			t.Fatalf("acr before the OTP = %q", acr)
		}
		resp := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false)
		if resp.Status != 200 || resp.json(t)["otp"] != nil {
			t.Fatalf("PUT: %d %s", resp.Status, resp.Body)
		}
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		if r := api.verify(login.Token.AccessToken, code, "login"); r.Status != 204 {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		verifier := oauth2.GenerateVerifier()
		back := login.Browser.Follow(rp.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("nonce", "nonce-123456789")), plugintest.RedirectURI)
		if back.URL.Query().Get("code") == "" {
			t.Fatalf("prompt=none after the API pass: %s", back)
		}
		tok, err := rp.Conf.Exchange(context.Background(), back.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if acr, amr, sid := plugintest.IDTokenClaim(t, tok, "acr"), plugintest.IDTokenClaim(t, tok, "amr"), plugintest.IDTokenClaim(t, tok, "sid"); acr != "aal2" || amr != `["pwd","otp"]` || sid != login.SID {
			t.Fatalf("acr=%s amr=%s sid=%s", acr, amr, sid)
		}
	})
}

// acr_values=aal2 demands the second factor even from a client that does
// not require it.
func TestAuthorize_ACRValuesAAL2DemandsTheOTP(t *testing.T) {
	srv, _ := startWithSMTP(t, "sqlite", nil)
	client := srv.NewClient(t, false)
	alice := srv.NewUser(t)
	b := plugintest.NewBrowser(t)
	page := b.Follow(client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("acr_values", "aal2")), plugintest.RedirectURI)
	page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	if page.URL.Path != "/login/otp" {
		t.Fatalf("acr_values=aal2 did not ask for the OTP: %s", page)
	}
}

func TestOutbox_SMTPDownThenBackDeliversEachCodeOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		// This test drives delivery itself (DeliverOutboxOnce) while it moves
		// the clock; the background dispatcher is stopped so that no send is
		// in flight across a clock jump larger than its lease.
		if err := srv.Plugin.Close(); err != nil {
			t.Fatal(err)
		}
		smtpSrv.Down()
		var users []*plugintest.User
		for i := 0; i < 3; i++ {
			u := srv.NewUser(t)
			users = append(users, u)
			login := srv.LoginWithPassword(t, client, u)
			if r := api.putSession(login.Token.AccessToken, login.SID, u.ID, false); r.Status != 200 {
				t.Fatalf("PUT with SMTP down: %d %s", r.Status, r.Body)
			}
		}
		ctx := context.Background()
		if n, _ := srv.Plugin.Provider.DeliverOutboxOnce(ctx); n != 0 {
			t.Fatalf("%d sent while SMTP is down", n)
		}
		smtpSrv.Up()
		// Past the backoff, within the codes' 5-minute life (expired codes
		// are dropped, not sent).
		for round := 0; round < 3 && len(smtpSrv.Messages()) < 3; round++ {
			srv.Clock.Advance(time.Minute)
			if _, err := srv.Plugin.Provider.DeliverOutboxOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		msgs := smtpSrv.WaitMessages(3, 20*time.Second)
		// More rounds must send nothing again.
		srv.Clock.Advance(time.Minute)
		_, _ = srv.Plugin.Provider.DeliverOutboxOnce(ctx)
		if got := len(smtpSrv.Messages()); got != 3 {
			t.Fatalf("%d messages delivered, want 3", got)
		}
		seen := map[string]bool{}
		for _, m := range msgs {
			seen[m.To[0]] = true
		}
		for _, u := range users {
			if !seen[u.Email] {
				t.Fatalf("no mail for %s", u.Email)
			}
		}
		pending, _, err := srv.Store.OutboxBacklog(ctx)
		if err != nil || pending != 0 {
			t.Fatalf("outbox backlog %d %v", pending, err)
		}
	})
}
