package mail_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// newSMTP builds a mailer for srv or fails the test.
func newSMTP(t *testing.T, cfg mail.SMTPConfig) *mail.SMTP {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "otpstep <no-reply@example.test>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Clock = func() time.Time { return testNow }
	m, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return m
}

// otpMessage renders the built-in OTP email for code.
func otpMessage(t *testing.T, to, code string) mail.Message {
	t.Helper()
	tpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	subject, text, html, err := tpl.OTP(mail.OTPData{Code: code, ExpiresAt: testNow.Add(10 * time.Minute), TTLMinutes: 10, Kind: "login"})
	if err != nil {
		t.Fatalf("OTP: %v", err)
	}
	return mail.Message{To: to, Subject: subject, Text: text, HTML: html}
}

// assertOTPDelivered checks the one message srv received.
func assertOTPDelivered(t *testing.T, srv *mailtest.Server, to, code string) mailtest.Message {
	t.Helper()
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "no-reply@example.test" {
		t.Errorf("MAIL FROM = %q, want no-reply@example.test", got.From)
	}
	if len(got.To) != 1 || got.To[0] != to {
		t.Errorf("RCPT TO = %q, want [%s]", got.To, to)
	}
	if h := got.Header.Get("To"); !strings.Contains(h, to) {
		t.Errorf("To header = %q, want it to name %s", h, to)
	}
	if h := got.Header.Get("From"); !strings.Contains(h, "no-reply@example.test") {
		t.Errorf("From header = %q", h)
	}
	if got.Subject != "Your otpstep sign-in code" {
		t.Errorf("Subject = %q, want %q", got.Subject, "Your otpstep sign-in code")
	}
	if strings.Contains(got.Subject, code) {
		t.Errorf("Subject %q contains the code", got.Subject)
	}
	if !strings.Contains(got.Text, code) {
		t.Errorf("text part does not contain the code %s:\n%s", code, got.Text)
	}
	if !strings.Contains(got.HTML, code) || !strings.Contains(got.HTML, "<html") {
		t.Errorf("HTML part missing or without the code %s:\n%s", code, got.HTML)
	}
	if d, err := got.Header.Date(); err != nil || !d.Equal(testNow) {
		t.Errorf("Date header = %v (%v), want %v", d, err, testNow)
	}
	return got
}

func TestSMTP_DeliversTextAndHTMLPlainRelay(t *testing.T) {
	srv := mailtest.StartServer(t)
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone})

	if err := m.Send(context.Background(), otpMessage(t, "alice@example.test", "482913")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	assertOTPDelivered(t, srv, "alice@example.test", "482913")
}

func TestSMTP_AuthPlainOverImplicitTLS(t *testing.T) {
	srv := mailtest.StartServer(t, mailtest.WithImplicitTLS(), mailtest.WithAuth("mailer", "s3cret-pass"))
	if !strings.HasPrefix(srv.URL(), "smtps://mailer:s3cret-pass@") {
		t.Fatalf("URL = %q", srv.URL())
	}
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSImplicit, TLSConfig: srv.ClientTLSConfig()})

	if err := m.Send(context.Background(), otpMessage(t, "bob@example.test", "105577")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := assertOTPDelivered(t, srv, "bob@example.test", "105577")
	if got.AuthUser != "mailer" {
		t.Errorf("authenticated as %q, want mailer", got.AuthUser)
	}
}

func TestSMTP_AuthPlainAfterStartTLS(t *testing.T) {
	srv := mailtest.StartServer(t, mailtest.WithStartTLS(), mailtest.WithAuth("mailer", "s3cret-pass"))
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSStartTLS, TLSConfig: srv.ClientTLSConfig()})

	if err := m.Send(context.Background(), otpMessage(t, "carol@example.test", "731004")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := assertOTPDelivered(t, srv, "carol@example.test", "731004")
	if got.AuthUser != "mailer" {
		t.Errorf("authenticated as %q, want mailer", got.AuthUser)
	}
}

func TestSMTP_StartTLSIsMandatory(t *testing.T) {
	srv := mailtest.StartServer(t) // offers no STARTTLS
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSStartTLS})

	err := m.Send(context.Background(), otpMessage(t, "dave@example.test", "111222"))
	if err == nil {
		t.Fatal("Send succeeded over a server without STARTTLS")
	}
	if mail.IsPermanent(err) {
		t.Errorf("missing STARTTLS is a server/configuration problem, want temporary: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages in plain text", n)
	}
}

func TestSMTP_AuthWithoutTLSOnLoopbackRelay(t *testing.T) {
	srv := mailtest.StartServer(t, mailtest.WithAuth("relay", "relay-pass"))
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone})

	if err := m.Send(context.Background(), otpMessage(t, "erin@example.test", "909090")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := assertOTPDelivered(t, srv, "erin@example.test", "909090"); got.AuthUser != "relay" {
		t.Errorf("authenticated as %q, want relay", got.AuthUser)
	}
}

func TestSMTP_WrongPasswordIsTemporaryAndNotInError(t *testing.T) {
	srv := mailtest.StartServer(t, mailtest.WithImplicitTLS(), mailtest.WithAuth("mailer", "right-pass"))
	u, _ := url.Parse(srv.URL())
	u.User = url.UserPassword("mailer", "wrong-pass-XYZ")
	m := newSMTP(t, mail.SMTPConfig{URL: u.String(), TLSConfig: srv.ClientTLSConfig()})

	err := m.Send(context.Background(), otpMessage(t, "frank@example.test", "123123"))
	if err == nil {
		t.Fatal("Send succeeded with a wrong password")
	}
	if mail.IsPermanent(err) {
		t.Errorf("an authentication failure is fixable configuration, want temporary: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pass-XYZ") {
		t.Errorf("error reveals the password: %v", err)
	}
	if !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("error %q does not name the server %s", err, srv.Addr())
	}
}

func TestSMTP_FailureClassification(t *testing.T) {
	tests := []struct {
		name          string
		code          int
		wantPermanent bool
	}{
		{name: "421 service not available is temporary", code: 421},
		{name: "451 local error is temporary", code: 451},
		{name: "550 mailbox unavailable is permanent", code: 550, wantPermanent: true},
		{name: "554 transaction failed is permanent", code: 554, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.StartServer(t)
			srv.SetFailing(tt.code)
			m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone})

			err := m.Send(context.Background(), otpMessage(t, "gina@example.test", "246810"))
			if err == nil {
				t.Fatalf("Send succeeded against a server answering %d", tt.code)
			}
			if got := mail.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent = %v, want %v (err: %v)", got, tt.wantPermanent, err)
			}
			if strings.Contains(err.Error(), "246810") {
				t.Errorf("error contains the code: %v", err)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server recorded %d messages", n)
			}
		})
	}
}

func TestSMTP_ServerDownIsTemporary(t *testing.T) {
	srv := mailtest.StartServer(t)
	srv.Down()
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone})

	err := m.Send(context.Background(), otpMessage(t, "hank@example.test", "135790"))
	if err == nil {
		t.Fatal("Send succeeded with the server down")
	}
	if mail.IsPermanent(err) {
		t.Errorf("connection refused is temporary: %v", err)
	}

	srv.Up()
	if err := m.Send(context.Background(), otpMessage(t, "hank@example.test", "135790")); err != nil {
		t.Fatalf("Send after Up: %v", err)
	}
	assertOTPDelivered(t, srv, "hank@example.test", "135790")
}

func TestSMTP_SilentServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() }) // never greet
		}
	}()
	m := newSMTP(t, mail.SMTPConfig{URL: "smtp://" + l.Addr().String(), TLS: mail.TLSNone, Timeout: 200 * time.Millisecond})

	start := time.Now()
	err = m.Send(context.Background(), otpMessage(t, "ivy@example.test", "112233"))
	if err == nil {
		t.Fatal("Send succeeded against a silent server")
	}
	if mail.IsPermanent(err) {
		t.Errorf("a timeout is temporary: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v with a 200ms timeout", d)
	}
}

func TestSMTP_MalformedMessageIsPermanent(t *testing.T) {
	srv := mailtest.StartServer(t)
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone})
	tests := []struct {
		name string
		msg  mail.Message
	}{
		{name: "recipient is not an address", msg: mail.Message{To: "not an address", Subject: "s", Text: "t"}},
		{name: "subject with a line break", msg: mail.Message{To: "a@example.test", Subject: "s\r\nBcc: x@example.test", Text: "t"}},
		{name: "no body", msg: mail.Message{To: "a@example.test", Subject: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Send(context.Background(), tt.msg)
			if !mail.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = false, want true", err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server recorded %d messages", n)
	}
}

func TestNewSMTP_RefusesBadConfigWithoutLeakingPassword(t *testing.T) {
	const pw = "hunter2-secret"
	tests := []struct {
		name string
		cfg  mail.SMTPConfig
		want string
	}{
		{name: "unparsable URL", cfg: mail.SMTPConfig{URL: "smtp://u:" + pw + "@host:port:x\x7f", From: "a@b.test"}, want: "not a valid URL"},
		{name: "wrong scheme", cfg: mail.SMTPConfig{URL: "http://u:" + pw + "@mx.example.test", From: "a@b.test"}, want: "scheme"},
		{name: "no host", cfg: mail.SMTPConfig{URL: "smtp://", From: "a@b.test"}, want: "no host"},
		{name: "unknown TLS mode", cfg: mail.SMTPConfig{URL: "smtp://mx.example.test", TLS: "ssl", From: "a@b.test"}, want: "tls mode"},
		{name: "smtps with starttls", cfg: mail.SMTPConfig{URL: "smtps://mx.example.test", TLS: "starttls", From: "a@b.test"}, want: "implicit TLS"},
		{name: "bad port", cfg: mail.SMTPConfig{URL: "smtp://mx.example.test:70000", From: "a@b.test"}, want: "port"},
		{name: "password in plain text to a remote host", cfg: mail.SMTPConfig{URL: "smtp://u:" + pw + "@mx.example.test", TLS: "none", From: "a@b.test"}, want: "plain text"},
		{name: "credentials without user", cfg: mail.SMTPConfig{URL: "smtp://:" + pw + "@mx.example.test", From: "a@b.test"}, want: "no user name"},
		{name: "bad from", cfg: mail.SMTPConfig{URL: "smtp://u:" + pw + "@mx.example.test", From: "nobody"}, want: "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mail.NewSMTP(tt.cfg)
			if err == nil {
				t.Fatal("NewSMTP accepted the configuration")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestNewSMTP_AcceptsLoopbackPlainTextAuth(t *testing.T) {
	for _, host := range []string{"localhost", "127.0.0.1", "[::1]", "127.0.0.53"} {
		if _, err := mail.NewSMTP(mail.SMTPConfig{URL: "smtp://u:p@" + host + ":25", TLS: "none", From: "a@b.test"}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestPermanent(t *testing.T) {
	if mail.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("rejected")
	err := mail.Permanent(base)
	if !mail.IsPermanent(err) || !errors.Is(err, base) || err.Error() != "rejected" {
		t.Errorf("Permanent(base) = %v: permanent %v, is base %v", err, mail.IsPermanent(err), errors.Is(err, base))
	}
	if wrapped := errors.Join(errors.New("outer"), err); !mail.IsPermanent(wrapped) {
		t.Error("IsPermanent does not see through wrapping")
	}
	if mail.IsPermanent(base) || mail.IsPermanent(nil) {
		t.Error("IsPermanent true for an unmarked error")
	}
}

// FailureClass sorts real SMTP failures as the delivery-failure metric
// counts them: no connection is dial, refused credentials auth, a refusal
// inside the mail transaction (temporary or permanent) rejected.
func TestSMTP_FailureClassOfRealFailures(t *testing.T) {
	down := mailtest.StartServer(t)
	down.Down()
	auth := mailtest.StartServer(t, mailtest.WithAuth("mailer", "right-pass"))
	wrong, _ := url.Parse(auth.URL())
	wrong.User = url.UserPassword("mailer", "wrong-pass")
	tempFail, permFail := mailtest.StartServer(t), mailtest.StartServer(t)
	tempFail.SetFailing(451)
	permFail.SetFailing(550)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"server down", down.URL(), mail.FailureDial},
		{"wrong password", wrong.String(), mail.FailureAuth},
		{"451 to RCPT TO", tempFail.URL(), mail.FailureRejected},
		{"550 to RCPT TO", permFail.URL(), mail.FailureRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newSMTP(t, mail.SMTPConfig{URL: tc.url, TLS: mail.TLSNone})
			err := m.Send(context.Background(), otpMessage(t, "ivy@example.test", "112233"))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := mail.FailureClass(err); got != tc.want {
				t.Errorf("FailureClass = %q, want %q (err: %v)", got, tc.want, err)
			}
		})
	}
	if got := mail.FailureClass(errors.New("something else")); got != mail.FailureOther {
		t.Errorf("FailureClass of a plain error = %q, want other", got)
	}
}
