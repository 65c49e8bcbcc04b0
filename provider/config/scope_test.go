package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/provider/config"
)

// A scope validates only the keys its command uses: a migration needs no
// mail settings, a management command no listener, the server everything.
func TestValidateScope_OnlyTheKeysOfTheScope(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Listen = "no port"
	cfg.Mail.Driver = "bogus"
	cfg.Mail.SMTPURL = ""
	cfg.Secrets.System = ""
	keyOf := func(err error) string {
		var ke *config.KeyError
		if !errors.As(err, &ke) {
			return ""
		}
		return ke.Key
	}
	if err := cfg.ValidateWith(config.ValidateOptions{Scope: config.ScopeDatabase}); err != nil {
		t.Fatalf("database scope: %v", err)
	}
	if err := cfg.ValidateWith(config.ValidateOptions{Scope: config.ScopeManage}); keyOf(err) != "secrets.system" || strings.Contains(err.Error(), "mail.") || strings.Contains(err.Error(), "server.") {
		t.Fatalf("manage scope: %v, want only secrets.system", err)
	}
	cfg.Secrets.System = strings.Repeat("s", config.MinSecretLength)
	if err := cfg.ValidateWith(config.ValidateOptions{Scope: config.ScopeManage}); err != nil {
		t.Fatalf("manage scope: %v", err)
	}
	for _, scope := range []config.Scope{config.ScopeServe, config.ScopeManage, config.ScopeDatabase} {
		bad := cfg
		bad.Database.DSN = ""
		// database.dsn is found even though server.listen, checked first,
		// is wrong too.
		if err := bad.ValidateWith(config.ValidateOptions{Scope: scope}); !strings.Contains(err.Error(), "database.dsn") {
			t.Fatalf("scope %v without a DSN: %v", scope, err)
		}
	}
	err := cfg.ValidateWith(config.ValidateOptions{Scope: config.ScopeServe})
	if err == nil || !strings.Contains(err.Error(), "server.listen") || !strings.Contains(err.Error(), "mail.driver") {
		t.Fatalf("serve scope: %v, want server.listen and mail.driver", err)
	}
	if err := cfg.Validate(false); err == nil || err.Error() != cfg.ValidateWith(config.ValidateOptions{Scope: config.ScopeServe}).Error() {
		t.Fatalf("Validate is the serve scope: %v", err)
	}
}
