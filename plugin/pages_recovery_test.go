package plugin_test

import (
	"context"
	"html"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/web/openapitest"
)

var recoverLink = regexp.MustCompile(`<a href="(/login/recover\?[^"]*)">`)

// toRecovery follows the app's authorize request to the login page, checks
// its "Forgot password?" link keeps the request, and follows it.
func toRecovery(t *testing.T, b *plugintest.Browser, c *plugintest.Client, forgot string, extra ...oauth2.AuthCodeOption) *plugintest.Page {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}, extra...)
	login := b.Follow(c.Conf.AuthCodeURL("state-123456789", opts...), plugintest.RedirectURI)
	m := recoverLink.FindStringSubmatch(login.Body)
	if login.URL.Path != "/login" || m == nil || !strings.Contains(login.Body, forgot) {
		t.Fatalf("no %q link on the login page: %s", forgot, login)
	}
	link := html.UnescapeString(m[1])
	u, _ := url.Parse(link)
	if u.Query().Get("return_to") != login.HiddenField("return_to") {
		t.Fatalf("the recovery link %q does not keep return_to %q", link, login.HiddenField("return_to"))
	}
	page := b.Follow(login.URL.ResolveReference(u).String(), plugintest.RedirectURI)
	if page.Status != http.StatusOK || page.URL.Path != "/login/recover" {
		t.Fatalf("recovery page: %s", page)
	}
	return page
}

// mailCount is how many mails the SMTP peer received once the outbox settled.
func mailCount(t *testing.T, srv *plugintest.Server, smtpSrv *mailtest.Server) int {
	t.Helper()
	waitOutboxSettled(t, srv)
	return len(smtpSrv.Messages())
}

// exchange redeems the code of page (the redirect to the RP).
func exchange(t *testing.T, c *plugintest.Client, page *plugintest.Page, verifier string) *oauth2.Token {
	t.Helper()
	code := page.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", page)
	}
	tok, err := c.Conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// Account recovery end to end, on both databases, through the SMTP peer:
// "Forgot password?" keeps the authorize request; the code page never says
// a code was sent; the mail names the product and the client and carries
// the code; a reload sends nothing; a form without its CSRF token is
// refused; a wrong code says the tries left; the new password ends every
// old session (its cookie opens nothing, its tokens are inactive) and signs
// the browser in with a recovered session at aal1, which continues to the
// app; an app asking acr_values=aal2 gets no aal2 from it and no code is
// mailed for it (the page says to sign in again); the next login needs the
// new password and the second factor.
func TestPages_RecoveryEndToEnd(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.UI.ProductName = "Acme ID" })
		ctx := context.Background()
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		old := srv.LoginWithPassword(t, shop, alice)

		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Forgot your password?")
		returnTo := page.HiddenField("return_to")
		if !strings.Contains(page.Body, `<html lang="en">`) || !strings.Contains(page.Body, `autocomplete="username"`) || !strings.Contains(page.Body, "Shop") {
			t.Fatalf("recovery page: %s", page)
		}
		// CSRF: a form without its token is refused, nothing is sent.
		if p := b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}, "csrf_token": {"forged"}}, plugintest.RedirectURI); p.Status != http.StatusForbidden {
			t.Fatalf("recovery request without its CSRF token: %s", p)
		}
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		want := "If an account has the address " + alice.Email + ", a recovery code is on its way to it, unless too many codes were sent to it recently."
		if page.URL.Path != "/login/recover/code" || !strings.Contains(html.UnescapeString(page.Body), want) || strings.Contains(page.Body, "We sent") ||
			!strings.Contains(page.Body, `autocomplete="one-time-code"`) || !strings.Contains(page.Body, `inputmode="numeric"`) {
			t.Fatalf("code page: %s", page)
		}
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		m := smtpSrv.Messages()[0]
		if m.Subject != "Your Acme ID account recovery code for Shop" || !strings.Contains(m.Text, "Your Acme ID account recovery code for Shop is:") ||
			!strings.Contains(html.UnescapeString(m.HTML), "Your Acme ID account recovery code for Shop is:") {
			t.Fatalf("recovery mail: %q\n%s", m.Subject, m.Text)
		}
		// A reload of the page the request ended on sends nothing.
		b.Follow(page.URL.String(), plugintest.RedirectURI)
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails after a reload, want 1", n)
		}

		wrongPage := b.Submit(page, "/login/recover/code", url.Values{"otp": {wrongCode(code)}, "return_to": {returnTo}}, plugintest.RedirectURI)
		left := srv.Plugin.Provider.Config().OTP.MaxAttempts - 1
		if wrongPage.URL.Path != "/login/recover/code" || !strings.Contains(wrongPage.Body, "You can try "+strconv.Itoa(left)+" more times with this code.") {
			t.Fatalf("a wrong code: %s", wrongPage)
		}
		// A reload of the page the wrong code ended on spends no try; a
		// code without the form's CSRF token is refused and spends none.
		if again := b.Follow(wrongPage.URL.String(), plugintest.RedirectURI); !strings.Contains(again.Body, "You can try "+strconv.Itoa(left)+" more times with this code.") {
			t.Fatalf("a reload after the wrong code: %s", again)
		}
		if p := b.Submit(wrongPage, "/login/recover/code", url.Values{"otp": {code}, "return_to": {returnTo}, "csrf_token": {"forged"}}, plugintest.RedirectURI); p.Status != http.StatusForbidden {
			t.Fatalf("the code without its CSRF token: %s", p)
		}
		page = b.Submit(wrongPage, "/login/recover/code", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if page.URL.Path != "/login/recover/password" || strings.Count(page.Body, `autocomplete="new-password"`) != 2 ||
			!strings.Contains(page.Body, `autocomplete="username" value="`+alice.Email+`"`) {
			t.Fatalf("password page: %s", page)
		}
		p := b.Submit(page, "/login/recover/password", url.Values{"password": {"a new long password"}, "password_confirm": {"another one"}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/recover/password" || !strings.Contains(p.Body, "The two passwords are not the same.") {
			t.Fatalf("two passwords: %s", p)
		}
		p = b.Submit(p, "/login/recover/password", url.Values{"password": {"short"}, "password_confirm": {"short"}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/recover/password" || !strings.Contains(p.Body, "The password needs at least "+strconv.Itoa(provider.MinPasswordLength)+" characters") {
			t.Fatalf("a short password: %s", p)
		}
		if p := b.Submit(p, "/login/recover/password", url.Values{"password": {"a forged password"}, "password_confirm": {"a forged password"},
			"return_to": {returnTo}, "csrf_token": {"forged"}}, plugintest.RedirectURI); p.Status != http.StatusForbidden {
			t.Fatalf("the new password without its CSRF token: %s", p)
		}
		if _, err := srv.Plugin.Provider.Authenticate(ctx, alice.Email, alice.Password, "192.0.2.9"); err != nil {
			t.Fatalf("the old password before the recovery completed: %v", err)
		}
		// The new password: on to the app with the recovered session
		// (return_to carried it), at aal1.
		verifier := oauth2.GenerateVerifier()
		u, _ := url.Parse(returnTo)
		q := u.Query()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		u.RawQuery = q.Encode()
		back := b.Submit(p, "/login/recover/password", url.Values{"password": {"a new long password"}, "password_confirm": {"a new long password"}, "return_to": {u.String()}}, plugintest.RedirectURI)
		if !strings.HasPrefix(back.URL.String(), plugintest.RedirectURI) {
			t.Fatalf("after the new password: %s", back)
		}
		tok := exchange(t, shop, back, verifier)
		if acr, amr := secondFactorClaims(t, tok); acr != "aal1" || strings.Join(amr, ",") != "otp" {
			t.Fatalf("recovered session's ID token: acr %q amr %v", acr, amr)
		}
		// Every old session is gone: its cookie opens nothing, its tokens
		// are inactive, its refresh token redeems nothing.
		again := old.Browser.Follow(shop.Conf.AuthCodeURL("state-223456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("prompt", "none")), plugintest.RedirectURI)
		if again.URL.Query().Get("error") != "login_required" {
			t.Fatalf("the old browser after the recovery: %s", again)
		}
		v := openapitest.Load(t)
		for _, token := range []string{old.Token.AccessToken, old.Token.RefreshToken} {
			if status, _, body := introspectAs(t, v, srv, basic(shop), url.Values{"token": {token}}); status != http.StatusOK || !strings.Contains(body, `"active":false`) {
				t.Fatalf("an old token after the recovery: %d %s", status, body)
			}
		}
		if _, err := shop.Conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old.Token.RefreshToken}).Token(); err == nil {
			t.Fatal("the old refresh token still redeems")
		}
		if status, _, body := introspectAs(t, v, srv, basic(shop), url.Values{"token": {tok.AccessToken}}); status != http.StatusOK || !strings.Contains(body, `"active":true`) {
			t.Fatalf("the recovered session's token: %d %s", status, body)
		}

		// acr_values=aal2: the recovered session cannot give it, no code is
		// mailed for it, and the page says to sign in again.
		step := b.Follow(shop.Conf.AuthCodeURL("state-323456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("acr_values", "aal2")), plugintest.RedirectURI)
		if step.URL.Path != "/login/otp" || !strings.Contains(step.Body, "Sign in again with your new password") ||
			!strings.Contains(step.Body, "a code from the same mailbox cannot be that step") || strings.Contains(step.Body, `name="otp"`) {
			t.Fatalf("aal2 asked of the recovered session: %s", step)
		}
		// The page has no form; a token of another page of this browser
		// posts its resend form all the same.
		withToken := b.Follow(srv.URL+"/login/recover", plugintest.RedirectURI)
		step.Body = withToken.Body
		resend := b.Submit(step, "/login/otp/resend", url.Values{"return_to": {step.URL.Query().Get("return_to")}}, plugintest.RedirectURI)
		if resend.URL.Path != "/login/otp" || !strings.Contains(resend.Body, "Sign in again with your new password") {
			t.Fatalf("resend on the recovered session: %s", resend)
		}
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails: a code was mailed for the recovered session", n)
		}
		// Its "Sign in with the new password" keeps the request: the new
		// password starts a new session, whose emailed code gives aal2.
		signIn := regexp.MustCompile(`<a class="button" href="([^"]*)">Sign in with the new password</a>`).FindStringSubmatch(resend.Body)
		if signIn == nil {
			t.Fatalf("no sign-in link: %s", resend)
		}
		login2 := b.Follow(srv.URL+html.UnescapeString(signIn[1]), plugintest.RedirectURI)
		if login2.URL.Path != "/login" || login2.HiddenField("return_to") == "" || !strings.Contains(login2.Body, "Continue as") {
			t.Fatalf("the sign-in link: %s", login2)
		}
		verifier2 := oauth2.GenerateVerifier()
		ret2, _ := url.Parse(login2.HiddenField("return_to"))
		q2 := ret2.Query()
		q2.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier2))
		ret2.RawQuery = q2.Encode()
		otp2 := b.Submit(login2, "/login", url.Values{"email": {alice.Email}, "password": {"a new long password"}, "return_to": {ret2.String()}}, plugintest.RedirectURI)
		if otp2.URL.Path != "/login/otp" || !strings.Contains(otp2.Body, "We sent a code to") {
			t.Fatalf("signing in again from the recovered session: %s", otp2)
		}
		done2 := b.Submit(otp2, "/login/otp", url.Values{"otp": {codeFrom(t, smtpSrv, 2, alice.Email)}, "return_to": {otp2.HiddenField("return_to")}}, plugintest.RedirectURI)
		if acr, _ := secondFactorClaims(t, exchange(t, shop, done2, verifier2)); acr != "aal2" {
			t.Fatalf("signed in again after the recovery: acr %q", acr)
		}

		// The next login: the old password is refused, the new one and
		// the emailed second factor give aal2.
		b3 := plugintest.NewBrowser(t)
		verifier = oauth2.GenerateVerifier()
		login := b3.Follow(shop.Conf.AuthCodeURL("state-423456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("acr_values", "aal2")), plugintest.RedirectURI)
		ret := login.HiddenField("return_to")
		if p := b3.Submit(login, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {ret}}, plugintest.RedirectURI); p.Status != http.StatusUnauthorized {
			t.Fatalf("the old password: %s", p)
		}
		otpPage := b3.Submit(login, "/login", url.Values{"email": {alice.Email}, "password": {"a new long password"}, "return_to": {ret}}, plugintest.RedirectURI)
		if otpPage.URL.Path != "/login/otp" || !strings.Contains(otpPage.Body, "We sent a code to") {
			t.Fatalf("the new password: %s", otpPage)
		}
		loginCode := codeFrom(t, smtpSrv, 3, alice.Email)
		done := b3.Submit(otpPage, "/login/otp", url.Values{"otp": {loginCode}, "return_to": {otpPage.HiddenField("return_to")}}, plugintest.RedirectURI)
		if acr, amr := secondFactorClaims(t, exchange(t, shop, done, verifier)); acr != "aal2" || strings.Join(amr, ",") != "pwd,otp" {
			t.Fatalf("the next login: acr %q amr %v", acr, amr)
		}
		events, err := srv.Store.ListAuditEvents(ctx, alice.ID, 100)
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

// An unknown address gets the same pages as a known one: the same words
// after the request, the same tries left after each wrong code and the same
// refusal once otp.max_attempts is spent; no mail goes out for it. The
// per-address request limit says that no new code was sent and when one
// can be asked for. Both databases.
func TestPages_RecoveryUnknownAddressAnswersTheSame(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.Recovery.MaxRequestsPerAccount = 2 })
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		max := srv.Plugin.Provider.Config().OTP.MaxAttempts
		// answers runs a recovery for email with max+1 wrong codes (wrong,
		// called once the request is in) and returns what each page said,
		// the address written as ADDR.
		answers := func(email string, wrong func() string) []string {
			b := plugintest.NewBrowser(t)
			page := toRecovery(t, b, shop, "Forgot your password?")
			returnTo := page.HiddenField("return_to")
			page = b.Submit(page, "/login/recover", url.Values{"email": {email}, "return_to": {returnTo}}, plugintest.RedirectURI)
			said := func(p *plugintest.Page) string {
				return p.URL.Path + ": " + strings.ReplaceAll(html.UnescapeString(messages(p.Body)), email, "ADDR")
			}
			out := []string{said(page)}
			bad := wrong()
			for i := 0; i <= max; i++ {
				page = b.Submit(page, "/login/recover/code", url.Values{"otp": {bad}, "return_to": {returnTo}}, plugintest.RedirectURI)
				out = append(out, said(page))
			}
			return out
		}
		var bad string
		known := answers(alice.Email, func() string { bad = wrongCode(codeFrom(t, smtpSrv, 1, alice.Email)); return bad })
		unknown := answers("nobody-"+plugintest.RandomString(6)+"@example.com", func() string { return bad })
		if strings.Join(known, "\n") != strings.Join(unknown, "\n") {
			t.Fatalf("known and unknown addresses answer differently:\n%s\n---\n%s", strings.Join(known, "\n"), strings.Join(unknown, "\n"))
		}
		for i, want := range map[int]string{1: "You can try " + strconv.Itoa(max-1) + " more times", max: "it was the last try", max + 1: "Too many wrong codes: this recovery code no longer works."} {
			if !strings.Contains(known[i], want) {
				t.Fatalf("answer %d %q lacks %q", i, known[i], want)
			}
		}
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails, want 1 (none for the unknown address)", n)
		}
		// The second request of the window is allowed (past
		// otp.resend_interval, which would hold its code back), the third
		// refused, saying so and when.
		waitOutboxSettled(t, srv)
		srv.Clock.Advance(srv.Plugin.Provider.Config().OTP.ResendInterval + time.Second)
		answers(alice.Email, func() string { return wrongCode(codeFrom(t, smtpSrv, 2, alice.Email)) })
		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Forgot your password?")
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		body := html.UnescapeString(page.Body)
		if page.URL.Path != "/login/recover/code" || !strings.Contains(body, "No new code was sent to "+alice.Email) ||
			!strings.Contains(body, "Too many recovery codes were asked for this address recently, so no new code was sent. You can ask for a new code at ") {
			t.Fatalf("the request past the limit: %s", page)
		}
		if n := mailCount(t, srv, smtpSrv); n != 2 {
			t.Fatalf("%d mails, want 2", n)
		}
	})
}

var pageMessage = regexp.MustCompile(`<p class="message [a-z]+" role="(?:status|alert)"[^>]*>([^<]*)</p>`)

// messages are the notices and errors of a page body, one per line.
func messages(body string) string {
	var out []string
	for _, m := range pageMessage.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return strings.Join(out, " | ")
}

// The recovery in German (ui_locales=de): every page German, and the mail
// names the product and the client in German and carries the code. Both
// databases.
func TestPages_RecoveryInGerman(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) { c.UI.ProductName = "Acme ID" })
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Passwort vergessen?", oauth2.SetAuthURLParam("ui_locales", "de"))
		returnTo := page.HiddenField("return_to")
		if !strings.Contains(page.Body, `<html lang="de">`) || !strings.Contains(page.Body, "Passwort zurücksetzen") {
			t.Fatalf("German recovery page: %s", page)
		}
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if !strings.Contains(html.UnescapeString(page.Body), "Wenn ein Konto die Adresse "+alice.Email+" hat, ist ein Wiederherstellungscode an sie unterwegs") {
			t.Fatalf("German code page: %s", page)
		}
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		m := smtpSrv.Messages()[0]
		if m.Subject != "Ihr Acme ID-Code zur Kontowiederherstellung für Shop" ||
			!strings.Contains(m.Text, "Ihr Acme ID-Code zur Kontowiederherstellung für Shop lautet:") || !strings.Contains(m.Text, "neues Passwort") {
			t.Fatalf("German recovery mail: %q\n%s", m.Subject, m.Text)
		}
		page = b.Submit(page, "/login/recover/code", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if !strings.Contains(page.Body, "Neues Passwort wählen") || !strings.Contains(page.Body, `<html lang="de">`) {
			t.Fatalf("German password page: %s", page)
		}
		// Without return_to: the done page (German by Accept-Language now
		// that no authorize request carries ui_locales).
		done := b.Submit(page, "/login/recover/password", url.Values{"password": {"ein neues langes Passwort"}, "password_confirm": {"ein neues langes Passwort"}}, plugintest.RedirectURI)
		if done.URL.Path != "/login/recover/done" || !strings.Contains(done.Body, "Your new password is set") || !strings.Contains(done.Body, alice.Email) {
			t.Fatalf("done page: %s", done)
		}
	})
}

// A user with a confirmed authenticator TOTP cannot set a password with the
// emailed code alone: the password page and its form send the browser to
// the authenticator code, the password stays; a wrong code says the tries
// left; the right one leads to the new password, and the recovered session
// is aal1 all the same. Both databases.
func TestPages_RecoveryNeedsTheAuthenticator(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		ctx := context.Background()
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		k := enrollAuthenticator(t, srv, alice.User)
		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Forgot your password?")
		returnTo := page.HiddenField("return_to")
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		page = b.Submit(page, "/login/recover/code", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if page.URL.Path != "/login/recover/authenticator" || !strings.Contains(page.Body, "A code from your mailbox alone cannot set a new password") ||
			!strings.Contains(page.Body, `autocomplete="one-time-code"`) {
			t.Fatalf("after the recovery code: %s", page)
		}
		// Around it: the password page, and its form posted directly.
		if p := b.Follow(srv.URL+"/login/recover/password", plugintest.RedirectURI); p.URL.Path != "/login/recover/authenticator" {
			t.Fatalf("the password page before the authenticator: %s", p)
		}
		p := b.Submit(page, "/login/recover/password", url.Values{"password": {"a new long password"}, "password_confirm": {"a new long password"}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/recover/authenticator" {
			t.Fatalf("the password form before the authenticator: %s", p)
		}
		if _, err := srv.Plugin.Provider.Authenticate(ctx, alice.Email, alice.Password, "192.0.2.9"); err != nil {
			t.Fatalf("the password changed without the authenticator: %v", err)
		}
		// The enrollment used now's step: the next one.
		waitOutboxSettled(t, srv)
		srv.Clock.Advance(provider.TOTPPeriod * time.Second)
		totpCode := totpCodeAt(t, k, srv.Clock.Now())
		p = b.Submit(page, "/login/recover/authenticator", url.Values{"otp": {wrongCode(totpCode)}, "return_to": {returnTo}}, plugintest.RedirectURI)
		left := srv.Plugin.Provider.Config().OTP.MaxFailuresPerUser - 1
		if p.URL.Path != "/login/recover/authenticator" || !strings.Contains(p.Body, "That code from your authenticator app is not right, or was used already. You can try "+strconv.Itoa(left)+" more times.") {
			t.Fatalf("a wrong authenticator code: %s", p)
		}
		p = b.Submit(p, "/login/recover/authenticator", url.Values{"otp": {totpCode}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/recover/password" {
			t.Fatalf("after the authenticator code: %s", p)
		}
		verifier := oauth2.GenerateVerifier()
		u, _ := url.Parse(returnTo)
		q := u.Query()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		u.RawQuery = q.Encode()
		back := b.Submit(p, "/login/recover/password", url.Values{"password": {"a new long password"}, "password_confirm": {"a new long password"}, "return_to": {u.String()}}, plugintest.RedirectURI)
		if acr, _ := secondFactorClaims(t, exchange(t, shop, back, verifier)); acr != "aal1" {
			t.Fatalf("the recovered session with the authenticator passed: acr %q", acr)
		}
		if _, err := srv.Plugin.Provider.Authenticate(ctx, alice.Email, "a new long password", "192.0.2.9"); err != nil {
			t.Fatalf("the new password: %v", err)
		}
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
	})
}

// The limits per IP say which refused and the time to come back (the
// moment Retry-After would name, in ui.time_zone): recovery requests from
// one network (back on the email form, no code sent), and wrong recovery
// codes from one network (even for an address with tries left). Both
// databases.
func TestPages_RecoveryLimitsPerIPSayWhichAndWhen(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) {
			c.Recovery.MaxRequestsPerIP = 2
			c.Recovery.MaxCodeFailuresPerIP = 3
			c.UI.TimeZone = "Europe/Berlin"
		})
		shop := srv.NewClientWith(t, provider.NewClient{Name: "Shop"})
		alice := srv.NewUser(t)
		berlin, _ := time.LoadLocation("Europe/Berlin")
		// at is the time a counter's reset is told at, as the pages write it.
		at := func(key string, window time.Duration) string {
			t.Helper()
			_, resetAt, err := srv.Store.PeekRateCounter(context.Background(), key, window)
			if err != nil {
				t.Fatal(err)
			}
			now := srv.Clock.Now()
			wait := time.Duration(math.Max(1, math.Ceil(resetAt.Sub(now).Seconds()))) * time.Second
			local := now.Add(wait).In(berlin)
			_, off := local.Zone()
			return local.Format("15:04") + " UTC+" + time.Unix(int64(off), 0).UTC().Format("15:04")
		}
		b := plugintest.NewBrowser(t)
		page := toRecovery(t, b, shop, "Forgot your password?")
		returnTo := page.HiddenField("return_to")
		page = b.Submit(page, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		// Wrong codes: the third from this IP is the last allowed, the
		// fourth is refused by recovery.max_code_failures_per_ip although
		// the address has tries left.
		for i := 0; i < 3; i++ {
			page = b.Submit(page, "/login/recover/code", url.Values{"otp": {wrongCode(code)}, "return_to": {returnTo}}, plugintest.RedirectURI)
		}
		window := srv.Plugin.Provider.Config().Recovery.Window
		page = b.Submit(page, "/login/recover/code", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		want := "Too many wrong recovery codes were entered from your network recently. You can try again at " + at("recovery:code:ip:127.0.0.1", window) + "."
		if page.URL.Path != "/login/recover/code" || !strings.Contains(html.UnescapeString(page.Body), want) {
			t.Fatalf("past recovery.max_code_failures_per_ip: want %q in %s", want, page)
		}
		// Requests: the second from this IP is the last allowed.
		other := plugintest.NewBrowser(t)
		p := toRecovery(t, other, shop, "Forgot your password?")
		p = other.Submit(p, "/login/recover", url.Values{"email": {"someone@example.com"}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/recover/code" {
			t.Fatalf("the second request: %s", p)
		}
		p = toRecovery(t, other, shop, "Forgot your password?")
		p = other.Submit(p, "/login/recover", url.Values{"email": {alice.Email}, "return_to": {returnTo}}, plugintest.RedirectURI)
		want = "Too many recovery codes were asked from your network recently, so no code was sent. You can ask again at " + at("recovery:requests:ip:127.0.0.1", window) + "."
		if p.URL.Path != "/login/recover" || !strings.Contains(html.UnescapeString(p.Body), want) || strings.Contains(p.Body, "on its way") {
			t.Fatalf("past recovery.max_requests_per_ip: want %q in %s", want, p)
		}
		if n := mailCount(t, srv, smtpSrv); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
	})
}
