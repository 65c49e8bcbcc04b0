package mail

import "testing"

func TestNewSMTP_ModeAndPortDefaults(t *testing.T) {
	tests := []struct {
		url, tls string
		wantMode string
		wantPort int
	}{
		{url: "smtp://mx.example.test", wantMode: TLSStartTLS, wantPort: 587},
		{url: "smtps://mx.example.test", wantMode: TLSImplicit, wantPort: 465},
		{url: "smtp://mx.example.test", tls: "tls", wantMode: TLSImplicit, wantPort: 465},
		{url: "smtp://mx.example.test", tls: "NONE", wantMode: TLSNone, wantPort: 25},
		{url: "smtp://mx.example.test:2525", tls: "starttls", wantMode: TLSStartTLS, wantPort: 2525},
	}
	for _, tt := range tests {
		s, err := NewSMTP(SMTPConfig{URL: tt.url, TLS: tt.tls, From: "a@b.test"})
		if err != nil {
			t.Errorf("%s tls=%q: %v", tt.url, tt.tls, err)
			continue
		}
		if s.mode != tt.wantMode || s.port != tt.wantPort {
			t.Errorf("%s tls=%q: mode %q port %d, want %q %d", tt.url, tt.tls, s.mode, s.port, tt.wantMode, tt.wantPort)
		}
		if s.tlsConfig.ServerName != "mx.example.test" || s.timeout != DefaultSMTPTimeout {
			t.Errorf("%s: server name %q timeout %v", tt.url, s.tlsConfig.ServerName, s.timeout)
		}
	}
}
