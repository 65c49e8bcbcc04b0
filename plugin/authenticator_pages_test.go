package plugin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// enrollAuthenticator gives u a confirmed authenticator TOTP as
// /settings/totp would, its first code of now's step (which is then used).
func enrollAuthenticator(t *testing.T, srv *plugintest.Server, u *storage.User) *provider.NewTOTP {
	t.Helper()
	p := srv.Plugin.Provider
	k, err := p.BeginAuthenticatorTOTP(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ConfirmAuthenticatorTOTP(t.Context(), u, k.ID, totpCodeAt(t, k, srv.Clock.Now())); err != nil {
		t.Fatal(err)
	}
	return k
}

// toOTPPage signs u in with the password through the pages and returns the
// OTP page and the emailed code (awaitCode), once the outbox settled.
func toOTPPage(t *testing.T, srv *plugintest.Server, awaitCode func() string, b *plugintest.Browser, c *plugintest.Client, u *plugintest.User, verifier string, extra ...oauth2.AuthCodeOption) (*plugintest.Page, string) {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)
	page := b.Follow(c.Conf.AuthCodeURL("state-123456789", opts...), plugintest.RedirectURI)
	page = b.Submit(page, "/login", url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	if page.Status != http.StatusOK || page.URL.Path != "/login/otp" {
		t.Fatalf("after the password: %s", page)
	}
	code := awaitCode()
	waitOutboxSettled(t, srv)
	return page, code
}

// secondFactorClaims are the second-factor claims of tok's ID token (read
// unverified; the browser test verifies with go-oidc).
func secondFactorClaims(t *testing.T, tok *oauth2.Token) (acr string, amr []string) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", raw)
	}
	var claims struct {
		Acr string   `json:"acr"`
		Amr []string `json:"amr"`
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Acr, claims.Amr
}

// verifyPassedMethod is the method of the user's last otp.verify_passed
// audit event ("totp" or "email").
func verifyPassedMethod(t *testing.T, srv *plugintest.Server, userID string) string {
	t.Helper()
	events, err := srv.Store.ListAuditEvents(context.Background(), userID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var method string
	var last int64 = -1
	for _, e := range events {
		if e.Type == provider.AuditOTPVerifyPassed && e.ID > last {
			method, _ = e.Detail["method"].(string)
			last = e.ID
		}
	}
	return method
}

// TestPages_AuthenticatorOnTheOTPPage: /login/otp offers "Use your
// authenticator app" only to a user with a confirmed authenticator TOTP.
// A wrong code and a replay of the step the enrollment used are refused
// and say how many tries otp.max_failures_per_user leaves (the emailed
// code keeps its own); the right code passes the second factor: the
// client gets acr aal2 and amr pwd+otp, the audit event names the method
// totp, and the emailed code is burned. The emailed code stays the
// fallback (audited as email). Both databases.
func TestPages_AuthenticatorOnTheOTPPage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		client := srv.NewClient(t, true)
		alice, bob := srv.NewUser(t), srv.NewUser(t)
		mails := 0
		mail := func(addr string) func() string {
			return func() string { mails++; return codeFrom(t, smtpSrv, mails, addr) }
		}
		max := srv.Plugin.Provider.Config().OTP.MaxFailuresPerUser

		// Bob has no authenticator: only the emailed code is offered.
		bb := plugintest.NewBrowser(t)
		bobPage, _ := toOTPPage(t, srv, mail(bob.Email), bb, client, bob, oauth2.GenerateVerifier())
		if strings.Contains(bobPage.Body, "/login/otp/authenticator") || strings.Contains(bobPage.Body, "authenticator app") {
			t.Fatalf("a user without an authenticator is offered one: %s", bobPage)
		}

		k := enrollAuthenticator(t, srv, alice.User)
		b := plugintest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		page, _ := toOTPPage(t, srv, mail(alice.Email), b, client, alice, verifier)
		body := html.UnescapeString(page.Body)
		for _, want := range []string{"Use your authenticator app", `action="/login/otp/authenticator"`, `id="authenticator-otp"`,
			`autocomplete="one-time-code"`, `inputmode="numeric"`, `<label for="authenticator-otp">`, "We sent a code to", `action="/login/otp"`} {
			if !strings.Contains(body, want) {
				t.Fatalf("OTP page lacks %q: %s", want, page)
			}
		}
		returnTo := page.HiddenField("return_to")
		submit := func(code string) *plugintest.Page {
			return b.Submit(page, "/login/otp/authenticator", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		}
		wrong := submit(wrongCode(totpCodeAt(t, k, srv.Clock.Now())))
		if wrong.URL.Query().Get("notice") != "authenticator_wrong" ||
			!strings.Contains(html.UnescapeString(wrong.Body), "That code from your authenticator app is not right, or was used already. You can try "+itoa(max-1)+" more times.") {
			t.Fatalf("a wrong app code: %s", wrong)
		}
		// The enrollment's first code used now's step: typed again, it is a replay.
		replay := submit(totpCodeAt(t, k, srv.Clock.Now()))
		if !strings.Contains(html.UnescapeString(replay.Body), "You can try "+itoa(max-2)+" more times.") {
			t.Fatalf("a replayed app code: %s", replay)
		}
		if passed(t, srv, alice.ID) {
			t.Fatal("a wrong or replayed app code passed the session")
		}
		// The emailed code kept its tries: its words are unchanged.
		if !strings.Contains(replay.Body, "We sent a code to") {
			t.Fatalf("the emailed code is no longer live after app codes: %s", replay)
		}

		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		back := submit(totpCodeAt(t, k, srv.Clock.Now()))
		if !strings.HasPrefix(back.URL.String(), plugintest.RedirectURI) || back.URL.Query().Get("code") == "" {
			t.Fatalf("the right app code: %s (steps %v)", back, b.Steps)
		}
		tok, err := client.Conf.Exchange(t.Context(), back.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if acr, amr := secondFactorClaims(t, tok); acr != provider.ACRSecondFactor || !slices.Equal(amr, []string{"pwd", "otp"}) {
			t.Fatalf("ID token after the app code: acr %q amr %v", acr, amr)
		}
		if m := verifyPassedMethod(t, srv, alice.ID); m != "totp" {
			t.Fatalf("audit method %q, want totp", m)
		}
		st, err := srv.Plugin.Provider.LoginCodeStatus(t.Context(), alice.User, plugintest.IDTokenClaim(t, tok, "sid"))
		if err != nil || st.Live {
			t.Fatalf("the emailed code after the app's: %+v %v", st, err)
		}

		// The email stays the fallback for a user with an authenticator.
		b2 := plugintest.NewBrowser(t)
		v2 := oauth2.GenerateVerifier()
		p2, code := toOTPPage(t, srv, mail(alice.Email), b2, client, alice, v2)
		back = b2.Submit(p2, "/login/otp", url.Values{"otp": {code}, "return_to": {p2.HiddenField("return_to")}}, plugintest.RedirectURI)
		if back.URL.Query().Get("code") == "" {
			t.Fatalf("the emailed code beside an authenticator: %s", back)
		}
		tok, err = client.Conf.Exchange(t.Context(), back.URL.Query().Get("code"), oauth2.VerifierOption(v2))
		if err != nil {
			t.Fatal(err)
		}
		if acr, amr := secondFactorClaims(t, tok); acr != provider.ACRSecondFactor || !slices.Contains(amr, "otp") {
			t.Fatalf("ID token after the emailed code: acr %q amr %v", acr, amr)
		}
		if m := verifyPassedMethod(t, srv, alice.ID); m != "email" {
			t.Fatalf("audit method %q, want email", m)
		}
	})
}

// TestPages_AuthenticatorCodesCountInThePerUserLimit: wrong app codes and
// wrong emailed codes spend one otp.max_failures_per_user; the page says
// the tries left honestly (German here), and at the limit when to come
// back, refusing even the right app code. Both databases.
func TestPages_AuthenticatorCodesCountInThePerUserLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.OTP.MaxFailuresPerUser = 3 })
		client := srv.NewClient(t, true)
		alice := srv.NewUser(t)
		k := enrollAuthenticator(t, srv, alice.User)
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		b := plugintest.NewBrowser(t)
		page, emailed := toOTPPage(t, srv, func() string { return codeFrom(t, smtpSrv, 1, alice.Email) }, b, client, alice,
			oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("ui_locales", "de"))
		returnTo := page.HiddenField("return_to")
		app := func(code string) *plugintest.Page {
			return b.Submit(page, "/login/otp/authenticator", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		}
		right := totpCodeAt(t, k, srv.Clock.Now())
		if p := app(wrongCode(right)); !strings.Contains(p.Body, "Sie haben noch 2 Versuche.") {
			t.Fatalf("first wrong app code: %s", p)
		}
		// A wrong emailed code spends the same limit (and one of its own tries).
		if p := b.Submit(page, "/login/otp", url.Values{"otp": {wrongCode(emailed)}, "return_to": {returnTo}}, plugintest.RedirectURI); p.URL.Query().Get("notice") != "wrong" {
			t.Fatalf("wrong emailed code: %s", p)
		}
		if p := app(wrongCode(right)); !strings.Contains(p.Body, "Zu viele falsche Codes für dieses Konto.") {
			t.Fatalf("the limit reached: %s", p)
		}
		p := app(right)
		if p.URL.Path != "/login/otp" || !strings.Contains(p.Body, "Zu viele falsche Codes für dieses Konto.") || passed(t, srv, alice.ID) {
			t.Fatalf("the right app code past the limit: %s", p)
		}
	})
}

// passed reports whether a login session of userID (any its audit events
// name) passed the second factor.
func passed(t *testing.T, srv *plugintest.Server, userID string) bool {
	t.Helper()
	events, err := srv.Store.ListAuditEvents(context.Background(), userID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.SessionID == "" || seen[e.SessionID] {
			continue
		}
		seen[e.SessionID] = true
		ls, err := srv.Store.GetLoginSession(context.Background(), e.SessionID)
		if err == nil && ls.PassedLoginOTP {
			return true
		}
	}
	return false
}
