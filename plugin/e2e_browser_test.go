package plugin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

// chromium finds Debian's chromium; without it the real-browser tests skip
// with a message, except under CI=true, where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (CI=true): .ci/run installs it with apt-get")
	}
	t.Skip("chromium not found: skipping the real-browser test (apt-get install chromium, or make e2e)")
	return ""
}

func browserContext(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844), // a phone
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// A real browser logs in with the password, reads the code from the real
// SMTP peer, types it on /login/otp and lands on the relying party with a code.
func TestE2E_BrowserLoginWithSecondFactor(t *testing.T) {
	ctx := browserContext(t)
	srv, smtpSrv := startWithSMTP(t, "sqlite", nil)
	// A live relying party, so the browser really arrives there.
	got := make(chan url.Values, 1)
	rpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		_, _ = w.Write([]byte("relying party"))
	}))
	t.Cleanup(rpSrv.Close)
	c, secret, err := srv.Plugin.Provider.CreateClient(context.Background(), provider.NewClient{
		RedirectURIs: []string{rpSrv.URL + "/callback"}, SkipConsent: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &plugintest.Client{Client: c, Secret: secret, Conf: oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, RedirectURL: rpSrv.URL + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/auth", TokenURL: srv.URL + "/oauth2/token"},
		Scopes:   []string{"openid"},
	}}
	alice := srv.NewUser(t)
	authURL := client.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	shots := os.Getenv("OTPSTEP_SCREENSHOTS") // a folder to keep screenshots in
	step, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			lctx, c := context.WithTimeout(ctx, 5*time.Second)
			defer c()
			loc, _ := chromedp.Run(lctx, chromedp.Location())
			body, _ := chromedp.Run(lctx, chromedp.OuterHTML(`body`))
			if shots != "" {
				png, _ := chromedp.Run(lctx, chromedp.CaptureScreenshot())
				_ = os.WriteFile(filepath.Join(shots, "failure.png"), png, 0o644)
			}
			t.Fatalf("%s: %v (at %s)\n%.1500s", what, err, loc, body)
		}
	}
	must("login page", chromedp.Do(step, chromedp.Navigate(authURL), chromedp.WaitVisible(`input[name="email"]`)))
	loginPNG, err := chromedp.Run(step, chromedp.CaptureScreenshot())
	must("screenshot", err)
	must("password", chromedp.Do(step,
		chromedp.SendKeys(`input[name="email"]`, alice.Email),
		chromedp.SendKeys(`input[name="password"]`, alice.Password),
		chromedp.Submit(`input[name="password"]`),
		chromedp.WaitVisible(`input[name="otp"]`),
	))
	otpHTML, err := chromedp.Run(step, chromedp.OuterHTML(`main`))
	must("otp page", err)
	otpPNG, err := chromedp.Run(step, chromedp.CaptureScreenshot())
	must("screenshot", err)
	if shots != "" {
		_ = os.WriteFile(filepath.Join(shots, "login.png"), loginPNG, 0o644)
		_ = os.WriteFile(filepath.Join(shots, "login_otp.png"), otpPNG, 0o644)
	}
	if !strings.Contains(otpHTML, `autocomplete="one-time-code"`) {
		t.Fatalf("OTP page: %s", otpHTML)
	}
	code := codeFrom(t, smtpSrv, 1, alice.Email)
	must("code", chromedp.Do(step,
		chromedp.SendKeys(`input[name="otp"]`, code),
		chromedp.Submit(`input[name="otp"]`),
	))
	select {
	case q := <-got:
		if q.Get("code") == "" || q.Get("state") != "state-123456789" {
			t.Fatalf("relying party got %v", q)
		}
	case <-time.After(20 * time.Second):
		loc, _ := chromedp.Run(step, chromedp.Location())
		t.Fatalf("the browser never reached the relying party (at %s)", loc)
	}
}
