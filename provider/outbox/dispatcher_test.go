package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/provider/outbox"
)

func TestRunOnce_DeliversOnceAndPurges(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "314159")
	d := f.dispatcher(outbox.Options{})

	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1, nil", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left, want the delivered one purged", n)
	}
	msgs := f.smtp.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "user-"+id(1)+"@example.test" || msgs[0].Subject != "Your otpstep sign-in code" {
		t.Fatalf("server received %+v", msgs)
	}
	if !strings.Contains(msgs[0].HTML, "<b>314159</b>") {
		t.Errorf("HTML part = %q", msgs[0].HTML)
	}

	sent, err = d.RunOnce(context.Background())
	if err != nil || sent != 0 {
		t.Errorf("second RunOnce = %d, %v; want 0, nil", sent, err)
	}
	if got := f.codesSent(); got["314159"] != 1 || len(got) != 1 {
		t.Errorf("codes sent %v, want 314159 once", got)
	}
	f.assertLogsHide("314159")
}

func TestRunOnce_SMTPDownIsRetriedWithBackoffAndSentOnce(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "271828")
	d := f.dispatcher(outbox.Options{})
	start := f.clock.Now()

	f.smtp.Down()
	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 0 {
		t.Fatalf("RunOnce with SMTP down = %d, %v; want 0, nil", sent, err)
	}
	r := f.store.row(t, id(1))
	if r.Attempts != 1 || !r.AvailableAt.Equal(start.Add(2*time.Second)) || r.LastError == "" {
		t.Fatalf("after attempt 1: attempts %d, available %v (want +2s), last error %q", r.Attempts, r.AvailableAt.Sub(start), r.LastError)
	}

	// Not due yet: the backoff is honoured.
	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("RunOnce before the backoff = %d, %v", sent, err)
	}
	if r := f.store.row(t, id(1)); r.Attempts != 1 {
		t.Fatalf("claimed before its backoff: attempts %d", r.Attempts)
	}

	// Second attempt, a temporary 451 this time: the wait doubles.
	f.smtp.Up()
	f.smtp.SetFailing(451)
	f.clock.Advance(2 * time.Second)
	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("RunOnce with 451 = %d, %v", sent, err)
	}
	r = f.store.row(t, id(1))
	if r.Attempts != 2 || !r.AvailableAt.Equal(f.clock.Now().Add(4*time.Second)) || !strings.Contains(r.LastError, "451") {
		t.Fatalf("after attempt 2: attempts %d, available in %v (want 4s), last error %q", r.Attempts, r.AvailableAt.Sub(f.clock.Now()), r.LastError)
	}

	f.smtp.SetFailing(0)
	f.clock.Advance(4 * time.Second)
	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 1 {
		t.Fatalf("RunOnce after recovery = %d, %v; want 1", sent, err)
	}
	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("RunOnce after delivery = %d, %v; want 0", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left after delivery", n)
	}
	if got := f.codesSent(); got["271828"] != 1 || len(got) != 1 {
		t.Errorf("codes sent %v, want 271828 exactly once", got)
	}
	f.assertLogsHide("271828", "Your code is")
}

func TestRunOnce_PermanentFailureIsDroppedAndLoggedByID(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(7), "161803")
	f.smtp.SetFailing(550)
	d := f.dispatcher(outbox.Options{})

	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 0 {
		t.Fatalf("RunOnce = %d, %v; want 0, nil", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left, want the undeliverable message deleted", n)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, id(7)) || !strings.Contains(logs, "permanent delivery failure") {
		t.Errorf("drop not logged at error level with the ID:\n%s", logs)
	}
	f.assertLogsHide("161803", "Your code is", "Your otpstep sign-in code")

	f.smtp.SetFailing(0)
	f.clock.Advance(time.Hour)
	if sent, _ := d.RunOnce(context.Background()); sent != 0 || len(f.smtp.Messages()) != 0 {
		t.Errorf("a dropped message was sent later")
	}
}

func TestRunOnce_GivesUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "101010")
	f.smtp.SetFailing(451)
	d := f.dispatcher(outbox.Options{MaxAttempts: 2})

	if _, err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.store.row(t, id(1)); r.Attempts != 1 {
		t.Fatalf("attempts %d after the first try", r.Attempts)
	}
	f.clock.Advance(time.Minute)
	if _, err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left after MaxAttempts failures", n)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "still failing after 2 attempts") || !strings.Contains(logs, id(1)) {
		t.Errorf("give-up not logged:\n%s", logs)
	}
}

func TestRunOnce_RowClaimedTooOftenIsDroppedUnsent(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "999000")
	r := f.store.row(t, id(1))
	r.Attempts = 3 // three earlier claims never settled
	f.store.put(r)
	d := f.dispatcher(outbox.Options{MaxAttempts: 3})

	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("RunOnce = %d, %v", sent, err)
	}
	if f.store.len() != 0 || len(f.smtp.Messages()) != 0 {
		t.Errorf("rows %d, messages %d; want the row dropped unsent", f.store.len(), len(f.smtp.Messages()))
	}
}

func TestRunOnce_UnopenablePayloadIsDropped(t *testing.T) {
	f := newFixture(t)
	other := newTestSealer(t)
	moved, err := outbox.SealPayload(f.sealer, id(99), outbox.Payload{To: "a@example.test", Subject: "s", Text: "Your code is 1"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := outbox.SealPayload(other, id(2), outbox.Payload{To: "a@example.test", Subject: "s", Text: "Your code is 2"})
	if err != nil {
		t.Fatal(err)
	}
	f.store.put(outbox.Row{ID: id(1), Sealed: moved})   // sealed for another row
	f.store.put(outbox.Row{ID: id(2), Sealed: foreign}) // sealed under another key
	f.store.put(outbox.Row{ID: id(3), Sealed: []byte("garbage")})
	f.enqueue(id(4), "424242")
	d := f.dispatcher(outbox.Options{})

	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 (only the good row)", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left", n)
	}
	if got := f.codesSent(); len(got) != 1 || got["424242"] != 1 {
		t.Errorf("codes sent %v", got)
	}
	logs := f.logs.String()
	for _, i := range []int{1, 2, 3} {
		if !strings.Contains(logs, id(i)) {
			t.Errorf("drop of %s not logged", id(i))
		}
	}
	if strings.Count(logs, "payload cannot be opened") != 3 {
		t.Errorf("want 3 unopenable drops logged:\n%s", logs)
	}
}

func TestRunOnce_ClaimErrorIsReturned(t *testing.T) {
	f := newFixture(t)
	f.store.failClaim = errors.New("database is down")
	d := f.dispatcher(outbox.Options{})

	if _, err := d.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "database is down") {
		t.Errorf("RunOnce error = %v, want the claim failure", err)
	}
}

func TestRunOnce_SentButNotDeletedIsReported(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "555555")
	f.store.failWrite = errors.New("write failed")
	d := f.dispatcher(outbox.Options{})

	sent, err := d.RunOnce(context.Background())
	if sent != 1 || err == nil || !strings.Contains(err.Error(), id(1)) {
		t.Errorf("RunOnce = %d, %v; want 1 and an error naming the row", sent, err)
	}
}

// clockMovingMailer advances the clock by step on every send, as a slow
// server would.
type clockMovingMailer struct {
	mail.Mailer
	clock *fakeClock
	step  time.Duration
}

func (m clockMovingMailer) Send(ctx context.Context, msg mail.Message) error {
	m.clock.Advance(m.step)
	return m.Mailer.Send(ctx, msg)
}

func TestRunOnce_StopsSendingWhenHalfTheLeaseIsGone(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 3; i++ {
		f.enqueue(id(i), "00000"+string(rune('0'+i)))
	}
	d := outbox.NewDispatcher(f.store, f.sealer, clockMovingMailer{Mailer: f.mailer, clock: f.clock, step: 31 * time.Second},
		outbox.Options{Clock: f.clock.Now, Lease: time.Minute})

	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 sent before the lease was half gone", sent, err)
	}
	now := f.clock.Now()
	for _, i := range []int{2, 3} {
		r := f.store.row(t, id(i))
		if !r.AvailableAt.Equal(now) || r.Attempts != 1 {
			t.Errorf("row %d: available in %v, attempts %d; want released now", i, r.AvailableAt.Sub(now), r.Attempts)
		}
	}
	if sent, err := d.RunOnce(context.Background()); err != nil || sent != 1 {
		t.Errorf("next RunOnce = %d, %v; want the released rows picked up", sent, err)
	}
}

func TestDispatchers_TwoOnOneStoreNeverSendTwice(t *testing.T) {
	f := newFixture(t)
	const n = 60
	for i := range n {
		f.enqueue(id(i), strings.Repeat("0", 3)+id(i)[len(id(i))-3:])
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		d := f.dispatcher(outbox.Options{Batch: 4, PollInterval: 10 * time.Millisecond})
		wg.Go(func() { d.Run(ctx) })
	}

	f.smtp.WaitMessages(n, 30*time.Second)
	cancel()
	wg.Wait()

	got := f.codesSent()
	if len(got) != n {
		t.Errorf("%d distinct codes sent, want %d", len(got), n)
	}
	for code, c := range got {
		if c != 1 {
			t.Errorf("code %s sent %d times", code, c)
		}
	}
	if rows := f.store.len(); rows != 0 {
		t.Errorf("%d rows left", rows)
	}
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	for rid, c := range f.store.claims {
		if c != 1 {
			t.Errorf("row %s claimed %d times", rid, c)
		}
	}
}

func TestRun_NotifyWakesItAndCancelStopsIt(t *testing.T) {
	f := newFixture(t)
	claims := make(chan int, 10)
	f.store.onClaim = func(n int) { claims <- n }
	d := f.dispatcher(outbox.Options{PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()

	// Run has found nothing and sleeps for an hour; a fresh code must not wait.
	if n := <-claims; n != 0 {
		t.Fatalf("first claim found %d rows", n)
	}
	f.enqueue(id(1), "868686")
	d.Notify()
	f.smtp.WaitMessages(1, 10*time.Second)

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := f.codesSent(); got["868686"] != 1 {
		t.Errorf("codes sent %v", got)
	}
}

func TestRun_LingerGathersABurstIntoOneClaim(t *testing.T) {
	f := newFixture(t)
	claims := make(chan int, 10)
	f.store.onClaim = func(n int) { claims <- n }
	d := f.dispatcher(outbox.Options{PollInterval: time.Hour, Linger: time.Second, Senders: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	if n := <-claims; n != 0 {
		t.Fatalf("first claim found %d rows", n)
	}
	// Five codes issued 20ms apart, each with its Notify, as the session
	// API does under load: one claim takes them all.
	for i := range 5 {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		f.enqueue(id(i+1), fmt.Sprintf("10000%d", i))
		d.Notify()
	}
	f.smtp.WaitMessages(5, 10*time.Second)
	if n := <-claims; n != 5 {
		t.Fatalf("the burst was claimed %d at a time, want all 5 at once", n)
	}
	// A partial batch is followed, after Linger, by one more look.
	if n := <-claims; n != 0 {
		t.Fatalf("claim after the burst found %d rows", n)
	}
	for code, n := range f.codesSent() {
		if n != 1 {
			t.Errorf("code %s sent %d times", code, n)
		}
	}
}

// blockingMailer lets the test hold a send in flight.
type blockingMailer struct {
	mail.Mailer
	started chan struct{}
	release chan struct{}
}

func (m *blockingMailer) Send(ctx context.Context, msg mail.Message) error {
	m.started <- struct{}{}
	<-m.release
	return m.Mailer.Send(ctx, msg)
}

func TestRun_CancelFinishesTheInFlightMessageAndReleasesTheRest(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 3; i++ {
		f.enqueue(id(i), "12121"+string(rune('0'+i)))
	}
	bm := &blockingMailer{Mailer: f.mailer, started: make(chan struct{}), release: make(chan struct{})}
	d := outbox.NewDispatcher(f.store, f.sealer, bm, outbox.Options{Clock: f.clock.Now, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()

	<-bm.started
	cancel()
	close(bm.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	if got := f.codesSent(); len(got) != 1 || got["121211"] != 1 {
		t.Errorf("codes sent %v, want only the in-flight one", got)
	}
	if n := f.store.len(); n != 2 {
		t.Fatalf("%d rows left, want the in-flight one deleted and 2 released", n)
	}
	now := f.clock.Now()
	for _, i := range []int{2, 3} {
		if r := f.store.row(t, id(i)); !r.AvailableAt.Equal(now) {
			t.Errorf("row %d available in %v, want released now", i, r.AvailableAt.Sub(now))
		}
	}
}

func TestRunOnce_DropsMessagesOlderThanMaxAgeLoggedAndCounted(t *testing.T) {
	f := newFixture(t)
	f.enqueue(id(1), "111111")
	f.enqueue(id(2), "222222")
	f.clock.Advance(6 * time.Minute)
	f.enqueue(id(3), "333333")
	reg := prometheus.NewRegistry()
	d := f.dispatcher(outbox.Options{MaxAge: 5 * time.Minute, Observer: metrics.New(reg)})
	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 1 {
		t.Fatalf("sent=%d err=%v, want the fresh one sent", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Fatalf("%d rows left, want the expired ones dropped", n)
	}
	if got := f.codesSent(); len(got) != 1 || got["333333"] != 1 {
		t.Fatalf("codes sent %v, want only the fresh one", got)
	}
	if v := counterValue(t, reg, "otpstep_outbox_dropped_expired_total"); v != 2 {
		t.Errorf("otpstep_outbox_dropped_expired_total = %v, want 2", v)
	}
	logs := f.logs.String()
	for _, rid := range []string{id(1), id(2)} {
		if !strings.Contains(logs, `"outbox_id":"`+rid+`"`) || !strings.Contains(logs, "its code is dead") {
			t.Errorf("drop of %s not logged with its reason:\n%s", rid, logs)
		}
	}
	f.assertLogsHide("111111", "222222")

	// A second Dispatcher whose metrics share the registry counts into the same series.
	f.enqueue(id(4), "444444")
	f.clock.Advance(6 * time.Minute)
	if _, err := f.dispatcher(outbox.Options{MaxAge: 5 * time.Minute, Observer: metrics.New(reg)}).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := counterValue(t, reg, "otpstep_outbox_dropped_expired_total"); v != 3 {
		t.Errorf("after a second dispatcher's drop: %v, want 3", v)
	}
}

// counterValue is the value of the one counter named name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not registered (or not one series)", name)
	return 0
}

func TestFlush_SendsWhatIsDueAndReturns(t *testing.T) {
	f := newFixture(t)
	const n = 45
	for i := range n {
		f.enqueue(id(i), fmt.Sprintf("%06d", i))
	}
	d := f.dispatcher(outbox.Options{Batch: 10, Senders: 3})
	sent, err := d.Flush(context.Background())
	if err != nil || sent != n {
		t.Fatalf("Flush = %d, %v; want %d, nil", sent, err, n)
	}
	if rows := f.store.len(); rows != 0 {
		t.Errorf("%d rows left", rows)
	}
	for code, c := range f.codesSent() {
		if c != 1 {
			t.Errorf("code %s sent %d times", code, c)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.enqueue(id(n), "999999")
	if sent, err := d.Flush(ctx); sent != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Flush with an ended ctx = %d, %v; want 0 and its error", sent, err)
	}
}
