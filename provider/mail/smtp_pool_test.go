package mail_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

// codesAt counts how often the server received each code's message.
func codesAt(t *testing.T, srv *mailtest.Server) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range srv.Messages() {
		got[strings.TrimPrefix(m.Subject, "code ")]++
	}
	return got
}

func codeMessage(i int) mail.Message {
	return mail.Message{To: fmt.Sprintf("user-%d@example.test", i), Subject: fmt.Sprintf("code %06d", i), Text: "body"}
}

func TestSMTP_SendsManyMessagesOverOneConnection(t *testing.T) {
	srv := mailtest.StartServer(t)
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone, MaxConnections: 1})
	const n = 50
	for i := range n {
		if err := m.Send(context.Background(), codeMessage(i)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if got := len(srv.Messages()); got != n {
		t.Fatalf("server received %d messages, want %d", got, n)
	}
	if c := srv.Connections(); c != 1 {
		t.Errorf("%d messages took %d connections, want 1", n, c)
	}
}

func TestSMTP_ParallelSendsUseAtMostMaxConnections(t *testing.T) {
	srv := mailtest.StartServer(t)
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone, MaxConnections: 3})
	const n = 120
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- m.Send(context.Background(), codeMessage(i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := codesAt(t, srv); len(got) != n {
		t.Fatalf("%d distinct messages received, want %d", len(got), n)
	}
	if c := srv.Connections(); c < 1 || c > 3 {
		t.Errorf("%d parallel sends opened %d connections, want 1..3", n, c)
	}
}

func TestSMTP_ServerDroppingTheConnectionLosesAndDuplicatesNothing(t *testing.T) {
	srv := mailtest.StartServer(t)
	srv.DropAfter(7) // every connection is cut after its 7th message
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone, MaxConnections: 2})
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- m.Send(context.Background(), codeMessage(i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v (a dropped idle connection must be replaced, not reported)", err)
		}
	}
	got := codesAt(t, srv)
	if len(got) != n {
		t.Errorf("%d distinct messages received, want %d", len(got), n)
	}
	for code, c := range got {
		if c != 1 {
			t.Errorf("%s received %d times", code, c)
		}
	}
	if c := srv.Connections(); c < n/7 {
		t.Errorf("%d connections for %d messages cut every 7: the drops were not exercised", c, n)
	}
}

func TestSMTP_StaleIdleConnectionIsReplaced(t *testing.T) {
	srv := mailtest.StartServer(t)
	m := newSMTP(t, mail.SMTPConfig{URL: srv.URL(), TLS: mail.TLSNone, MaxConnections: 1})
	if err := m.Send(context.Background(), codeMessage(1)); err != nil {
		t.Fatal(err)
	}
	// The server restarts: the idle connection is dead.
	srv.Down()
	srv.Up()
	if err := m.Send(context.Background(), codeMessage(2)); err != nil {
		t.Fatalf("Send after the server closed the idle connection: %v", err)
	}
	srv.WaitMessages(2, 5*time.Second)
	if c := srv.Connections(); c != 2 {
		t.Errorf("%d connections, want 2 (the first, then one after the restart)", c)
	}
}
