package plugin_test

import (
	"bytes"
	"encoding/base64"
	"html"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

var (
	pageSecret = regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)</code>`)
	pageQRCode = regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*alt="([^"]+)"`)
	pageTOTPID = regexp.MustCompile(`name="id" value="([^"]+)"`)
)

// enrollmentOf reads what the enrollment page shows: the secret typed by
// hand (spaces removed), and checks the QR code is a PNG with alt text.
func enrollmentOf(t *testing.T, page *plugintest.Page) string {
	t.Helper()
	m := pageSecret.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no secret on the page: %s", page)
	}
	qr := pageQRCode.FindStringSubmatch(html.UnescapeString(page.Body))
	if qr == nil || strings.TrimSpace(qr[2]) == "" {
		t.Fatalf("no QR code image with alt text: %s", page)
	}
	raw, err := base64.StdEncoding.DecodeString(qr[1])
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() < 200 {
		t.Fatalf("QR code PNG: %v %v", err, img)
	}
	return strings.ReplaceAll(m[1], " ", "")
}

// appCode is what an authenticator app shows for secret at t (RFC 6238
// defaults, as the otpauth URI says).
func appCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: provider.TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func imgSrc(page *plugintest.Page) string { return cspDirective(page, "img-src") }

// TestSettingsTOTP_EnrollConfirmSignInRemove: /settings/totp needs a
// session past the second factor (none → /login, returning here; aal1 →
// the OTP page, returning here; a form posted then changes nothing). The
// user begins an enrollment (QR code as an inline PNG, which only this
// response's img-src admits; the secret as text, the same on a reload),
// a wrong first code says the tries left, the right one confirms it; a
// later sign-in takes the app's code (aal2) and the page then says when
// it was last used; a form without its CSRF token, or at aal1, removes
// nothing; a device's TOTP is not the page's to remove; Remove at aal2
// removes it and the OTP page no longer offers it. English and German.
// Both databases.
func TestSettingsTOTP_EnrollConfirmSignInRemove(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		p := srv.Plugin.Provider
		ctx := t.Context()
		alice := srv.NewUser(t)
		mails := 0
		nextMail := func() string { mails++; return codeFrom(t, smtpSrv, mails, alice.Email) }
		authenticators := func() int {
			t.Helper()
			infos, err := p.ListTOTPs(ctx, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, i := range infos {
				if i.Kind == provider.TOTPKindAuthenticator {
					n++
				}
			}
			return n
		}
		settings := srv.URL + "/settings/totp"

		// No session: to the login, which comes back here.
		b := plugintest.NewBrowser(t)
		login := b.Follow(settings, "")
		if login.Status != http.StatusOK || login.URL.Path != "/login" || login.HiddenField("return_to") != "/settings/totp" {
			t.Fatalf("no session: %s", login)
		}
		// A form posted without a session (a CSRF token of the login page) removes nothing and goes to the login.
		if p := b.Submit(login, "/settings/totp", url.Values{}, ""); p.URL.Path != "/login" || authenticators() != 0 {
			t.Fatalf("begin without a session: %s", p)
		}
		// The password alone (aal1): the OTP page, which comes back here.
		otpPage := b.Submit(login, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {"/settings/totp"}}, "")
		if otpPage.URL.Path != "/login/otp" || otpPage.HiddenField("return_to") != "/settings/totp" {
			t.Fatalf("aal1: %s", otpPage)
		}
		code := nextMail()
		waitOutboxSettled(t, srv)
		if p := b.Submit(otpPage, "/settings/totp", url.Values{}, ""); p.URL.Path != "/login/otp" || authenticators() != 0 {
			t.Fatalf("begin at aal1: %s", p)
		}
		page := b.Submit(otpPage, "/login/otp", url.Values{"otp": {code}, "return_to": {"/settings/totp"}}, "")
		if page.Status != http.StatusOK || page.URL.Path != "/settings/totp" ||
			!strings.Contains(page.Body, "You have not set up an authenticator app.") || !strings.Contains(page.Body, "Set up an authenticator app") {
			t.Fatalf("aal2: %s", page)
		}
		if src := imgSrc(page); src != "img-src 'self'" {
			t.Fatalf("without an enrollment: %s", src)
		}

		page = b.Submit(page, "/settings/totp", url.Values{}, "")
		secret := enrollmentOf(t, page)
		if src := imgSrc(page); src != "img-src 'self' data:" {
			t.Fatalf("with an enrollment: %s", src)
		}
		body := html.UnescapeString(page.Body)
		for _, want := range []string{`<label for="totp-code">Code from the app</label>`, `autocomplete="one-time-code"`, `inputmode="numeric"`,
			"otpauth://totp/", "secret=" + secret, "Cancel setup", "<h2 id=\"enroll-heading\">"} {
			if !strings.Contains(body, want) {
				t.Fatalf("enrollment page lacks %q: %s", want, page)
			}
		}
		// A reload shows the same secret: the one the app may have scanned.
		if again := b.Follow(settings, ""); enrollmentOf(t, again) != secret {
			t.Fatal("a reload made a new secret")
		}
		id := pageTOTPID.FindStringSubmatch(page.Body)[1]
		wrong := b.Submit(page, "/settings/totp/confirm", url.Values{"id": {id}, "otp": {wrongCode(appCode(t, secret, srv.Clock.Now()))}}, "")
		max := p.Config().OTP.MaxFailuresPerUser
		if wrong.URL.Query().Get("notice") != "wrong" || !strings.Contains(wrong.Body, "You can try "+itoa(max-1)+" more times.") || enrollmentOf(t, wrong) != secret {
			t.Fatalf("a wrong first code: %s", wrong)
		}
		if has, _ := p.HasAuthenticatorTOTP(ctx, alice.ID); has {
			t.Fatal("a wrong first code confirmed the enrollment")
		}
		done := b.Submit(wrong, "/settings/totp/confirm", url.Values{"id": {id}, "otp": {appCode(t, secret, srv.Clock.Now())}}, "")
		if done.URL.Query().Get("notice") != "confirmed" || !strings.Contains(done.Body, "Your authenticator app is set up.") ||
			!strings.Contains(done.Body, "Remove this authenticator app") || !strings.Contains(done.Body, "Last code accepted: ") ||
			strings.Contains(done.Body, "totp-secret") {
			t.Fatalf("the right first code: %s", done)
		}
		if src := imgSrc(done); src != "img-src 'self'" {
			t.Fatalf("after the enrollment: %s", src)
		}
		if has, _ := p.HasAuthenticatorTOTP(ctx, alice.ID); !has {
			t.Fatal("not confirmed")
		}

		// A new sign-in takes the app's code (the next step: the first code's is used).
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		b2 := plugintest.NewBrowser(t)
		l2 := b2.Follow(settings, "")
		o2 := b2.Submit(l2, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {"/settings/totp"}}, "")
		nextMail()
		waitOutboxSettled(t, srv)
		if !strings.Contains(o2.Body, `action="/login/otp/authenticator"`) {
			t.Fatalf("the OTP page offers no authenticator: %s", o2)
		}
		// At aal1, Remove removes nothing.
		removeID := pageTOTPID.FindStringSubmatch(done.Body)[1]
		if p := b2.Submit(o2, "/settings/totp/delete", url.Values{"id": {removeID}}, ""); p.URL.Path != "/login/otp" || authenticators() != 1 {
			t.Fatalf("remove at aal1: %s", p)
		}
		s2 := b2.Submit(o2, "/login/otp/authenticator", url.Values{"otp": {appCode(t, secret, srv.Clock.Now())}, "return_to": {"/settings/totp"}}, "")
		if s2.URL.Path != "/settings/totp" || !strings.Contains(s2.Body, "Last code accepted: ") {
			t.Fatalf("signed in with the app's code: %s", s2)
		}
		de := b2.Follow(settings+"?ui_locales=de", "")
		for _, want := range []string{"Ihre Authenticator-Apps", "Diese Authenticator-App entfernen", "Zuletzt angenommener Code: ", `<html lang="de">`} {
			if !strings.Contains(de.Body, want) {
				t.Fatalf("German page lacks %q: %s", want, de)
			}
		}

		// Without its CSRF token a form is refused (403) and removes nothing.
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/settings/totp/delete", strings.NewReader(url.Values{"id": {removeID}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := b2.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || authenticators() != 1 {
			t.Fatalf("remove without a CSRF token: %d", resp.StatusCode)
		}
		// A device's TOTP is not the page's to remove.
		dev, err := p.CreateDeviceTOTP(ctx, alice.User, uuid.NewString())
		if err != nil {
			t.Fatal(err)
		}
		if p := b2.Submit(s2, "/settings/totp/delete", url.Values{"id": {dev.ID}}, ""); p.URL.Query().Get("notice") != "not_found" {
			t.Fatalf("remove a device TOTP: %s", p)
		}
		if infos, _ := p.ListTOTPs(ctx, alice.ID); len(infos) != 2 {
			t.Fatalf("TOTPs after removing a device's: %+v", infos)
		}

		removed := b2.Submit(s2, "/settings/totp/delete", url.Values{"id": {removeID}}, "")
		if removed.URL.Query().Get("notice") != "removed" || !strings.Contains(removed.Body, "The authenticator app was removed.") || authenticators() != 0 {
			t.Fatalf("remove at aal2: %s", removed)
		}
		b3 := plugintest.NewBrowser(t)
		l3 := b3.Follow(settings, "")
		o3 := b3.Submit(l3, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {"/settings/totp"}}, "")
		nextMail()
		waitOutboxSettled(t, srv)
		if strings.Contains(o3.Body, "/login/otp/authenticator") {
			t.Fatalf("the OTP page still offers a removed authenticator: %s", o3)
		}
	})
}

// TestSettingsTOTP_Embedded: under a host's prefix, the page and its forms
// post under the prefix, no session is a 401 page (the login is the
// host's), an enrollment made there signs in on the plugin's OTP page with
// the app's code (aal2, amr pwd+otp). Both databases.
func TestSettingsTOTP_Embedded(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		clock := plugintest.NewClock()
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect), Options: func(o *plugin.Options) { o.Clock = clock.Now }}
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
		settings := h.URL + "/mfa/settings/totp"

		if p := plugintest.NewBrowser(t).Follow(settings, ""); p.Status != http.StatusUnauthorized ||
			!strings.Contains(p.Body, "Please sign in first") {
			t.Fatalf("embedded, no session: %s", p)
		}
		b := plugintest.NewBrowser(t)
		page := passOTPPage(t, b, hp, h.HostLogin(t, b, hp, conf, u, oauth2.GenerateVerifier()), 1, u)
		if !strings.HasPrefix(page.URL.String(), plugintest.RedirectURI) {
			t.Fatalf("first login: %s", page)
		}
		page = b.Follow(settings, "")
		if page.Status != http.StatusOK || !strings.Contains(page.Body, `action="/mfa/settings/totp"`) {
			t.Fatalf("embedded settings page: %s", page)
		}
		page = b.Submit(page, "/mfa/settings/totp", url.Values{}, "")
		secret := enrollmentOf(t, page)
		for _, want := range []string{`action="/mfa/settings/totp/confirm"`, `action="/mfa/settings/totp/delete"`} {
			if !strings.Contains(page.Body, want) {
				t.Fatalf("embedded enrollment lacks %s: %s", want, page)
			}
		}
		id := pageTOTPID.FindStringSubmatch(page.Body)[1]
		done := b.Submit(page, "/mfa/settings/totp/confirm", url.Values{"id": {id}, "otp": {appCode(t, secret, clock.Now())}}, "")
		if done.URL.Query().Get("notice") != "confirmed" {
			t.Fatalf("embedded confirm: %s", done)
		}

		b2 := plugintest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		otpPage := h.HostLogin(t, b2, hp, conf, u, verifier)
		if !strings.Contains(otpPage.Body, `action="/mfa/login/otp/authenticator"`) {
			t.Fatalf("embedded OTP page offers no authenticator: %s", otpPage)
		}
		// The confirmation used the current step: the next one's code.
		clock.Advance(provider.TOTPPeriod * time.Second)
		back := b2.Submit(otpPage, "/mfa/login/otp/authenticator", url.Values{"otp": {appCode(t, secret, clock.Now())}, "return_to": {otpPage.HiddenField("return_to")}}, plugintest.RedirectURI)
		requireAAL2(t, h.Exchange(t, conf, back, verifier), u)
	})
}

// TestSettingsTOTP_RecoveredSessionIsToldToSignInAgain: a session from an
// account recovery stays at the first factor, so the authenticator page
// sends it to the OTP page, which mails nothing for it and says to sign in
// again; its forms change nothing. Both databases.
func TestSettingsTOTP_RecoveredSessionIsToldToSignInAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Forgot your password?")
		returnTo := page.HiddenField("return_to")
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		page = b.Submit(page, "/login/recover/code", url.Values{"otp": {codeFrom(t, smtpSrv, 1, alice.Email)}, "return_to": {returnTo}}, plugintest.RedirectURI)
		back := b.Submit(page, "/login/recover/password", url.Values{"password": {"a new long password"}, "password_confirm": {"a new long password"}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if !strings.HasPrefix(back.URL.String(), plugintest.RedirectURI) {
			t.Fatalf("after the recovery: %s", back)
		}
		settings := b.Follow(srv.URL+"/settings/totp", "")
		if settings.URL.Path != "/login/otp" || !strings.Contains(settings.Body, "Sign in again with your new password") || strings.Contains(settings.Body, "totp-secret") {
			t.Fatalf("the authenticator page for a recovered session: %s", settings)
		}
		withToken := b.Follow(srv.URL+"/login/recover", plugintest.RedirectURI)
		if p := b.Submit(withToken, "/settings/totp", url.Values{}, ""); p.URL.Path != "/login/otp" {
			t.Fatalf("begin on a recovered session: %s", p)
		}
		if infos, err := srv.Plugin.Provider.ListTOTPs(t.Context(), alice.ID); err != nil || len(infos) != 0 {
			t.Fatalf("TOTPs made for a recovered session: %+v %v", infos, err)
		}
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails: a code was mailed for the recovered session", n)
		}
	})
}
