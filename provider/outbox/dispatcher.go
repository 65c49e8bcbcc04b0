package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/storage"
)

// maxLastError bounds the failure text stored with a row.
const maxLastError = 1000

// flushAfter bounds how long an outcome (sent, dropped, to retry) waits in
// memory before it is written: a batch's outcomes are written together after
// its last send, and before the next send once the oldest has waited this
// long, so a slow mailer does not stretch the window described on Dispatcher.
const flushAfter = time.Second

// Dispatcher drains the outbox: it claims due rows, opens their payloads and
// hands them to a mail.Mailer. Any number of Dispatchers, in one process or
// many, may drain one store; the store's lease keeps them from claiming the
// same row at once. Run works on Options.Senders batches at a time.
//
// Delivery is at least once. The rows a claim delivered are deleted together
// (see BatchStore): after the batch's last send, or before the next send once
// the first of them has waited flushAfter. A message is sent again, once,
// after its lease (Options.Lease) if its row is not deleted: the process died
// between its send and that delete — a window of at most flushAfter plus one
// send, and with an in-process mailer the few microseconds a batch takes —
// or the delete failed (reported by RunOnce and logged). While a batch is
// worked on, its lease is extended (see LeaseStore), so no other instance
// claims a row this one is still sending, however slow the mail server.
type Dispatcher struct {
	store  BatchStore
	leases LeaseStore // nil: no heartbeat
	opener Opener
	mailer mail.Mailer
	opts   Options
	wake   chan struct{}
}

// NewDispatcher returns a Dispatcher reading rows from store, opening their
// payloads with opener (the Sealer that sealed them) and sending with mailer.
// Each batch's outcomes are written in one statement per kind (BatchStore).
func NewDispatcher(store BatchStore, opener Opener, mailer mail.Mailer, opts Options) *Dispatcher {
	leases, _ := store.(LeaseStore)
	opts = opts.withDefaults()
	return &Dispatcher{
		store:  store,
		leases: leases,
		opener: opener,
		mailer: mailer,
		opts:   opts,
		wake:   make(chan struct{}, opts.Senders),
	}
}

// Notify wakes a sender of Run waiting for PollInterval, so a message
// enqueued right now goes out at once. It never blocks and may be called any
// time from any goroutine.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx is cancelled, with Options.Senders senders side
// by side, each claiming its own batches: a sender calls RunOnce again at once
// after a claim that took a full batch, after Linger after one that found
// fewer rows, and otherwise waits PollInterval, or until Notify and then
// Linger. Errors are logged, not returned. On cancellation each sender
// finishes the message it is sending (sent and deleted, or rescheduled),
// releases the rest of its batch for other instances, and Run returns when
// all have.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range d.opts.Senders {
		wg.Go(func() { d.runSender(ctx) })
	}
	wg.Wait()
}

// Flush sends what is due now and returns: Options.Senders senders claim
// batches until a claim finds nothing due or ctx ends (the message in flight
// is then finished and the rest released, as in Run). A message that fails
// is rescheduled as usual, not waited for. A shutdown calls it once Run has
// returned, with what is left of its budget, so that the mail of the last
// requests goes out before the process exits; it may also run beside Run. It
// returns how many messages were sent; err joins the store failures and, when
// ctx ended first, ctx's error.
func (d *Dispatcher) Flush(ctx context.Context) (sent int, err error) {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range d.opts.Senders {
		wg.Go(func() {
			for ctx.Err() == nil {
				claimed, n, err := d.runOnce(ctx)
				mu.Lock()
				sent += n
				if err != nil && ctx.Err() == nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil || claimed == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	return sent, errors.Join(append(errs, ctx.Err())...)
}

// runSender is one sender of Run.
func (d *Dispatcher) runSender(ctx context.Context) {
	timer := time.NewTimer(d.opts.PollInterval)
	defer timer.Stop()
	for {
		claimed, _, err := d.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.opts.Logger.ErrorContext(ctx, "outbox: dispatch failed", slog.Any("error", err))
		}
		switch {
		case err == nil && claimed >= d.opts.Batch:
			continue // there may be more due
		case err == nil && claimed > 0:
			// More is probably on its way: let it gather into one claim.
			if !d.linger(ctx, timer) {
				return
			}
			continue
		}
		timer.Reset(d.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			if !d.linger(ctx, stopTimer(timer)) {
				return
			}
		case <-timer.C:
		}
	}
}

// linger waits Linger on timer (stopped and drained), false if ctx ends first.
func (d *Dispatcher) linger(ctx context.Context, timer *time.Timer) bool {
	timer.Reset(d.opts.Linger)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// stopTimer stops timer and drains a tick it may have fired, so that it can
// be Reset.
func stopTimer(timer *time.Timer) *time.Timer {
	if !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
	return timer
}

// RunOnce claims one batch of due rows, tries each and then writes the
// outcomes (see Dispatcher for when):
//
//   - delivered: the row is deleted, purging its payload;
//   - temporary failure (see mail.IsPermanent): the row is rescheduled
//     Backoff(attempts) after its outcomes are written, keeping the error in
//     LastError;
//   - queued longer than MaxAge (its code has expired): dropped unsent,
//     logged at error level by ID and counted in
//     Observer.DroppedExpired (otpstep_outbox_dropped_expired_total);
//   - permanent failure, MaxAttempts reached, or a payload that cannot be
//     opened (wrong key, tampered, not ours): the row is logged at error level
//     by ID — never its code or body — and deleted. Such a message can never
//     be delivered, and keeping it would only keep a sealed one-time code at
//     rest; the user asks for a new code.
//
// It returns how many messages were sent. Store failures are joined into err,
// but the other rows of the batch are still tried. When ctx is cancelled
// mid-batch, the message in flight is finished, the outcomes written and the
// rest released.
func (d *Dispatcher) RunOnce(ctx context.Context) (sent int, err error) {
	_, sent, err = d.runOnce(ctx)
	return sent, err
}

// runOnce is RunOnce also reporting how many rows the claim returned.
func (d *Dispatcher) runOnce(ctx context.Context) (claimed, sent int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	rows, err := d.store.ClaimOutbox(ctx, d.opts.Batch, d.opts.Lease)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: claim: %w", err)
	}
	if len(rows) == 0 {
		return 0, 0, nil
	}
	// Once rows are claimed the work is finished even if ctx is cancelled: a
	// message sent but not deleted would be sent twice.
	wctx := context.WithoutCancel(ctx)
	l := newLease(rows, d.opts.Lease)
	defer d.heartbeat(wctx, l)()
	var (
		out  outcomes
		errs []error
	)
	for i, row := range rows {
		// Start no send with less than half the lease left, so it ends, and
		// its outcome is written, before another instance may claim the row.
		if ctx.Err() != nil || !l.mayStart(d.opts.Clock()) {
			d.release(&out, l.held(rows[i:]))
			break
		}
		if !l.holds(row.ID) {
			// The heartbeat found the row claimed by another: it is theirs.
			d.opts.Logger.WarnContext(ctx, "outbox: lease lost to another claim, message left to it", slog.String("outbox_id", row.ID))
			continue
		}
		if out.waited(d.opts.Clock()) >= flushAfter {
			errs = append(errs, d.write(wctx, &out))
		}
		if d.settle(wctx, &out, row) {
			sent++
		}
	}
	errs = append(errs, d.write(wctx, &out))
	return len(rows), sent, errors.Join(errs...)
}

// lease is what a sender knows of its batch's lease: when it ends, and which
// rows another claim took since (found by the heartbeat).
type lease struct {
	half time.Duration

	mu    sync.Mutex
	ids   []string // the rows still held
	until time.Time
	lost  map[string]bool
}

func newLease(rows []Row, d time.Duration) *lease {
	l := &lease{half: d / 2, until: rows[0].AvailableAt, lost: map[string]bool{}}
	for _, r := range rows {
		l.ids = append(l.ids, r.ID)
	}
	return l
}

// mayStart reports whether at least half the lease is left at now.
func (l *lease) mayStart(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Before(l.until.Add(-l.half))
}

func (l *lease) holds(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost[id]
}

// held is rows without those lost to another claim.
func (l *lease) held(rows []Row) []Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Row
	for _, r := range rows {
		if !l.lost[r.ID] {
			out = append(out, r)
		}
	}
	return out
}

func (l *lease) current() ([]string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids), l.until
}

// extended records an extension of ids that kept held until until.
func (l *lease) extended(ids, held []string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := make(map[string]bool, len(held))
	for _, id := range held {
		keep[id] = true
	}
	l.ids = l.ids[:0]
	for _, id := range ids {
		if keep[id] {
			l.ids = append(l.ids, id)
		} else {
			// Settled meanwhile, or claimed by another: either way not to send.
			l.lost[id] = true
		}
	}
	l.until = until
}

// heartbeat extends l every Lease/3 until the returned func is called (which
// waits for an extension under way). Without a LeaseStore it does nothing.
func (d *Dispatcher) heartbeat(ctx context.Context, l *lease) (stop func()) {
	if d.leases == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		every := max(d.opts.Lease/3, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ids, until := l.current()
			if len(ids) == 0 {
				return
			}
			// A hung database must not hold the sender: the next beat tries again.
			ectx, cancel := context.WithTimeout(ctx, every)
			held, next, err := d.leases.ExtendOutboxLease(ectx, ids, until, d.opts.Lease)
			cancel()
			if err != nil {
				d.opts.Logger.WarnContext(ctx, "outbox: lease not extended; the batch stops sending when half of it is left",
					slog.Int("messages", len(ids)), slog.Any("error", err))
				continue
			}
			l.extended(ids, held, next)
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// outcomes are the results of tried rows not yet written to the store.
type outcomes struct {
	since   time.Time // when the oldest was recorded; zero when none is
	deletes []string  // sent or dropped
	sent    int       // how many of deletes were sent
	retries []retry   // to make claimable again, grouped
}

// retry is a group of rows to reschedule delay after the write, with lastError.
type retry struct {
	delay     time.Duration
	lastError string
	ids       []string
}

func (o *outcomes) mark(now time.Time) {
	if o.since.IsZero() {
		o.since = now
	}
}

// waited is how long the oldest unwritten outcome has waited (0 when none).
func (o *outcomes) waited(now time.Time) time.Duration {
	if o.since.IsZero() {
		return 0
	}
	return now.Sub(o.since)
}

func (o *outcomes) remove(now time.Time, id string, sent bool) {
	o.mark(now)
	o.deletes = append(o.deletes, id)
	if sent {
		o.sent++
	}
}

func (o *outcomes) reschedule(now time.Time, id string, delay time.Duration, lastError string) {
	o.mark(now)
	for i, r := range o.retries { // a batch has few distinct groups
		if r.delay == delay && r.lastError == lastError {
			o.retries[i].ids = append(o.retries[i].ids, id)
			return
		}
	}
	o.retries = append(o.retries, retry{delay: delay, lastError: lastError, ids: []string{id}})
}

// write stores the outcomes — deletes first, they end the window in which a
// crash re-sends — and clears them, whether or not the store failed: rows
// whose outcome could not be written come back after their lease.
func (d *Dispatcher) write(ctx context.Context, o *outcomes) error {
	var errs []error
	if len(o.deletes) > 0 {
		n, err := d.store.DeleteOutboxMessages(ctx, o.deletes)
		switch {
		case err != nil:
			d.opts.Logger.ErrorContext(ctx, "outbox: messages settled but not deleted; those sent will be sent again after their lease",
				slog.Int("sent", o.sent), slog.Any("outbox_ids", o.deletes), slog.Any("error", err))
			errs = append(errs, fmt.Errorf("outbox: delete %d settled messages (%d sent) %s: %w",
				len(o.deletes), o.sent, strings.Join(o.deletes, ", "), err))
		case n < len(o.deletes):
			// Their lease ran out before this delete and another claim took
			// them: the delivered ones may have gone out twice.
			d.opts.Logger.WarnContext(ctx, "outbox: settled messages already gone",
				slog.Int("missing", len(o.deletes)-n), slog.Any("outbox_ids", o.deletes))
		}
	}
	now := d.opts.Clock()
	for _, r := range o.retries {
		n, err := d.store.RescheduleOutboxMessages(ctx, r.ids, now.Add(r.delay), r.lastError)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("outbox: reschedule %s: %w", strings.Join(r.ids, ", "), err))
		case n < len(r.ids):
			errs = append(errs, fmt.Errorf("outbox: reschedule %s: %d of %d: %w",
				strings.Join(r.ids, ", "), len(r.ids)-n, len(r.ids), storage.ErrNotFound))
		}
	}
	*o = outcomes{}
	return errors.Join(errs...)
}

// settle tries to deliver one claimed row and records the outcome in out. It
// reports whether the message was sent.
func (d *Dispatcher) settle(ctx context.Context, out *outcomes, row Row) (sent bool) {
	if row.Attempts > d.opts.MaxAttempts {
		// Earlier claims ended without an outcome (instances stopped mid-send).
		d.drop(ctx, out, row, "too many attempts", fmt.Errorf("last error: %q", row.LastError))
		return false
	}
	if d.opts.MaxAge > 0 && d.opts.Clock().Sub(row.CreatedAt) > d.opts.MaxAge {
		// Its code has expired (MaxAge is otp.ttl): sent now it would only
		// mislead; the user asks for a new code.
		if obs := d.opts.Observer; obs != nil {
			obs.DroppedExpired()
		}
		d.drop(ctx, out, row, "expired: queued longer than its max age (otp.ttl), its code is dead",
			fmt.Errorf("queued at %s", row.CreatedAt.UTC().Format(time.RFC3339)))
		return false
	}
	p, err := OpenPayload(d.opener, row.ID, row.Sealed)
	if err != nil {
		d.drop(ctx, out, row, "payload cannot be opened", err)
		return false
	}
	// The send and its log lines belong to the trace of the request that
	// queued the mail.
	ctx = TraceContext(ctx, p.Traceparent)
	sendErr := d.mailer.Send(ctx, p.Message())
	if obs := d.opts.Observer; obs != nil {
		if sendErr == nil {
			obs.Delivered(row.CreatedAt, d.opts.Clock())
		} else {
			obs.DeliveryFailed(mail.FailureClass(sendErr))
		}
	}
	switch {
	case sendErr == nil:
		d.opts.Logger.DebugContext(ctx, "outbox: message sent", slog.String("outbox_id", row.ID), slog.Int("attempt", row.Attempts))
		out.remove(d.opts.Clock(), row.ID, true)
		return true
	case mail.IsPermanent(sendErr):
		d.drop(ctx, out, row, "permanent delivery failure", sendErr)
		return false
	case row.Attempts >= d.opts.MaxAttempts:
		d.drop(ctx, out, row, fmt.Sprintf("still failing after %d attempts", row.Attempts), sendErr)
		return false
	}
	now := d.opts.Clock()
	delay := max(d.opts.Backoff(row.Attempts), 0)
	d.opts.Logger.WarnContext(ctx, "outbox: delivery failed, will retry",
		slog.String("outbox_id", row.ID), slog.Int("attempt", row.Attempts),
		slog.Time("retry_at", now.Add(delay)), slog.Any("error", sendErr))
	out.reschedule(now, row.ID, delay, lastError(sendErr))
	return false
}

// drop logs why row can never be delivered and records its deletion.
func (d *Dispatcher) drop(ctx context.Context, out *outcomes, row Row, reason string, cause error) {
	d.opts.Logger.ErrorContext(ctx, "outbox: message dropped, it cannot be delivered",
		slog.String("outbox_id", row.ID), slog.String("reason", reason),
		slog.Int("attempt", row.Attempts), slog.Time("created_at", row.CreatedAt),
		slog.Any("error", cause))
	out.remove(d.opts.Clock(), row.ID, false)
}

// release hands claimed rows back at once, keeping their last error, so
// another instance need not wait out the lease.
func (d *Dispatcher) release(out *outcomes, rows []Row) {
	now := d.opts.Clock()
	for _, row := range rows {
		out.reschedule(now, row.ID, 0, row.LastError)
	}
}

// lastError is err's text, bounded for storage.
func lastError(err error) string {
	s := err.Error()
	if len(s) > maxLastError {
		// Do not leave half a UTF-8 sequence: PostgreSQL refuses it.
		s = strings.ToValidUTF8(s[:maxLastError], "")
	}
	return s
}
