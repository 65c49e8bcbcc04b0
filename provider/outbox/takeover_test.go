package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// takeoverBound is how soon after an instance dies its claimed rows must be
// delivered by another. With the one-minute lease of before, they waited a
// minute (their codes live five).
const takeoverBound = 30 * time.Second

// instances opens two Stores on one database of dialect, as two instances
// would (each with its own pool), migrated.
func instances(t *testing.T, dialect string) (a, b *storage.Store) {
	t.Helper()
	var dsn string
	if dialect == "postgres" {
		dsn = storagetest.PostgresDSN(t)
	} else {
		dsn = "sqlite://" + filepath.Join(t.TempDir(), "otpstep.db")
	}
	open := func() *storage.Store {
		s, err := storage.Open(context.Background(), dsn, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a = open()
	if err := a.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a, open()
}

// dbFixture is a real store, a sealer and a real SMTP peer.
type dbFixture struct {
	t      *testing.T
	sealer *testSealer
	smtp   *mailtest.Server
	logs   *syncBuffer
}

func (f *dbFixture) mailer() *mail.SMTP {
	f.t.Helper()
	m, err := mail.NewSMTP(mail.SMTPConfig{URL: f.smtp.URL(), TLS: mail.TLSNone, From: "no-reply@example.test", Timeout: 10 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *dbFixture) logger(name string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", name)
}

// enqueue stores n OTP mails, code i for row i.
func (f *dbFixture) enqueue(s *storage.Store, n int) {
	f.t.Helper()
	for i := range n {
		sealed, err := outbox.SealPayload(f.sealer, id(i), outbox.Payload{
			To: "user-" + id(i) + "@example.test", Subject: "Your otpstep sign-in code", Text: "Your code is " + code(i),
		})
		if err != nil {
			f.t.Fatal(err)
		}
		if err := s.EnqueueOutbox(context.Background(), &storage.OutboxMessage{ID: id(i), Sealed: sealed}); err != nil {
			f.t.Fatal(err)
		}
	}
}

func code(i int) string { return fmt.Sprintf("%06d", i) }

// codesSent counts how often each code reached the SMTP peer.
func (f *dbFixture) codesSent() map[string]int {
	got := map[string]int{}
	for _, m := range f.smtp.Messages() {
		c, _ := strings.CutPrefix(strings.TrimSpace(m.Text), "Your code is ")
		got[c]++
	}
	return got
}

// waitDistinct waits until n distinct codes have arrived, or fails after d.
func (f *dbFixture) waitDistinct(n int, d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for len(f.codesSent()) < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d codes delivered after %v", len(f.codesSent()), n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errDead = errors.New("the process is dead")

// deadStore is an instance's store that stops answering when the instance is
// killed: nothing it had claimed is released, deleted or extended after.
type deadStore struct {
	*storage.Store
	dead atomic.Bool
}

func (s *deadStore) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]outbox.Row, error) {
	if s.dead.Load() {
		return nil, errDead
	}
	return s.Store.ClaimOutbox(ctx, limit, lease)
}

func (s *deadStore) DeleteOutboxMessage(ctx context.Context, id string) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.DeleteOutboxMessage(ctx, id)
}

func (s *deadStore) RescheduleOutboxMessage(ctx context.Context, id string, at time.Time, lastError string) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.RescheduleOutboxMessage(ctx, id, at, lastError)
}

func (s *deadStore) DeleteOutboxMessages(ctx context.Context, ids []string) (int, error) {
	if s.dead.Load() {
		return 0, errDead
	}
	return s.Store.DeleteOutboxMessages(ctx, ids)
}

func (s *deadStore) RescheduleOutboxMessages(ctx context.Context, ids []string, at time.Time, lastError string) (int, error) {
	if s.dead.Load() {
		return 0, errDead
	}
	return s.Store.RescheduleOutboxMessages(ctx, ids, at, lastError)
}

func (s *deadStore) ExtendOutboxLease(ctx context.Context, ids []string, until time.Time, lease time.Duration) ([]string, time.Time, error) {
	if s.dead.Load() {
		return nil, until, errDead
	}
	return s.Store.ExtendOutboxLease(ctx, ids, until, lease)
}

// stallingMailer sends the first `first` messages, then holds every send
// until killed, and fails it: the instance dies with those in flight.
type stallingMailer struct {
	mail.Mailer
	first   int32
	n       atomic.Int32
	stalled chan struct{}
	killed  chan struct{}
}

func (m *stallingMailer) Send(ctx context.Context, msg mail.Message) error {
	if m.n.Add(1) <= m.first {
		return m.Mailer.Send(ctx, msg)
	}
	select {
	case m.stalled <- struct{}{}:
	default:
	}
	<-m.killed
	return errDead
}

// dialects are the databases the tests below run on.
func dialects() []string { return []string{"sqlite", "postgres"} }

func TestDispatchers_KilledInstancesRowsAreDeliveredByAnotherWithinSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the default lease (10s)")
	}
	for _, dialect := range dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := &dbFixture{t: t, sealer: newTestSealer(t), smtp: mailtest.StartServer(t), logs: &syncBuffer{}}
			sa, sb := instances(t, dialect)
			const n = 40
			f.enqueue(sa, n)

			// Instance A claims two batches and dies mid-batch: three mails
			// accepted (not yet deleted), the others of its batches claimed
			// under its lease.
			deadA := &deadStore{Store: sa}
			stall := &stallingMailer{Mailer: f.mailer(), first: 3, stalled: make(chan struct{}, 1), killed: make(chan struct{})}
			a := outbox.NewDispatcher(deadA, f.sealer, stall, outbox.Options{Batch: 10, Senders: 2, Logger: f.logger("a")})
			ctxA, cancelA := context.WithCancel(context.Background())
			doneA := make(chan struct{})
			go func() {
				defer close(doneA)
				a.Run(ctxA)
			}()
			<-stall.stalled
			deadA.dead.Store(true)
			cancelA()
			close(stall.killed)
			<-doneA
			killedAt := time.Now()
			if pending, _, err := sb.OutboxBacklog(context.Background()); err != nil || pending != n {
				t.Fatalf("after the kill %d rows queued (%v), want all %d still there", pending, err, n)
			}

			// Instance B finds A's claimed rows once their lease ends.
			b := outbox.NewDispatcher(sb, f.sealer, f.mailer(), outbox.Options{Logger: f.logger("b")})
			ctxB, cancelB := context.WithCancel(context.Background())
			doneB := make(chan struct{})
			go func() {
				defer close(doneB)
				b.Run(ctxB)
			}()
			defer func() { cancelB(); <-doneB }()
			f.waitDistinct(n, takeoverBound)
			t.Logf("%s: every code delivered %v after the kill", dialect, time.Since(killedAt).Round(time.Millisecond))

			for i := range n {
				if f.codesSent()[code(i)] < 1 {
					t.Errorf("code %s never delivered", code(i))
				}
			}
			// Only the three A sent and could not delete (the documented
			// crash window) may have gone twice.
			twice := 0
			for c, k := range f.codesSent() {
				if k > 2 {
					t.Errorf("code %s delivered %d times", c, k)
				}
				if k == 2 {
					twice++
				}
			}
			if twice > 3 {
				t.Errorf("%d codes delivered twice, want at most the 3 A sent before it died", twice)
			}
		})
	}
}

// signallingMailer reports each send's start.
type signallingMailer struct {
	mail.Mailer
	started chan struct{}
}

func (m signallingMailer) Send(ctx context.Context, msg mail.Message) error {
	select {
	case m.started <- struct{}{}:
	default:
	}
	return m.Mailer.Send(ctx, msg)
}

func TestDispatchers_SlowSenderKeepsItsRowsAndNothingGoesTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("sends two mails slower than a 2s lease")
	}
	for _, dialect := range dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := &dbFixture{t: t, sealer: newTestSealer(t), smtp: mailtest.StartServer(t), logs: &syncBuffer{}}
			sa, sb := instances(t, dialect)
			const lease = 2 * time.Second
			f.smtp.SetDelay(lease + lease/2) // each message takes longer than the lease
			const n = 2
			f.enqueue(sa, n)

			started := make(chan struct{}, 1)
			a := outbox.NewDispatcher(sa, f.sealer, signallingMailer{Mailer: f.mailer(), started: started},
				outbox.Options{Batch: n, Senders: 1, Lease: lease, Logger: f.logger("a")})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			wg.Go(func() { a.Run(ctx) })
			<-started // A holds both rows now
			b := outbox.NewDispatcher(sb, f.sealer, f.mailer(),
				outbox.Options{Senders: 2, Lease: lease, PollInterval: 50 * time.Millisecond, Logger: f.logger("b")})
			wg.Go(func() { b.Run(ctx) })

			f.smtp.WaitMessages(n, 30*time.Second)
			// Give B time to claim, after the lease A first took, what A
			// might have lost.
			time.Sleep(lease)
			got := f.codesSent()
			for i := range n {
				if got[code(i)] != 1 {
					t.Errorf("code %s delivered %d times, want once", code(i), got[code(i)])
				}
			}
			for _, line := range strings.Split(f.logs.String(), "\n") {
				if strings.Contains(line, `"msg":"outbox: message sent"`) && strings.Contains(line, `"instance":"b"`) {
					t.Errorf("B sent a message A was still sending: %s", line)
				}
			}
		})
	}
}

// run runs d until the test ends.
func run(t *testing.T, d *outbox.Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestDispatcher_SendsABacklogOverOneConnectionPerSender(t *testing.T) {
	for _, dialect := range dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := &dbFixture{t: t, sealer: newTestSealer(t), smtp: mailtest.StartServer(t), logs: &syncBuffer{}}
			s, _ := instances(t, dialect)
			const n = 100
			f.enqueue(s, n)
			m, err := mail.NewSMTP(mail.SMTPConfig{URL: f.smtp.URL(), TLS: mail.TLSNone, From: "no-reply@example.test", MaxConnections: 2})
			if err != nil {
				t.Fatal(err)
			}
			run(t, outbox.NewDispatcher(s, f.sealer, m, outbox.Options{Senders: 2, Logger: f.logger("a")}))
			f.smtp.WaitMessages(n, 30*time.Second)
			if c := f.smtp.Connections(); c < 1 || c > 2 {
				t.Errorf("%d mails by 2 senders took %d SMTP connections, want 1 or 2", n, c)
			}
			for i := range n {
				if k := f.codesSent()[code(i)]; k != 1 {
					t.Errorf("code %s delivered %d times", code(i), k)
				}
			}
		})
	}
}

func TestDispatcher_PeerDroppingConnectionsMidBatchLosesAndDuplicatesNothing(t *testing.T) {
	for _, dialect := range dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := &dbFixture{t: t, sealer: newTestSealer(t), smtp: mailtest.StartServer(t), logs: &syncBuffer{}}
			f.smtp.DropAfter(7) // inside every batch of 20
			s, _ := instances(t, dialect)
			const n = 100
			f.enqueue(s, n)
			m, err := mail.NewSMTP(mail.SMTPConfig{URL: f.smtp.URL(), TLS: mail.TLSNone, From: "no-reply@example.test", MaxConnections: 3})
			if err != nil {
				t.Fatal(err)
			}
			run(t, outbox.NewDispatcher(s, f.sealer, m, outbox.Options{Senders: 3, Logger: f.logger("a")}))
			f.waitDistinct(n, 30*time.Second)
			for i := range n {
				if k := f.codesSent()[code(i)]; k != 1 {
					t.Errorf("code %s delivered %d times, want once", code(i), k)
				}
			}
			if strings.Contains(f.logs.String(), "will retry") {
				t.Errorf("a dropped connection cost a retry with backoff:\n%s", f.logs.String())
			}
			if c := f.smtp.Connections(); c < n/7 {
				t.Errorf("%d connections: the drops were not exercised", c)
			}
		})
	}
}

func TestDispatcher_PeerRestartedMidBacklogDeliversEveryMail(t *testing.T) {
	for _, dialect := range dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := &dbFixture{t: t, sealer: newTestSealer(t), smtp: mailtest.StartServer(t), logs: &syncBuffer{}}
			s, _ := instances(t, dialect)
			const n, senders = 200, 3
			f.enqueue(s, n)
			m, err := mail.NewSMTP(mail.SMTPConfig{URL: f.smtp.URL(), TLS: mail.TLSNone, From: "no-reply@example.test", MaxConnections: senders})
			if err != nil {
				t.Fatal(err)
			}
			run(t, outbox.NewDispatcher(s, f.sealer, m, outbox.Options{Senders: senders, Logger: f.logger("a"),
				Backoff: func(int) time.Duration { return 100 * time.Millisecond }}))
			f.smtp.WaitMessages(n/4, 30*time.Second)
			f.smtp.Down()
			f.smtp.Up()
			f.waitDistinct(n, 30*time.Second)
			// A mail whose reply the restart cut off may have been accepted
			// and is sent again (the documented window): at most one per
			// connection open at the restart.
			twice := 0
			for i := range n {
				switch k := f.codesSent()[code(i)]; {
				case k == 2:
					twice++
				case k != 1:
					t.Errorf("code %s delivered %d times", code(i), k)
				}
			}
			if twice > senders {
				t.Errorf("%d codes delivered twice, want at most %d (one in flight per connection)", twice, senders)
			}
		})
	}
}
