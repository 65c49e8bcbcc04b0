package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/otpstep/otpstep/provider/mail"
)

// maxLastError bounds the failure text stored with a row.
const maxLastError = 1000

// Dispatcher drains the outbox: it claims due rows, opens their payloads and
// hands them to a mail.Mailer. Any number of Dispatchers, in one process or
// many, may drain one store; the store's lease keeps them from claiming the
// same row at once.
//
// Delivery is at least once: a message sent whose row then cannot be deleted
// (the database failed at that instant) is sent again after its lease.
type Dispatcher struct {
	store  Store
	opener Opener
	mailer mail.Mailer
	opts   Options
	wake   chan struct{}
}

// NewDispatcher returns a Dispatcher reading rows from store, opening their
// payloads with opener (the Sealer that sealed them) and sending with mailer.
func NewDispatcher(store Store, opener Opener, mailer mail.Mailer, opts Options) *Dispatcher {
	return &Dispatcher{
		store:  store,
		opener: opener,
		mailer: mailer,
		opts:   opts.withDefaults(),
		wake:   make(chan struct{}, 1),
	}
}

// Notify wakes Run if it is waiting for PollInterval, so a message enqueued
// right now goes out at once. It never blocks and may be called any time from
// any goroutine.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx is cancelled: it calls RunOnce again at once after
// a claim that found rows, and otherwise waits PollInterval or until Notify.
// Errors are logged, not returned. On cancellation the message being sent is
// finished (sent and deleted, or rescheduled), the rest of its batch is
// released for other instances, and Run returns.
func (d *Dispatcher) Run(ctx context.Context) {
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
		if claimed > 0 && err == nil {
			continue // there may be more due
		}
		timer.Reset(d.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// RunOnce claims one batch of due rows and settles each:
//
//   - delivered: the row is deleted, purging its payload;
//   - temporary failure (see mail.IsPermanent): the row is rescheduled after
//     Backoff(attempts), keeping the error in LastError;
//   - permanent failure, MaxAttempts reached, or a payload that cannot be
//     opened (wrong key, tampered, not ours): the row is logged at error level
//     by ID — never its code or body — and deleted. Such a message can never
//     be delivered, and keeping it would only keep a sealed one-time code at
//     rest; the user asks for a new code.
//
// It returns how many messages were sent. Store failures are joined into err,
// but the other rows of the batch are still settled. When ctx is cancelled
// mid-batch, the message in flight is finished and the rest released.
func (d *Dispatcher) RunOnce(ctx context.Context) (sent int, err error) {
	_, sent, err = d.runOnce(ctx)
	return sent, err
}

// runOnce is RunOnce also reporting how many rows the claim returned.
func (d *Dispatcher) runOnce(ctx context.Context) (claimed, sent int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	claimedAt := d.opts.Clock()
	rows, err := d.store.ClaimOutbox(ctx, d.opts.Batch, d.opts.Lease)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: claim: %w", err)
	}
	// Start no send in the second half of the lease, so it ends before another
	// instance may claim the same rows.
	sendBy := claimedAt.Add(d.opts.Lease / 2)
	var errs []error
	for i, row := range rows {
		if ctx.Err() != nil || d.opts.Clock().After(sendBy) {
			errs = append(errs, d.release(context.WithoutCancel(ctx), rows[i:]))
			break
		}
		ok, err := d.settle(ctx, row)
		if ok {
			sent++
		}
		errs = append(errs, err)
	}
	return len(rows), sent, errors.Join(errs...)
}

// settle tries to deliver one claimed row and records the outcome. Once a row
// is claimed the work is finished even if ctx is cancelled: a message sent but
// not deleted would be sent twice.
func (d *Dispatcher) settle(ctx context.Context, row Row) (sent bool, err error) {
	ctx = context.WithoutCancel(ctx)
	if row.Attempts > d.opts.MaxAttempts {
		// Earlier claims ended without an outcome (instances stopped mid-send).
		return false, d.drop(ctx, row, "too many attempts", fmt.Errorf("last error: %q", row.LastError))
	}
	if d.opts.MaxAge > 0 && d.opts.Clock().Sub(row.CreatedAt) > d.opts.MaxAge {
		return false, d.drop(ctx, row, "older than its max age", fmt.Errorf("queued at %s", row.CreatedAt.UTC().Format(time.RFC3339)))
	}
	p, err := OpenPayload(d.opener, row.ID, row.Sealed)
	if err != nil {
		return false, d.drop(ctx, row, "payload cannot be opened", err)
	}
	sendErr := d.mailer.Send(ctx, p.Message())
	switch {
	case sendErr == nil:
		if err := d.store.DeleteOutboxMessage(ctx, row.ID); err != nil {
			d.opts.Logger.ErrorContext(ctx, "outbox: message sent but not deleted; it will be sent again after its lease",
				slog.String("outbox_id", row.ID), slog.Any("error", err))
			return true, fmt.Errorf("outbox: delete sent message %s: %w", row.ID, err)
		}
		d.opts.Logger.DebugContext(ctx, "outbox: message sent", slog.String("outbox_id", row.ID), slog.Int("attempt", row.Attempts))
		return true, nil
	case mail.IsPermanent(sendErr):
		return false, d.drop(ctx, row, "permanent delivery failure", sendErr)
	case row.Attempts >= d.opts.MaxAttempts:
		return false, d.drop(ctx, row, fmt.Sprintf("still failing after %d attempts", row.Attempts), sendErr)
	}
	retryAt := d.opts.Clock().Add(max(d.opts.Backoff(row.Attempts), 0))
	d.opts.Logger.WarnContext(ctx, "outbox: delivery failed, will retry",
		slog.String("outbox_id", row.ID), slog.Int("attempt", row.Attempts),
		slog.Time("retry_at", retryAt), slog.Any("error", sendErr))
	if err := d.store.RescheduleOutboxMessage(ctx, row.ID, retryAt, lastError(sendErr)); err != nil {
		return false, fmt.Errorf("outbox: reschedule %s: %w", row.ID, err)
	}
	return false, nil
}

// drop logs why row can never be delivered and deletes it.
func (d *Dispatcher) drop(ctx context.Context, row Row, reason string, cause error) error {
	d.opts.Logger.ErrorContext(ctx, "outbox: message dropped, it cannot be delivered",
		slog.String("outbox_id", row.ID), slog.String("reason", reason),
		slog.Int("attempt", row.Attempts), slog.Time("created_at", row.CreatedAt),
		slog.Any("error", cause))
	if err := d.store.DeleteOutboxMessage(ctx, row.ID); err != nil {
		return fmt.Errorf("outbox: delete dropped message %s: %w", row.ID, err)
	}
	return nil
}

// release hands claimed rows back at once, keeping their last error, so
// another instance need not wait out the lease.
func (d *Dispatcher) release(ctx context.Context, rows []Row) error {
	now := d.opts.Clock()
	var errs []error
	for _, row := range rows {
		if err := d.store.RescheduleOutboxMessage(ctx, row.ID, now, row.LastError); err != nil {
			errs = append(errs, fmt.Errorf("outbox: release %s: %w", row.ID, err))
		}
	}
	return errors.Join(errs...)
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
