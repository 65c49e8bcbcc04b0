package plugintest

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
)

// Mailbox is a Mailer that keeps every message in memory, for tests of the
// plugin's Mailer option.
type Mailbox struct {
	mu      sync.Mutex
	msgs    []mail.Message
	arrived chan struct{} // closed and replaced at every message
}

// NewMailbox returns an empty mailbox.
func NewMailbox() *Mailbox { return &Mailbox{arrived: make(chan struct{})} }

// Send keeps m.
func (b *Mailbox) Send(_ context.Context, m mail.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	close(b.arrived)
	b.arrived = make(chan struct{})
	return nil
}

// Messages is what arrived so far.
func (b *Mailbox) Messages() []mail.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]mail.Message(nil), b.msgs...)
}

// Wait waits up to timeout for the n-th message and returns it.
func (b *Mailbox) Wait(t testing.TB, n int, timeout time.Duration) mail.Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if len(b.msgs) >= n {
			m := b.msgs[n-1]
			b.mu.Unlock()
			return m
		}
		arrived := b.arrived
		b.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailbox: message %d did not arrive within %s (have %d)", n, timeout, len(b.Messages()))
		}
	}
}

var codeRe = regexp.MustCompile(`\b[0-9]{6,10}\b`)

// Code waits for the n-th message, checks it went to addr, and returns the
// one-time code in it.
func (b *Mailbox) Code(t testing.TB, n int, addr string) string {
	t.Helper()
	m := b.Wait(t, n, 20*time.Second)
	if m.To != addr {
		t.Fatalf("mail %d went to %s, want %s", n, m.To, addr)
	}
	code := codeRe.FindString(m.Text)
	if code == "" {
		t.Fatalf("no code in mail %d: %q", n, m.Text)
	}
	return code
}
