package plugin_test

import (
	"encoding/json"
	"html"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/web/openapitest"
)

// TestPages_SendLimitIsToldAsItIs: at otp.max_sends_per_hour the OTP page
// says no code was sent, which limit held it back and the time a new one can
// be asked for (the moment Retry-After names, in ui.time_zone); a fresh
// login at the cap is not told "We sent a code"; reloading after "Send a new
// code" sends nothing (post/redirect/get); the API's 429 names the limit
// with an exact Retry-After. Both databases, through the SMTP peer.
func TestPages_SendLimitIsToldAsItIs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, func(c *plugin.Config) {
			c.OTP.MaxSendsPerHour = 3
			c.OTP.ResendInterval = 0
			c.UI.TimeZone = "Europe/Berlin"
		})
		client := srv.NewClient(t, true, "user:otp:create")
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := b.Follow(client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), plugintest.RedirectURI)
		page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		if page.URL.Path != "/login/otp" || !strings.Contains(page.Body, "We sent a code to") {
			t.Fatalf("after the password: %s", page)
		}
		codeFrom(t, smtpSrv, 1, alice.Email) // send 1
		returnTo := page.HiddenField("return_to")
		resent := b.Submit(page, "/login/otp/resend", url.Values{"return_to": {returnTo}}, plugintest.RedirectURI)
		if resent.Status != http.StatusOK || resent.URL.Query().Get("notice") != "resent" || !strings.Contains(resent.Body, "A new code is on its way to") {
			t.Fatalf("resend: %s", resent)
		}
		codeFrom(t, smtpSrv, 2, alice.Email) // send 2
		// A reload of the page the resend ended on is a GET: nothing is sent.
		b.Follow(resent.URL.String(), plugintest.RedirectURI)
		b.Follow(resent.URL.String(), plugintest.RedirectURI)

		// The API spends the third send of the hour (the same per-user cap).
		token := srv.LoginWithPassword(t, srv.NewClient(t, false, "user:otp:create"), alice).Token.AccessToken
		createOTP := func() *http.Response {
			req, err := http.NewRequest(http.MethodPost, srv.URL+openapitest.DefaultPrefix+"/user/otp", strings.NewReader(`{"password":"`+alice.Password+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		if resp := createOTP(); resp.StatusCode >= 300 {
			t.Fatalf("third send: %d", resp.StatusCode)
		} else {
			resp.Body.Close()
		}
		smtpSrv.WaitMessages(3, 20*time.Second)

		// Now at the cap: the resend sends nothing and says so, with the time.
		n, resetAt, err := srv.Store.PeekRateCounter(t.Context(), "otp:sends:"+alice.ID, time.Hour)
		if err != nil || n != 3 {
			t.Fatalf("sends counter %d, %v", n, err)
		}
		now := srv.Clock.Now()
		retry := int(math.Max(1, math.Ceil(resetAt.Sub(now).Seconds())))
		berlin, _ := time.LoadLocation("Europe/Berlin")
		at := now.Add(time.Duration(retry) * time.Second).In(berlin)
		_, off := at.Zone()
		wantTime := at.Format("15:04") + " UTC+" + time.Unix(int64(off), 0).UTC().Format("15:04")
		refused := b.Submit(resent, "/login/otp/resend", url.Values{"return_to": {returnTo}}, plugintest.RedirectURI)
		want := "Too many codes were sent for this account in the last hour, so no new code was sent. You can ask for a new code at " + wantTime + "."
		if refused.URL.Query().Get("notice") != "refused" || !strings.Contains(html.UnescapeString(refused.Body), want) {
			t.Fatalf("resend at the cap: want %q in %s", want, refused)
		}
		// A new login at the cap: no code was sent, and the page says so.
		b2 := plugintest.NewBrowser(t)
		p2 := b2.Follow(client.Conf.AuthCodeURL("state-223456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), plugintest.RedirectURI)
		p2 = b2.Submit(p2, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {p2.HiddenField("return_to")}}, plugintest.RedirectURI)
		if p2.URL.Path != "/login/otp" || strings.Contains(p2.Body, "We sent a code") || !strings.Contains(p2.Body, "No code was sent.") ||
			!strings.Contains(html.UnescapeString(p2.Body), "You can ask for a new code at "+wantTime) {
			t.Fatalf("a new login at the cap: %s", p2)
		}
		// The API names the limit, Retry-After exact.
		resp := createOTP()
		defer resp.Body.Close()
		var doc struct {
			Errors []struct{ Code, Detail string } `json:"errors"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != strconv.Itoa(retry) || len(doc.Errors) != 1 ||
			!strings.HasPrefix(doc.Errors[0].Detail, "Too many codes sent for this account in the last hour") {
			t.Fatalf("API at the cap: %d Retry-After %q (want %d) %+v", resp.StatusCode, resp.Header.Get("Retry-After"), retry, doc)
		}
		if got := len(smtpSrv.Messages()); got != 3 {
			t.Fatalf("%d mails, want 3: a refused send or a reload mailed a code", got)
		}
	})
}

// TestPages_AttemptsLeftAndTheLastOneBurnsTheCode: each wrong code says how
// many tries the code has left; the otp.max_attempts-th wrong one says it
// burned the code (not the next submission); the right code after it is
// refused with the same words.
func TestPages_AttemptsLeftAndTheLastOneBurnsTheCode(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		client := srv.NewClient(t, true)
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := b.Follow(client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("ui_locales", "de")), plugintest.RedirectURI)
		page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		returnTo := page.HiddenField("return_to")
		max := srv.Plugin.Provider.Config().OTP.MaxAttempts
		for i := 1; i <= max; i++ {
			p := b.Submit(page, "/login/otp", url.Values{"otp": {wrongCode(code)}, "return_to": {returnTo}}, plugintest.RedirectURI)
			var want string
			switch left := max - i; left {
			case 0:
				want = "das war der letzte Versuch: Dieser Code gilt nicht mehr."
			case 1:
				want = "Sie haben mit diesem Code noch 1 Versuch."
			default:
				want = "Sie haben mit diesem Code noch " + strconv.Itoa(left) + " Versuche."
			}
			if p.Status != http.StatusOK || !strings.Contains(p.Body, want) {
				t.Fatalf("wrong code %d: want %q in %s", i, want, p)
			}
			if i == max && strings.Contains(p.Body, "Wir haben einen Code") {
				t.Fatalf("a burned code is still called sent: %s", p)
			}
		}
		p := b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {returnTo}}, plugintest.RedirectURI)
		if p.URL.Path != "/login/otp" || !strings.Contains(p.Body, "Dieser Code gilt nicht mehr") {
			t.Fatalf("the right code after the burn: %s", p)
		}
	})
}
