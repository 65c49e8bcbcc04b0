package plugin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/provider"
)

// A real browser signs in (password, emailed code from the real SMTP peer),
// enrolls an authenticator at /settings/totp (the QR code image loads under
// the page's Content-Security-Policy; the secret is read from the page as a
// user would type it into an app), signs out, and signs in again at a
// relying party with the password and a code of that secret on "Use your
// authenticator app": go-oidc verifies the ID token, acr aal2, amr pwd+otp.
func TestE2E_BrowserEnrollsAnAuthenticatorAndSignsInWithIt(t *testing.T) {
	ctx := browserContext(t)
	srv, smtpSrv := startWithSMTP(t, "sqlite", nil)
	got := make(chan url.Values, 1)
	rpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		_, _ = w.Write([]byte("relying party"))
	}))
	t.Cleanup(rpSrv.Close)
	on := true
	c, secret, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
		RedirectURIs: []string{rpSrv.URL + "/callback"}, SkipConsent: true, RequireSecondFactor: &on,
	})
	if err != nil {
		t.Fatal(err)
	}
	op, err := oidc.NewProvider(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: c.ID, ClientSecret: secret, RedirectURL: rpSrv.URL + "/callback", Endpoint: op.Endpoint(), Scopes: []string{"openid"}}
	alice := srv.NewUser(t)

	shots := os.Getenv("OTPSTEP_SCREENSHOTS")
	step, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			lctx, c := context.WithTimeout(ctx, 5*time.Second)
			defer c()
			loc, _ := chromedp.Run(lctx, chromedp.Location())
			body, _ := chromedp.Run(lctx, chromedp.OuterHTML(`body`))
			t.Fatalf("%s: %v (at %s)\n%.1500s", what, err, loc, body)
		}
	}
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(step, chromedp.CaptureScreenshot())
		must("screenshot", err)
		_ = os.WriteFile(filepath.Join(shots, name), png, 0o644)
	}

	// Signed out, the page sends the browser to the login, then to the
	// emailed code, then back.
	must("settings → login", chromedp.Do(step, chromedp.Navigate(srv.URL+"/settings/totp"), chromedp.WaitVisible(`input[name="email"]`)))
	must("password", chromedp.Do(step,
		chromedp.SendKeys(`input[name="email"]`, alice.Email),
		chromedp.SendKeys(`input[name="password"]`, alice.Password),
		chromedp.Submit(`input[name="password"]`),
		chromedp.WaitVisible(`#otp`),
	))
	code := codeFrom(t, smtpSrv, 1, alice.Email)
	must("emailed code", chromedp.Do(step,
		chromedp.SendKeys(`#otp`, code),
		chromedp.Submit(`#otp`),
		chromedp.WaitVisible(`form[action="/settings/totp"] button`),
	))
	must("begin", chromedp.Do(step, chromedp.Click(`form[action="/settings/totp"] button`), chromedp.WaitVisible(`#totp-secret`)))
	shot("settings_totp.png")
	// The QR code is drawn: the inline PNG passed the page's img-src.
	drawn, err := chromedp.Run(step, chromedp.Evaluate[bool](`(() => { const i = document.querySelector('.qr img'); return i.complete && i.naturalWidth > 0 && i.alt.length > 0; })()`))
	must("QR code", err)
	if !drawn {
		t.Fatal("the QR code image did not load (Content-Security-Policy img-src?) or has no alt text")
	}
	grouped, err := chromedp.Run(step, chromedp.Text(`#totp-secret`))
	must("secret", err)
	key := strings.ReplaceAll(strings.TrimSpace(grouped), " ", "")
	if len(key) != 32 {
		t.Fatalf("secret %q", grouped)
	}
	must("confirm", chromedp.Do(step,
		chromedp.SendKeys(`#totp-code`, appCode(t, key, srv.Clock.Now())),
		chromedp.Submit(`#totp-code`),
		chromedp.WaitVisible(`ul.authenticators`),
	))
	confirmed, err := chromedp.Run(step, chromedp.Text(`main`))
	must("confirmed page", err)
	if !strings.Contains(confirmed, "Your authenticator app is set up.") {
		t.Fatalf("after the first code: %s", confirmed)
	}

	must("sign out", chromedp.Do(step,
		chromedp.Navigate(srv.URL+"/logout"),
		chromedp.WaitVisible(`form[action="/logout"] button`),
		chromedp.Click(`form[action="/logout"] button`),
		chromedp.WaitNotPresent(`form[action="/logout"]`),
	))
	signedOut, err := chromedp.Run(step, chromedp.Text(`h1`))
	must("signed out", err)
	if signedOut != "You are signed out" {
		t.Fatalf("after signing out: %q", signedOut)
	}
	waitOutboxSettled(t, srv)
	srv.Clock.Advance(provider.TOTPPeriod * time.Second) // the first code's step is used

	verifier := oauth2.GenerateVerifier()
	nonce := "nonce-" + randomString(8)
	authURL := conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	must("login page", chromedp.Do(step, chromedp.Navigate(authURL), chromedp.WaitVisible(`input[name="email"]`)))
	must("password again", chromedp.Do(step,
		chromedp.SendKeys(`input[name="email"]`, alice.Email),
		chromedp.SendKeys(`input[name="password"]`, alice.Password),
		chromedp.Submit(`input[name="password"]`),
		chromedp.WaitVisible(`#authenticator-otp`),
	))
	shot("login_otp_authenticator.png")
	must("app code", chromedp.Do(step,
		chromedp.SendKeys(`#authenticator-otp`, appCode(t, key, srv.Clock.Now())),
		chromedp.Submit(`#authenticator-otp`),
	))
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(30 * time.Second):
		loc, _ := chromedp.Run(step, chromedp.Location())
		t.Fatalf("the browser never reached the relying party (at %s)", loc)
	}
	if q.Get("state") != "state-123456789" || q.Get("code") == "" {
		t.Fatalf("relying party got %v", q)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: c.ID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Acr string   `json:"acr"`
		Amr []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != nonce || claims.Acr != provider.ACRSecondFactor || !slices.Equal(claims.Amr, []string{"pwd", "otp"}) {
		t.Fatalf("ID token: nonce %q acr %q amr %v", idt.Nonce, claims.Acr, claims.Amr)
	}
	if m := verifyPassedMethod(t, srv, alice.ID); m != "totp" {
		t.Fatalf("audit method %q, want totp", m)
	}
	waitOutboxSettled(t, srv)
}
