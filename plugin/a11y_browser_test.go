package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/web"
)

// a11yPages is every page of the built-in UI, in each state a person meets
// it: how a fresh browser (its own cookies) gets there, and words the page
// must show in English and in German. Adding a page is adding a row.
var a11yPages = []a11yPage{
	{"login", func(r *a11yRun) { r.authorize(r.shop) },
		"Sign in to continue to Acme Shop", "Anmelden, um mit Acme Shop fortzufahren"},
	{"login_error", func(r *a11yRun) { r.authorize(r.shop); r.signIn(r.user.Email, "not-the-password") },
		"The email or password is not right.", "Die E-Mail-Adresse oder das Passwort stimmt nicht."},
	{"otp", func(r *a11yRun) { r.authorize(r.shop); r.signIn(r.user.Email, r.user.Password) },
		"We sent a code to", "Wir haben einen Code an"},
	{"otp_resent", func(r *a11yRun) {
		r.authorize(r.shop)
		r.signIn(r.user.Email, r.user.Password)
		r.click(`button.secondary`)
	},
		"A new code is on its way to", "Ein neuer Code ist unterwegs an"},
	{"otp_wrong_code", func(r *a11yRun) { r.toOTP(); r.enterCode(wrongCode(r.code(1))) },
		"You can try 4 more times with this code.", "Sie haben mit diesem Code noch 4 Versuche."},
	{"otp_burned", func(r *a11yRun) {
		r.toOTP()
		wrong := wrongCode(r.code(1))
		for range r.maxAttempts {
			r.enterCode(wrong)
		}
	}, "it was the last try", "das war der letzte Versuch"},
	{"otp_send_limited", func(r *a11yRun) {
		r.toOTP()
		for range r.maxSends { // the login sent one: the last click is refused
			r.click(`button.secondary`)
		}
	}, "so no new code was sent. You can ask for a new code at", "deshalb wurde kein neuer gesendet. Sie können um"},
	{"otp_with_authenticator", func(r *a11yRun) { r.withAuthenticator(); r.toOTP() },
		"Use your authenticator app", "Authenticator-App verwenden"},
	{"otp_authenticator_wrong_code", func(r *a11yRun) {
		k := r.withAuthenticator()
		r.toOTP()
		r.do("app code", chromedp.SetValue(chromedp.CSS("#authenticator-otp"), wrongCode(totpCodeAt(r.t, k, r.srv.Clock.Now()))))
		r.click(`form:has(#authenticator-otp) button[type="submit"]`)
	}, "That code from your authenticator app is not right", "Dieser Code aus Ihrer Authenticator-App stimmt nicht"},
	{"consent", func(r *a11yRun) { r.authorize(r.photos); r.signIn(r.user.Email, r.user.Password) },
		"Allow Acme Photos access?", "Acme Photos Zugriff erlauben?"},
	{"logged_in", func(r *a11yRun) { r.open("/login"); r.signIn(r.user.Email, r.user.Password) },
		"You are signed in", "Sie sind angemeldet"},
	{"login_continue_as", func(r *a11yRun) { r.signedIn(); r.open("/login") },
		"Continue as", "Weiter als"},
	{"logout_confirm", func(r *a11yRun) { r.signedIn(); r.open("/logout") },
		"Sign out?", "Abmelden?"},
	{"logged_out", func(r *a11yRun) { r.signedIn(); r.open("/logout"); r.click(`button[type="submit"]`) },
		"You are signed out", "Sie sind abgemeldet"},
	{"logged_out_already", func(r *a11yRun) { r.open("/logout") },
		"You are signed out", "Sie sind abgemeldet"},
	{"error_bad_redirect_uri", func(r *a11yRun) {
		r.openURL(r.authURL(r.shop, oauth2.SetAuthURLParam("redirect_uri", "https://evil.example.test/cb")))
	}, "This app's return address is not registered", "Die Rücksprungadresse dieser App ist nicht registriert"},
	{"federated_link", func(r *a11yRun) { r.toLinkConfirmation() },
		"Link your partner account?", "Ihr partner-Konto verknüpfen?"},
	{"federated_linked", func(r *a11yRun) {
		r.toLinkConfirmation()
		r.click(`button[type="submit"]`)
		up := r.up.NewUser(r.t)
		r.signIn(up.Email, up.Password) // at the upstream
	}, "Your partner account is now linked to this account.", "Ihr partner-Konto ist jetzt mit diesem Konto verknüpft."},
	{"federated_not_linked", func(r *a11yRun) {
		r.open("/login")
		r.click(`.partners a`)
		up := r.up.NewUser(r.t)
		r.signIn(up.Email, up.Password) // at the upstream
	}, "This partner account is not linked to an account here", "Dieses partner-Konto ist mit keinem Konto hier verknüpft"},
	{"settings_totp", func(r *a11yRun) { r.toSettings() },
		"You have not set up an authenticator app.", "Sie haben keine Authenticator-App eingerichtet."},
	{"settings_totp_enroll", func(r *a11yRun) { r.toSettings(); r.click(`form[action$="/settings/totp"] button`) },
		"Set up your authenticator app", "Ihre Authenticator-App einrichten"},
	{"settings_totp_wrong_code", func(r *a11yRun) {
		r.toSettings()
		r.click(`form[action$="/settings/totp"] button`)
		secret, err := chromedp.Run(r.ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
		if err != nil {
			r.fail("the key", err)
		}
		r.do("app code", chromedp.SetValue(chromedp.CSS("#totp-code"), wrongCode(appCode(r.t, strings.Join(strings.Fields(secret), ""), r.srv.Clock.Now()))))
		r.click(`form:has(#totp-code) button[type="submit"]`)
	}, "That code is not right. Check that the app shows the entry", "Dieser Code stimmt nicht. Prüfen Sie, ob die App"},
	{"settings_totp_enrolled", func(r *a11yRun) { r.withAuthenticator(); r.toSettings() },
		"Remove this authenticator app", "Diese Authenticator-App entfernen"},
	{"recover", func(r *a11yRun) { r.toRecovery() },
		"Enter the email address of your account.", "Geben Sie die E-Mail-Adresse Ihres Kontos ein."},
	{"recover_code", func(r *a11yRun) { r.toRecovery(); r.requestRecovery() },
		"a recovery code is on its way to it", "ist ein Wiederherstellungscode an sie unterwegs"},
	{"recover_code_wrong", func(r *a11yRun) { r.toRecovery(); r.requestRecovery(); r.enterCode(wrongCode(r.code(1))) },
		"more times with this code", "mit diesem Code noch"},
	{"recover_authenticator", func(r *a11yRun) {
		r.withAuthenticator()
		r.toRecovery()
		r.requestRecovery()
		r.enterCode(r.code(1))
	}, "A code from your mailbox alone cannot set a new password", "Ein Code aus Ihrem Postfach allein"},
	{"recover_password", func(r *a11yRun) { r.toRecovery(); r.requestRecovery(); r.enterCode(r.code(1)) },
		"Setting it ends every sign-in of your account.", "Damit enden alle Anmeldungen Ihres Kontos."},
	{"recover_password_mismatch", func(r *a11yRun) {
		r.toRecovery()
		r.requestRecovery()
		r.enterCode(r.code(1))
		r.newPassword("a new long password", "another long password")
	}, "The two passwords are not the same.", "Die beiden Passwörter stimmen nicht überein."},
	{"recovered_signin", func(r *a11yRun) {
		r.toRecovery()
		r.requestRecovery()
		r.enterCode(r.code(1))
		r.newPassword("a new long password", "a new long password")
	}, "Sign in again with your new password", "Mit dem neuen Passwort erneut anmelden"},
	{"recovered", func(r *a11yRun) {
		r.open("/login/recover")
		r.requestRecovery()
		r.enterCode(r.code(1))
		r.newPassword("a new long password", "a new long password")
	}, "Your new password is set", "Ihr neues Passwort ist festgelegt"},
}

type a11yPage struct {
	name   string
	reach  func(r *a11yRun)
	en, de string
}

// a11yViewports and a11yColorSchemes: every page is checked in each.
var a11yViewports = []struct {
	name          string
	width, height int64
	phone         bool
}{{"desktop", 1280, 800, false}, {"phone", 390, 844, true}}

var a11yColorSchemes = []string{"light", "dark"}

// a11yForcedStates are the states every link, button and input is put in
// (CSS.forcePseudoState) for axe's colour-contrast rule, on the desktop in
// English.
var a11yForcedStates = [][]string{{"hover"}, {"hover", "active"}, {"focus", "focus-visible"}}

// TestE2E_AccessibilityOfEveryPage renders every page of a11yPages in a real
// Chromium, in English and German (Accept-Language, and ui_locales on the
// authorize requests), on a desktop and a phone viewport, in light and dark
// mode; it runs axe-core in each and fails on any violation of impact
// serious or critical, and, on the desktop in English, axe's colour-contrast
// rule again with every control hovered, pressed and focused. It checks that the page
// is in the language asked for (<html lang> and its words) and that what it
// hides is hidden. Screenshots go to a11yArtifacts.
func TestE2E_AccessibilityOfEveryPage(t *testing.T) {
	axe := axeSource(t)
	browser := browserContext(t)
	shots := a11yArtifacts(t)

	smtpSrv := mailtest.StartServer(t)
	f := plugintest.StartFederation(t, "sqlite", "partner", true, func(c *plugin.Config) {
		smtpMail(smtpSrv)(c)
		c.OTP.MaxSendsPerHour = 3
		c.OTP.ResendInterval = 0
		c.UI.ProductName = "Example ID"
		c.UI.SupportURL = "https://help.example.test/"
	})
	srv := f.Down
	secondFactor := true
	shop := srv.NewClientWith(t, provider.NewClient{Name: "Acme Shop", ClientURI: "https://shop.example.test/", RequireSecondFactor: &secondFactor})
	photos := a11yConsentClient(t, srv)
	cfg := srv.Plugin.Provider.Config()

	// The two languages run side by side, each in its own tabs.
	for _, lang := range []string{"en", "de"} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			for _, p := range a11yPages {
				t.Run(p.name, func(t *testing.T) {
					tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
					defer cancel()
					if err := chromedp.Do(tab); err != nil { // opens the tab, with no timeout
						t.Fatalf("new tab: %v", err)
					}
					ctx, cancel := context.WithTimeout(tab, 2*time.Minute)
					defer cancel()
					r := &a11yRun{t: t, ctx: ctx, lang: lang, srv: srv, smtp: smtpSrv, shop: shop, photos: photos,
						user: srv.NewUser(t), up: f.Up, linkURL: srv.URL + "/federated-identities/partner/link",
						maxAttempts: cfg.OTP.MaxAttempts, maxSends: cfg.OTP.MaxSendsPerHour}
					acceptLanguage := map[string]string{"en": "en-US,en;q=0.9", "de": "de-DE,de;q=0.9"}[lang]
					r.do("Accept-Language", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
						if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
							return err
						}
						_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": acceptLanguage}})
						return err
					}))
					p.reach(r)
					r.inLanguage(map[string]string{"en": p.en, "de": p.de}[lang])
					// What the page hides stays hidden (CSS display rules once
					// showed the recovery's hidden username field).
					if shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
						`[...document.querySelectorAll("[hidden]")].filter(e => getComputedStyle(e).display !== "none").map(e => e.outerHTML)`)); err != nil || len(shown) > 0 {
						r.fail("hidden elements", fmt.Errorf("shown: %v (%v)", shown, err))
					}
					for _, vp := range a11yViewports {
						for _, scheme := range a11yColorSchemes {
							opts := []chromedp.EmulateViewportOption{}
							if vp.phone {
								opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
							}
							r.do("emulate "+vp.name+" "+scheme, chromedp.EmulateViewport(vp.width, vp.height, opts...), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
								_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
									Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
								})
								return err
							}))
							where := fmt.Sprintf("%s-%s-%s-%s", p.name, lang, vp.name, scheme)
							png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
							if err != nil {
								t.Fatalf("%s: screenshot: %v", where, err)
							}
							if err := os.WriteFile(filepath.Join(shots, where+".png"), png, 0o644); err != nil {
								t.Fatal(err)
							}
							r.axe(axe, where, "")
							if vp.phone || lang != "en" {
								continue
							}
							// Text contrast in the other states of every control
							// (the focus ring's contrast: web/contrast_test.go),
							// once per page: the colours do not change with the
							// language.
							const bg = `(() => { const b = document.querySelector("button:not(.secondary), a.button:not(.secondary)"); return b ? getComputedStyle(b).backgroundColor : "" })()`
							rest, err := chromedp.Run(ctx, chromedp.Evaluate[string](bg))
							if err != nil {
								r.fail("button colour", err)
							}
							for _, state := range a11yForcedStates {
								r.forceState(state)
								if now, err := chromedp.Run(ctx, chromedp.Evaluate[string](bg)); err != nil || (state[0] == "hover" && now == rest && rest != "") {
									r.fail("forced :"+state[0], fmt.Errorf("the primary button's background stayed %s (%v)", rest, err))
								}
								r.axe(axe, where+" "+strings.Join(state, "+"), "color-contrast")
							}
							r.forceState(nil)
						}
					}
				})
			}
		})
	}
}

// a11yRun is one page's fresh browser tab and the accounts it uses.
type a11yRun struct {
	t            *testing.T
	ctx          context.Context
	lang         string
	srv          *plugintest.Server
	smtp         *mailtest.Server
	shop, photos *plugintest.Client
	user         *plugintest.User   // at srv
	up           *plugintest.Server // the upstream
	linkURL      string
	maxAttempts  int
	maxSends     int
	axeInjected  bool
}

// do runs the actions, failing the test with the page's URL and body.
func (r *a11yRun) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	r.t.Helper()
	if err := chromedp.Do(r.ctx, actions...); err != nil {
		r.fail(what, err)
	}
}

func (r *a11yRun) fail(what string, err error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	r.t.Fatalf("%s: %v (at %s)\n%.1500s", what, err, loc, body)
}

// openURL loads u and waits for the page's <main>.
func (r *a11yRun) openURL(u string) {
	r.t.Helper()
	r.axeInjected = false
	r.do("open "+u, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("main")))
}

// open loads a path of the server.
func (r *a11yRun) open(path string) { r.t.Helper(); r.openURL(r.srv.URL + path) }

func (r *a11yRun) authURL(c *plugintest.Client, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("ui_locales", r.lang)}, extra...)
	return c.Conf.AuthCodeURL("state-"+plugintest.RandomString(12), opts...)
}

// authorize starts the code flow of c, which shows the login page.
func (r *a11yRun) authorize(c *plugintest.Client) {
	r.t.Helper()
	r.openURL(r.authURL(c))
}

// click clicks the element sel (a button or link) and waits for the page
// it leads to.
func (r *a11yRun) click(sel string) {
	r.t.Helper()
	r.axeInjected = false
	if _, err := chromedp.RunResponse(r.ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		r.fail("click "+sel, err)
	}
	r.do("page after "+sel, chromedp.WaitVisible(chromedp.CSS("main")))
}

// signIn fills the login form (otpstep's or the upstream's) and submits it.
func (r *a11yRun) signIn(email, password string) {
	r.t.Helper()
	r.do("login form", chromedp.SetValue(chromedp.CSS("#email"), email), chromedp.SetValue(chromedp.CSS("#password"), password))
	r.click(`form button[type="submit"]`)
}

// enterCode submits code on the OTP page.
func (r *a11yRun) enterCode(code string) {
	r.t.Helper()
	r.do("code", chromedp.SetValue(chromedp.CSS("#otp"), code))
	r.click(`form:has(#otp) button[type="submit"]`)
}

// toOTP signs in to the shop with the password: the OTP page.
func (r *a11yRun) toOTP() {
	r.t.Helper()
	r.authorize(r.shop)
	r.signIn(r.user.Email, r.user.Password)
}

// toRecovery follows "Forgot password?" from the shop's login page.
func (r *a11yRun) toRecovery() {
	r.t.Helper()
	r.authorize(r.shop)
	r.click(`a[href^="/login/recover"]`)
}

// requestRecovery asks for a recovery code for the run's user.
func (r *a11yRun) requestRecovery() {
	r.t.Helper()
	r.do("recovery form", chromedp.SetValue(chromedp.CSS("#email"), r.user.Email))
	r.click(`form button[type="submit"]`)
}

// newPassword fills the recovery's new password form and submits it.
func (r *a11yRun) newPassword(password, again string) {
	r.t.Helper()
	r.do("new password", chromedp.SetValue(chromedp.CSS("#password"), password), chromedp.SetValue(chromedp.CSS("#password_confirm"), again))
	r.click(`form button[type="submit"]`)
}

// withAuthenticator gives the run's user a confirmed authenticator TOTP.
func (r *a11yRun) withAuthenticator() *provider.NewTOTP {
	r.t.Helper()
	return enrollAuthenticator(r.t, r.srv, r.user.User)
}

// toSettings signs in with both factors on the way to /settings/totp.
func (r *a11yRun) toSettings() {
	r.t.Helper()
	r.open("/settings/totp")
	r.signIn(r.user.Email, r.user.Password)
	r.enterCode(r.code(1))
}

// signedIn gives the browser a login session: the password on /login.
func (r *a11yRun) signedIn() {
	r.t.Helper()
	r.open("/login")
	r.signIn(r.user.Email, r.user.Password)
}

// toLinkConfirmation signs in with both factors on the way to the link
// confirmation page of the upstream.
func (r *a11yRun) toLinkConfirmation() {
	r.t.Helper()
	r.openURL(r.linkURL)
	r.signIn(r.user.Email, r.user.Password)
	r.enterCode(r.code(1))
}

// code waits for the n-th mail to the run's user and returns its code.
func (r *a11yRun) code(n int) string {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []string
		for _, m := range r.smtp.Messages() {
			if len(m.To) == 1 && m.To[0] == r.user.Email {
				got = append(got, m.Text)
			}
		}
		if len(got) >= n {
			code := sixDigits.FindString(got[n-1])
			if code == "" {
				r.t.Fatalf("no code in mail %d to %s: %q", n, r.user.Email, got[n-1])
			}
			return code
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("mail %d to %s never came (%d came)", n, r.user.Email, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inLanguage checks that the page is in the run's language: <html lang>
// and words of that language's catalog.
func (r *a11yRun) inLanguage(want string) {
	r.t.Helper()
	got, err := chromedp.Run(r.ctx, chromedp.Evaluate[[]string](`[document.documentElement.lang, document.body.innerText]`))
	if err != nil {
		r.fail("language", err)
	}
	if got[0] != r.lang || !strings.Contains(got[1], want) {
		r.fail("language", fmt.Errorf(`<html lang=%q>, want %q and the words %q`, got[0], r.lang, want))
	}
}

// axeResult is what the suite reads of axe.run's violations.
type axeResult struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target         json.RawMessage `json:"target"`
		HTML           string          `json:"html"`
		FailureSummary string          `json:"failureSummary"`
	} `json:"nodes"`
}

// forceState puts every link, button and input in the pseudo-classes
// states (none: their own state again).
func (r *a11yRun) forceState(states []string) {
	r.t.Helper()
	nodes, err := chromedp.Run(r.ctx, chromedp.Nodes(chromedp.CSSAll("a, button, input:not([type=hidden])")))
	if err != nil {
		r.fail("controls", err)
	}
	if states == nil {
		states = []string{}
	}
	r.do("force :"+strings.Join(states, ":"), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, n := range nodes {
			if _, err := cdp.Call(ctx, tg, css.ForcePseudoState, css.ForcePseudoStateParams{NodeID: n.NodeID, ForcedPseudoClasses: states}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// axe runs axe-core on the page as it is now (only the rule only, when
// set) and fails on any serious or critical violation, naming each with
// its nodes; lesser ones are logged.
func (r *a11yRun) axe(source, where, only string) {
	r.t.Helper()
	if !r.axeInjected {
		if _, err := chromedp.Run(r.ctx, chromedp.Evaluate[chromedp.Void](source)); err != nil {
			r.fail("inject axe-core", err)
		}
		r.axeInjected = true
	}
	runOnly := ""
	if only != "" {
		runOnly = `, runOnly: {type: "rule", values: ["` + only + `"]}`
	}
	res, err := chromedp.Run(r.ctx, chromedp.Evaluate[struct {
		Violations []axeResult `json:"violations"`
		Passes     int         `json:"passes"`
	}](`axe.run(document, {resultTypes: ["violations"]`+runOnly+`}).then(r => ({violations: r.violations, passes: r.passes.length}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		r.fail("axe.run", err)
	}
	if res.Passes == 0 {
		r.fail("axe.run", fmt.Errorf("%s: axe-core checked nothing", where))
	}
	for _, v := range res.Violations {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: axe %s (%s): %s", where, v.ID, v.Impact, v.Help)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n  %s %s\n    %s", n.Target, n.HTML, strings.ReplaceAll(n.FailureSummary, "\n", "\n    "))
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			r.t.Error(b.String())
		} else {
			r.t.Log(b.String())
		}
	}
}

// axeSource reads axe-core from node_modules (make test runs npm ci from
// package-lock.json). Without it the test skips with a message, except under
// CI=true, where it fails.
func axeSource(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(p)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core missing (CI=true): %v (make test runs npm ci --no-audit --no-fund)", err)
		}
		t.Skipf("axe-core missing: %v: skipping the accessibility suite (npm ci --no-audit --no-fund, or make test)", err)
	}
	return string(b)
}

// a11yArtifacts is the folder the screenshots go to, emptied first:
// $OTPSTEP_ARTIFACTS/a11y, by default test-artifacts/a11y in the repository
// (ignored by git).
func a11yArtifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("OTPSTEP_ARTIFACTS")
	if base == "" {
		base = filepath.Join(repoRoot(t), "test-artifacts")
	}
	dir := filepath.Join(base, "a11y")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return dir
}

// repoRoot is the folder of go.mod above the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// a11yConsentClient registers "Acme Photos", which asks for consent and no
// second factor.
func a11yConsentClient(t *testing.T, srv *plugintest.Server) *plugintest.Client {
	t.Helper()
	off := false
	scopes := []string{"openid", "email", "offline_access"}
	c, secret, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
		Name: "Acme Photos", RedirectURIs: []string{plugintest.RedirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: scopes, RequireSecondFactor: &off,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &plugintest.Client{Client: c, Secret: secret, Conf: oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, RedirectURL: plugintest.RedirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + web.PathAuthorize, TokenURL: srv.URL + web.PathToken},
	}}
}
