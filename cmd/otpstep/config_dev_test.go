package main

import (
	"io"
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
