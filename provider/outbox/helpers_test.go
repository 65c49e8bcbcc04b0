package outbox_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/provider/outbox"
)

// testSealer is AES-256-GCM with a random key, standing in for
// provider.Sealer (which imports this package's importer).
type testSealer struct{ aead cipher.AEAD }

func newTestSealer(t *testing.T) *testSealer {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &testSealer{aead: aead}
}

func (s *testSealer) Seal(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (s *testSealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("testSealer: too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// syncBuffer is a bytes.Buffer safe for a logger on other goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is one store, one sealer, one SMTP peer and a clock.
type fixture struct {
	t      *testing.T
	clock  *fakeClock
	store  *memStore
	sealer *testSealer
	smtp   *mailtest.Server
	mailer *mail.SMTP
	logs   *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := newFakeClock()
	srv := mailtest.StartServer(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone, From: "no-reply@example.test", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, clock: clock, store: newMemStore(clock.Now), sealer: newTestSealer(t), smtp: srv, mailer: m, logs: &syncBuffer{}}
}

// dispatcher returns a Dispatcher over the fixture with opts' zero fields set
// to the fixture's clock and logger.
func (f *fixture) dispatcher(opts outbox.Options) *outbox.Dispatcher {
	if opts.Clock == nil {
		opts.Clock = f.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return outbox.NewDispatcher(f.store, f.sealer, f.mailer, opts)
}

// enqueue seals an OTP email with code for row id and stores it.
func (f *fixture) enqueue(id, code string) {
	f.t.Helper()
	sealed, err := outbox.SealPayload(f.sealer, id, outbox.Payload{
		To:      "user-" + id + "@example.test",
		Subject: "Your otpstep sign-in code",
		Text:    "Your code is " + code,
		HTML:    "<p>Your code is <b>" + code + "</b></p>",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.store.put(outbox.Row{ID: id, Sealed: sealed})
}

// codesSent counts how often each code reached the SMTP server.
func (f *fixture) codesSent() map[string]int {
	got := map[string]int{}
	for _, m := range f.smtp.Messages() {
		code, ok := strings.CutPrefix(strings.TrimSpace(m.Text), "Your code is ")
		if !ok {
			f.t.Errorf("unexpected text part %q", m.Text)
		}
		got[code]++
	}
	return got
}

func (f *fixture) assertLogsHide(secrets ...string) {
	f.t.Helper()
	logs := f.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			f.t.Errorf("logs reveal %q:\n%s", s, logs)
		}
	}
}

func id(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
