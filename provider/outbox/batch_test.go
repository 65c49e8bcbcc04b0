package outbox_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/outbox"
)

func TestRunOnce_SettlesTheBatchWithOneDelete(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 5; i++ {
		f.enqueue(id(i), "30000"+string(rune('0'+i)))
	}
	f.store.put(outbox.Row{ID: id(6), Sealed: []byte("garbage")}) // dropped, deleted with the rest
	d := f.dispatcher(outbox.Options{})

	sent, err := d.RunOnce(context.Background())
	if err != nil || sent != 5 {
		t.Fatalf("RunOnce = %d, %v; want 5, nil", sent, err)
	}
	want := map[string]int{"ClaimOutbox": 1, "DeleteOutboxMessages": 1}
	if got := f.store.callCounts(); !maps.Equal(got, want) {
		t.Errorf("store calls %v, want %v", got, want)
	}
	if got := f.store.deletes[0]; !slices.Equal(got, []string{id(1), id(2), id(3), id(4), id(5), id(6)}) {
		t.Errorf("deleted %v in one call, want the six claimed rows", got)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

func TestRunOnce_FailedBatchDeleteIsReportedAndResentOnceAfterTheLease(t *testing.T) {
	f := newFixture(t)
	codes := []string{"700001", "700002", "700003"}
	for i, c := range codes {
		f.enqueue(id(i+1), c)
	}
	f.store.failDelete = errors.New("delete failed")
	d := f.dispatcher(outbox.Options{Lease: time.Minute})

	sent, err := d.RunOnce(context.Background())
	if sent != 3 || err == nil || !strings.Contains(err.Error(), "delete failed") {
		t.Fatalf("RunOnce = %d, %v; want 3 and the delete failure", sent, err)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(err.Error(), id(i)) {
			t.Errorf("error %q does not name %s", err, id(i))
		}
	}
	if logs := f.logs.String(); !strings.Contains(logs, "sent again after their lease") || !strings.Contains(logs, id(1)) {
		t.Errorf("failed delete not logged with the IDs:\n%s", logs)
	}
	f.store.mu.Lock()
	f.store.failDelete = nil
	f.store.mu.Unlock()

	// Still leased: nobody sends them again before the lease ends.
	f.clock.Advance(time.Minute - time.Microsecond)
	if sent, err := d.RunOnce(context.Background()); sent != 0 || err != nil {
		t.Fatalf("RunOnce within the lease = %d, %v; want 0, nil", sent, err)
	}
	f.clock.Advance(time.Microsecond)
	if sent, err := d.RunOnce(context.Background()); sent != 3 || err != nil {
		t.Fatalf("RunOnce after the lease = %d, %v; want the 3 sent again", sent, err)
	}
	f.clock.Advance(time.Hour)
	if sent, err := d.RunOnce(context.Background()); sent != 0 || err != nil {
		t.Fatalf("RunOnce after the redelivery = %d, %v; want 0, nil", sent, err)
	}
	got := f.codesSent()
	for _, c := range codes {
		if got[c] != 2 {
			t.Errorf("code %s sent %d times, want twice (once more after the lease)", c, got[c])
		}
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left", n)
	}
	f.assertLogsHide(codes...)
}

func TestRunOnce_SMTPDownReschedulesTheBatchInOneCall(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 4; i++ {
		f.enqueue(id(i), "40000"+string(rune('0'+i)))
	}
	f.smtp.Down()
	d := f.dispatcher(outbox.Options{})
	start := f.clock.Now()

	if sent, err := d.RunOnce(context.Background()); sent != 0 || err != nil {
		t.Fatalf("RunOnce with SMTP down = %d, %v; want 0, nil", sent, err)
	}
	want := map[string]int{"ClaimOutbox": 1, "RescheduleOutboxMessages": 1}
	if got := f.store.callCounts(); !maps.Equal(got, want) {
		t.Errorf("store calls %v, want %v", got, want)
	}
	for i := 1; i <= 4; i++ {
		r := f.store.row(t, id(i))
		if r.Attempts != 1 || !r.AvailableAt.Equal(start.Add(2*time.Second)) || r.LastError == "" {
			t.Errorf("row %d: attempts %d, available in %v (want 2s), last error %q", i, r.Attempts, r.AvailableAt.Sub(start), r.LastError)
		}
	}

	f.smtp.Up()
	f.clock.Advance(2 * time.Second)
	if sent, err := d.RunOnce(context.Background()); sent != 4 || err != nil {
		t.Fatalf("RunOnce after recovery = %d, %v; want 4", sent, err)
	}
	if n := f.store.len(); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

func TestRunOnce_SlowMailerHasOutcomesWrittenWithinASecond(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 5; i++ {
		f.enqueue(id(i), "50000"+string(rune('0'+i)))
	}
	// Each send takes 400ms: the rows sent in the first 1.2s are deleted
	// before the fifth send starts, not after the whole batch.
	d := outbox.NewDispatcher(f.store, f.sealer, clockMovingMailer{Mailer: f.mailer, clock: f.clock, step: 400 * time.Millisecond},
		outbox.Options{Clock: f.clock.Now, Lease: time.Minute})

	if sent, err := d.RunOnce(context.Background()); sent != 5 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 5, nil", sent, err)
	}
	want := [][]string{{id(1), id(2), id(3), id(4)}, {id(5)}}
	if got := f.store.deletes; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("deletes %v, want %v", got, want)
	}
}
