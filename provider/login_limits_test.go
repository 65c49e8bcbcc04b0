package provider_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/web/openapitest"
)

// burst sends n requests at once and counts their answers by status. send
// makes request i; it must not stop the test (it runs off the test goroutine).
func burst(t *testing.T, n int, send func(i int) (*http.Response, error)) map[int]int {
	t.Helper()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
		start    = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := send(i)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Errorf("request %d: 429 without Retry-After", i)
			}
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

// loginPage is a browser at /login: its client (cookie jar) and the form's
// CSRF token, which every POST of a burst reuses.
type loginPage struct {
	srv  *plugintest.Server
	b    *plugintest.Browser
	page *plugintest.Page
}

func openLoginPage(t *testing.T, srv *plugintest.Server) *loginPage {
	t.Helper()
	b := plugintest.NewBrowser(t)
	page := b.Follow(srv.URL+"/login", "")
	if page.Status != http.StatusOK || page.CSRFToken() == "" {
		t.Fatalf("login page: %s", page)
	}
	return &loginPage{srv: srv, b: b, page: page}
}

// post submits the login form; safe off the test goroutine.
func (l *loginPage) post(email, password string) (*http.Response, error) {
	form := url.Values{"email": {email}, "password": {password}, "csrf_token": {l.page.CSRFToken()}}
	req, err := http.NewRequest(http.MethodPost, l.srv.URL+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", l.srv.URL)
	req.Header.Set("Accept", "text/html")
	// 50 argon2id hashes queue behind the hash slots; under -race on a busy
	// 2-core machine that outlasts the browser's 30s timeout.
	c := *l.b.Client
	c.Timeout = 3 * time.Minute
	return c.Do(req)
}

// Of 30 parallel wrong passwords for one account, only
// login.max_failures_per_account reach the hash: each reserves its failure
// before the check. The right password afterwards is refused too.
func TestAuthenticate_BurstOnOneAccountChecksNoMoreThanTheLimit(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			checks := provider.CountPasswordChecks(srv.Plugin.Provider)
			alice := srv.NewUser(t)
			login := openLoginPage(t, srv)
			limit := srv.Plugin.Provider.Config().Login.MaxFailuresPerAccount
			got := burst(t, 30, func(int) (*http.Response, error) { return login.post(alice.Email, "wrong password") })
			if got[http.StatusUnauthorized] != limit || got[http.StatusTooManyRequests] != 30-limit || checks() != int64(limit) {
				t.Fatalf("30 wrong passwords: statuses %v, %d checked; want %d checked (401), the rest 429", got, checks(), limit)
			}
			resp, err := login.post(alice.Email, alice.Password)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || checks() != int64(limit) {
				t.Fatalf("the right password after the burst: %d (Retry-After %q), %d checked; want 429 unchecked",
					resp.StatusCode, resp.Header.Get("Retry-After"), checks())
			}
		})
	}
}

// Of 70 parallel wrong passwords from one IP, each for another account, only
// login.max_failures_per_ip reach the hash.
func TestAuthenticate_BurstFromOneIPChecksNoMoreThanTheLimit(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, nil)
			checks := provider.CountPasswordChecks(srv.Plugin.Provider)
			login := openLoginPage(t, srv)
			limit := srv.Plugin.Provider.Config().Login.MaxFailuresPerIP
			got := burst(t, 70, func(i int) (*http.Response, error) {
				return login.post("user"+strings.Repeat("x", i)+"@example.com", "wrong password")
			})
			if got[http.StatusUnauthorized] != limit || got[http.StatusTooManyRequests] != 70-limit || checks() != int64(limit) {
				t.Fatalf("70 wrong passwords: statuses %v, %d checked; want %d checked (401), the rest 429", got, checks(), limit)
			}
		})
	}
}

// POST {prefix}/user/otp checks the password through the same reservation:
// per account, then per IP.
func TestCreateOTP_PasswordBurstChecksNoMoreThanTheLimits(t *testing.T) {
	cases := []struct {
		name   string
		config func(*plugin.Config)
		limit  func(plugin.Config) int
	}{
		{"account", nil, func(c plugin.Config) int { return c.Login.MaxFailuresPerAccount }},
		{"ip", func(c *plugin.Config) { c.Login.MaxFailuresPerAccount, c.Login.MaxFailuresPerIP = 100, 10 },
			func(c plugin.Config) int { return c.Login.MaxFailuresPerIP }},
	}
	for _, dialect := range plugintest.Dialects {
		for _, tc := range cases {
			t.Run(dialect+"/"+tc.name, func(t *testing.T) {
				srv := plugintest.Start(t, dialect, tc.config)
				client := srv.NewClient(t, false, "user:otp:create")
				alice := srv.NewUser(t)
				token := srv.LoginWithPassword(t, client, alice).Token.AccessToken
				checks := provider.CountPasswordChecks(srv.Plugin.Provider)
				createOTP := func(password string) (*http.Response, error) {
					req, err := http.NewRequest(http.MethodPost, srv.URL+openapitest.DefaultPrefix+"/user/otp",
						strings.NewReader(`{"password":"`+password+`"}`))
					if err != nil {
						return nil, err
					}
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					return http.DefaultClient.Do(req)
				}
				limit := tc.limit(srv.Plugin.Provider.Config())
				got := burst(t, 30, func(int) (*http.Response, error) { return createOTP("wrong password") })
				if got[http.StatusNotFound] != limit || got[http.StatusTooManyRequests] != 30-limit || checks() != int64(limit) {
					t.Fatalf("30 wrong passwords: statuses %v, %d checked; want %d checked (404), the rest 429", got, checks(), limit)
				}
				resp, err := createOTP(alice.Password)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || checks() != int64(limit) {
					t.Fatalf("the right password after the burst: %d, %d checked; want 429 unchecked", resp.StatusCode, checks())
				}
			})
		}
	}
}

// A right password gives its reservation back: successes never use up the
// IP's failures, and they reset the account's, as before the reservations.
func TestAuthenticate_RightPasswordGivesItsReservationBack(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.Login.MaxFailuresPerAccount, c.Login.MaxFailuresPerIP = 2, 2 })
			p := srv.Plugin.Provider
			alice := srv.NewUser(t)
			const ip = "192.0.2.7"
			peek := func(key string) int {
				t.Helper()
				n, _, err := srv.Store.PeekRateCounter(t.Context(), key, p.Config().Login.FailureWindow)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if _, err := p.Authenticate(t.Context(), alice.Email, "wrong password", ip); !errors.Is(err, provider.ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
			for i := range 3 {
				if _, err := p.Authenticate(t.Context(), alice.Email, alice.Password, ip); err != nil {
					t.Fatalf("right password %d: %v", i+1, err)
				}
			}
			if a, n := peek("login:account:"+alice.Email), peek("login:ip:"+ip); a != 0 || n != 1 {
				t.Fatalf("after 1 failure and 3 successes: account %d, ip %d; want 0 (reset) and 1", a, n)
			}
			if _, err := p.Authenticate(t.Context(), "nobody@example.com", "wrong password", ip); !errors.Is(err, provider.ErrInvalidCredentials) {
				t.Fatalf("unknown email: %v", err)
			}
			var tooMany *provider.TooManyAttemptsError
			if _, err := p.Authenticate(t.Context(), alice.Email, alice.Password, ip); !errors.As(err, &tooMany) ||
				tooMany.Limit != "login.max_failures_per_ip" || tooMany.RetryAfter <= 0 {
				t.Fatalf("the IP's third failure slot: %v, want login.max_failures_per_ip", err)
			}
		})
	}
}
