package main

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// testClock is a settable clock for the plugins the test opens.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestCLI_AuthenticatorTOTPSurvivesKeysRotate: an authenticator enrolled
// before `otpstep keys rotate` still verifies after it, from a process
// started after the rotation: TOTP secrets are sealed under their own
// purpose of secrets.system (provider.SealPurposeTOTP), not with a signing
// key. secrets.system itself has no previous value in the configuration:
// under a changed one the signing keys do not open and otpstep does not
// start (and a TOTP would match nothing, as README says). Both databases.
func TestCLI_AuthenticatorTOTPSurvivesKeysRotate(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			c := newCLI(t)
			if dialect == "postgres" {
				c.env["OTPSTEP_DATABASE_DSN"] = storagetest.PostgresDSN(t)
			}
			var created map[string]any
			c.mustJSON(&created, "users", "create", "--email", "rotate@example.com", "--password", "long enough pw")
			ctx := t.Context()
			clock := &testClock{now: time.Now()}
			open := func(secret string) *plugin.Plugin {
				t.Helper()
				cfg := plugin.DefaultConfig()
				cfg.Database.DSN = c.env["OTPSTEP_DATABASE_DSN"]
				cfg.Database.MigrateOnStart = false
				cfg.Secrets.System = secret
				cfg.Mail.Driver = "log"
				p, err := plugin.New(ctx, plugin.Options{Config: cfg, Dev: true, Scope: plugin.ScopeManage, Clock: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				return p
			}
			secret := c.env["OTPSTEP_SECRETS_SYSTEM"]
			before := open(secret)
			user, err := before.Store().GetUser(ctx, created["id"].(string))
			if err != nil {
				t.Fatal(err)
			}
			k, err := before.Provider.BeginAuthenticatorTOTP(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			code := func() string {
				t.Helper()
				s, err := totp.GenerateCodeCustom(k.Secret, clock.Now(), totp.ValidateOpts{Period: uint(k.Period), Digits: otp.Digits(k.Digits), Algorithm: otp.AlgorithmSHA1})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			if err := before.Provider.ConfirmAuthenticatorTOTP(ctx, user, k.ID, code()); err != nil {
				t.Fatal(err)
			}
			_ = before.Close()

			kidsBefore, _ := c.run("keys", "list")
			if out, err := c.run("keys", "rotate"); err != nil || !strings.Contains(out, "new signing key") {
				t.Fatalf("keys rotate: %q %v", out, err)
			}
			if kidsAfter, _ := c.run("keys", "list"); strings.Count(kidsAfter, `"kid"`) <= strings.Count(kidsBefore, `"kid"`) {
				t.Fatalf("keys rotate added no key:\n%s\n%s", kidsBefore, kidsAfter)
			}

			clock.Advance(provider.TOTPPeriod * time.Second) // the first code's step is used
			after := open(secret)
			if kind, err := after.Provider.VerifyOTP(ctx, []string{provider.OTPKindTOTP}, user, "", code()); err != nil || kind != provider.OTPKindTOTP {
				t.Fatalf("the authenticator after keys rotate: %q %v", kind, err)
			}

			// There is no secrets.system rotation to survive: under another
			// value the signing keys do not open either, and otpstep refuses
			// to start rather than run with secrets it cannot read.
			cfg := plugin.DefaultConfig()
			cfg.Database.DSN, cfg.Database.MigrateOnStart = c.env["OTPSTEP_DATABASE_DSN"], false
			cfg.Secrets.System, cfg.Mail.Driver = strings.Repeat("another-secret-", 3), "log"
			if p, err := plugin.New(ctx, plugin.Options{Config: cfg, Dev: true, Scope: plugin.ScopeManage, Clock: clock.Now}); err == nil || !errors.Is(err, provider.ErrSealedDataInvalid) {
				if p != nil {
					_ = p.Close()
				}
				t.Fatalf("another secrets.system: %v, want the signing keys refused", err)
			}
		})
	}
}
