package plugin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// buildBinary compiles cmd/otpstep once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "otpstep-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "otpstep")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/otpstep").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess runs `otpstep serve` as its own OS process on dsn.
func startProcess(t *testing.T, bin, dsn string, env ...string) string {
	t.Helper()
	addr, admin := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"OTPSTEP_DATABASE_DSN="+dsn,
		"OTPSTEP_SERVER_LISTEN="+addr,
		"OTPSTEP_SERVER_ADMIN_LISTEN="+admin,
		"OTPSTEP_SERVER_PUBLIC_URL=http://"+addr,
		"OTPSTEP_SECRETS_SYSTEM="+strings.Repeat("test-secret-", 4),
		"OTPSTEP_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
	}
	t.Fatalf("process on %s did not become ready:\n%s", addr, logs.String())
	return ""
}

// Three otpstep processes on one PostgreSQL enforce the per-user failure
// limit together: of many parallel wrong codes for one user, spread over
// sessions and processes, no more than otp.max_failures_per_user are tried.
func TestMultiProcess_PerUserFailureLimitHoldsAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	dsn := storagetest.PostgresDSN(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	smtpSrv := mailtest.StartServer(t)
	ctx := context.Background()
	store, err := storage.Open(ctx, dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	limits := []string{"OTPSTEP_OTP_MAX_FAILURES_PER_USER=10", "OTPSTEP_OTP_MAX_SENDS_PER_HOUR=50", "OTPSTEP_OTP_MAX_ATTEMPTS=5",
		"OTPSTEP_MAIL_DRIVER=smtp", "OTPSTEP_MAIL_SMTP_URL=" + smtpSrv.URL(), "OTPSTEP_MAIL_TLS=none"}
	setup := plugintest.StartOn(t, store, func(c *plugin.Config) {
		c.OTP.MaxSendsPerHour = 50
		c.Mail.Driver = "smtp"
		c.Mail.SMTPURL = smtpSrv.URL()
		c.Mail.TLS = "none"
	})
	var urls []string
	for i := 0; i < 3; i++ {
		urls = append(urls, startProcess(t, bin, dsn, limits...))
	}
	api := newAPIClient(t, setup)
	client := setup.NewLoginUI(t, allUserScopes...)
	alice := setup.NewUser(t)
	type session struct{ tok, code string }
	var sessions []session
	for i := 0; i < 5; i++ { // 5 challenges × 5 attempts = 25 possible tries
		login := setup.LoginWithPassword(t, client, alice)
		r := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false)
		if r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		sessions = append(sessions, session{login.Token.AccessToken, r.json(t)["otp"].(string)})
	}
	var tried, limited, other atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := sessions[i%len(sessions)]
			body := `{"otp":"` + wrongCode(s.code) + `","types":["login"]}`
			req, _ := http.NewRequest(http.MethodPost, urls[i%3]+"/user/2024-3/user/otp/verify", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 404:
				tried.Add(1)
			case 429:
				limited.Add(1)
			default:
				other.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if tried.Load() != 10 || limited.Load() != 30 || other.Load() != 0 {
		t.Fatalf("tried=%d limited=%d other=%d, want 10/30/0", tried.Load(), limited.Load(), other.Load())
	}
}

// Three otpstep processes on one PostgreSQL enforce the per-account login
// limit together: of 30 parallel wrong passwords for one account spread over
// them, no more than login.max_failures_per_account (5) are checked (a 401
// comes only from a checked password), the rest answer 429 before the hash,
// and then so does the right password.
func TestMultiProcess_LoginFailureLimitHoldsAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	dsn := storagetest.PostgresDSN(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := storage.Open(ctx, dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	smtpSrv := mailtest.StartServer(t)
	mailEnv := []string{"OTPSTEP_MAIL_DRIVER=smtp", "OTPSTEP_MAIL_SMTP_URL=" + smtpSrv.URL(), "OTPSTEP_MAIL_TLS=none"}
	setup := plugintest.StartOn(t, store, nil)
	alice := setup.NewUser(t)
	const limit = 5 // login.max_failures_per_account's default
	// A login form of each process: its cookie and CSRF token, reused by
	// every POST sent to it.
	type form struct {
		url   string
		b     *plugintest.Browser
		token string
	}
	var forms []form
	for range 3 {
		u := startProcess(t, bin, dsn, mailEnv...)
		b := plugintest.NewBrowser(t)
		page := b.Follow(u+"/login", "")
		if page.Status != http.StatusOK || page.CSRFToken() == "" {
			t.Fatalf("login page of %s: %s", u, page)
		}
		forms = append(forms, form{u, b, page.CSRFToken()})
	}
	post := func(f form, password string) (*http.Response, error) {
		body := url.Values{"email": {alice.Email}, "password": {password}, "csrf_token": {f.token}}
		req, err := http.NewRequest(http.MethodPost, f.url+"/login", strings.NewReader(body.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", f.url)
		return f.b.Client.Do(req)
	}
	var checked, limited, other atomic.Int32
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(forms[i%3], "wrong password")
			if err != nil {
				other.Add(1)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				checked.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	if checked.Load() != limit || limited.Load() != 30-limit || other.Load() != 0 {
		t.Fatalf("checked=%d limited=%d other=%d, want %d/%d/0", checked.Load(), limited.Load(), other.Load(), limit, 30-limit)
	}
	for _, f := range forms {
		resp, err := post(f, alice.Password)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("the right password at %s after the burst: %d, want 429 with Retry-After", f.url, resp.StatusCode)
		}
	}
}
