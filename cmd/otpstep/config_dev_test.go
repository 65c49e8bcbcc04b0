package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
)

// --dev has no shutdown grace unless one is set; without --dev it is 5s.
func TestLoadConfig_DevHasNoShutdownGraceUnlessSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  bool
		env  map[string]string
		want time.Duration
	}{
		{"serve", false, nil, 5 * time.Second},
		{"serve --dev", true, nil, 0},
		{"serve --dev with the variable", true, map[string]string{"OTPSTEP_SERVER_SHUTDOWN_GRACE": "3s"}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"OTPSTEP_SECRETS_SYSTEM": "0123456789abcdef0123456789abcdef",
				"OTPSTEP_MAIL_DRIVER":    "smtp",
				"OTPSTEP_MAIL_SMTP_URL":  "smtp://127.0.0.1:2525",
			}
			for k, v := range tc.env {
				env[k] = v
			}
			a := &app{out: io.Discard, errOut: io.Discard, dev: tc.dev, lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
			cfg, err := a.loadConfig(plugin.ScopeServe)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.ShutdownGrace != tc.want {
				t.Fatalf("server.shutdown_grace %s, want %s", cfg.Server.ShutdownGrace, tc.want)
			}
		})
	}
}

// An operator sees every mistake at once: a value otpstep cannot read and
// values it refuses, one line each, naming the key and its variable.
func TestLoadConfig_ReportsWhatItCannotReadAndWhatItRefusesTogether(t *testing.T) {
	env := map[string]string{
		"OTPSTEP_SECRETS_SYSTEM": "short",
		"OTPSTEP_OTP_TTL":        "forever",
		"OTPSTEP_MAIL_DRIVER":    "smtp",
		"OTPSTEP_MAIL_SMTP_URL":  "http://mail.example.com",
	}
	a := &app{out: io.Discard, errOut: io.Discard, lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	_, err := a.loadConfig(plugin.ScopeServe)
	if err == nil {
		t.Fatal("loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	// what it cannot read first, then what it refuses
	want := []string{"OTPSTEP_OTP_TTL", "OTPSTEP_SECRETS_SYSTEM", "OTPSTEP_MAIL_SMTP_URL"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %v", len(lines), len(want), err)
	}
	for i, v := range want {
		if !strings.Contains(lines[i], v) {
			t.Errorf("line %d %q does not name %s", i, lines[i], v)
		}
	}
}
