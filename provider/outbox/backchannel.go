package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// Defaults of LogoutOptions.
const (
	DefaultLogoutTimeout = 5 * time.Second
	DefaultLogoutMaxAge  = 24 * time.Hour
	DefaultLogoutBatch   = 10
)

// LogoutStore is the part of the database a LogoutDispatcher needs
// (storage.Store's back-channel outbox).
type LogoutStore interface {
	// ClaimBackchannelLogouts leases up to limit due, unsettled rows (their
	// Attempts incremented), each with its client's URI.
	ClaimBackchannelLogouts(ctx context.Context, limit int, lease time.Duration) ([]storage.BackchannelLogout, error)
	// SettleBackchannelLogout marks a row delivered ("") or given up.
	SettleBackchannelLogout(ctx context.Context, id, outcome string) error
	// RescheduleBackchannelLogout makes a row claimable again from availableAt.
	RescheduleBackchannelLogout(ctx context.Context, id string, availableAt time.Time, lastError string) error
}

// LogoutSigner signs the logout token of a row (Back-Channel Logout 1.0
// §2.4), afresh at each attempt so that its iat and exp are current; its
// jti is the row's ID, the same at every attempt.
type LogoutSigner interface {
	SignLogoutToken(ctx context.Context, l storage.BackchannelLogout) (string, error)
}

// LogoutObserver learns each attempt's outcome (otpstep's metrics).
type LogoutObserver interface {
	LogoutDelivered()
	LogoutDeliveryFailed()
	LogoutGivenUp()
}

// LogoutOptions tunes a LogoutDispatcher; zero values take the defaults.
type LogoutOptions struct {
	Clock  func() time.Time
	Logger *slog.Logger
	// Timeout bounds one POST (oauth2.backchannel_logout_timeout).
	Timeout time.Duration
	// MaxAge gives up a logout not delivered this long after it was queued
	// (oauth2.backchannel_logout_max_age).
	MaxAge time.Duration
	// Batch is how many rows one claim takes; they are posted side by side.
	Batch int
	// PollInterval is how long Run waits after a claim that found nothing,
	// unless Notify wakes it (DefaultPollInterval).
	PollInterval time.Duration
	// Backoff is the wait after failed attempt number attempt
	// (DefaultBackoff: 2s doubling to 10 minutes).
	Backoff  func(attempt int) time.Duration
	Observer LogoutObserver
	// Transport carries the POSTs (http.DefaultTransport's clone when nil).
	Transport http.RoundTripper
}

// LogoutDispatcher delivers queued back-channel logouts: it claims due rows
// under a lease (so any number of instances share the queue), POSTs each
// logout token as the form field logout_token (§2.5) with a timeout and no
// redirects followed, and settles the row on a 2xx answer (§2.8). Any other
// answer, or none, reschedules it with backoff until MaxAge, when it is given
// up, logged and counted. Delivery is at least once: a process that dies
// between a POST and its settlement posts the same token (same jti) again
// after the lease.
type LogoutDispatcher struct {
	store  LogoutStore
	signer LogoutSigner
	client *http.Client
	opts   LogoutOptions
	lease  time.Duration
	wake   chan struct{}
}

// NewLogoutDispatcher returns a dispatcher over store, signing with signer.
func NewLogoutDispatcher(store LogoutStore, signer LogoutSigner, opts LogoutOptions) *LogoutDispatcher {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultLogoutTimeout
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultLogoutMaxAge
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultLogoutBatch
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &LogoutDispatcher{
		store: store, signer: signer, opts: opts,
		client: &http.Client{
			Transport: opts.Transport,
			Timeout:   opts.Timeout,
			// A redirect is not a delivery: the RP's endpoint answers itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		// The batch is posted side by side: it ends within one timeout.
		lease: 2*opts.Timeout + DefaultLease,
		wake:  make(chan struct{}, 1),
	}
}

// Notify wakes Run, so a logout queued right now goes out at once.
func (d *LogoutDispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: a claim again at once after a full batch,
// otherwise after PollInterval or Notify. Errors are logged.
func (d *LogoutDispatcher) Run(ctx context.Context) {
	timer := time.NewTimer(d.opts.PollInterval)
	defer timer.Stop()
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.opts.Logger.ErrorContext(ctx, "back-channel logout: dispatch failed", slog.Any("error", err))
		}
		if err == nil && n >= d.opts.Batch {
			continue
		}
		timer.Reset(d.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			stopTimer(timer)
		case <-timer.C:
		}
	}
}

// RunOnce claims one batch of due logouts, posts them side by side and
// settles or reschedules each. It returns how many rows it claimed; store
// failures are joined into err. Once claimed, a batch is finished even if
// ctx ends.
func (d *LogoutDispatcher) RunOnce(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	rows, err := d.store.ClaimBackchannelLogouts(ctx, d.opts.Batch, d.lease)
	if err != nil {
		return 0, fmt.Errorf("back-channel logout: claim: %w", err)
	}
	wctx := context.WithoutCancel(ctx)
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Go(func() { errs[i] = d.settle(wctx, row) })
	}
	wg.Wait()
	return len(rows), errors.Join(errs...)
}

// settle tries one row and writes its outcome.
func (d *LogoutDispatcher) settle(ctx context.Context, row storage.BackchannelLogout) error {
	log := d.opts.Logger.With(slog.String("logout_id", row.ID), slog.String("client_id", row.ClientID), slog.Int("attempt", row.Attempts))
	if age := d.opts.Clock().Sub(row.CreatedAt); age > d.opts.MaxAge {
		if obs := d.opts.Observer; obs != nil {
			obs.LogoutGivenUp()
		}
		log.ErrorContext(ctx, "back-channel logout given up: not delivered within its max age (oauth2.backchannel_logout_max_age)",
			slog.Time("queued_at", row.CreatedAt), slog.String("last_error", row.LastError))
		return d.store.SettleBackchannelLogout(ctx, row.ID, "given up: "+lastErrorText(row.LastError))
	}
	err := d.post(ctx, row)
	if obs := d.opts.Observer; obs != nil {
		if err == nil {
			obs.LogoutDelivered()
		} else {
			obs.LogoutDeliveryFailed()
		}
	}
	if err == nil {
		log.DebugContext(ctx, "back-channel logout delivered")
		return d.store.SettleBackchannelLogout(ctx, row.ID, "")
	}
	retryAt := d.opts.Clock().Add(max(d.opts.Backoff(row.Attempts), 0))
	log.WarnContext(ctx, "back-channel logout failed, will retry", slog.Time("retry_at", retryAt), slog.Any("error", err))
	return d.store.RescheduleBackchannelLogout(ctx, row.ID, retryAt, lastError(err))
}

// post sends row's logout token to its client (§2.5) and reports whether
// the client answered 2xx.
func (d *LogoutDispatcher) post(ctx context.Context, row storage.BackchannelLogout) error {
	if row.URI == "" {
		return errors.New("the client has no backchannel_logout_uri")
	}
	token, err := d.signer.SignLogoutToken(ctx, row)
	if err != nil {
		return fmt.Errorf("sign the logout token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, row.URI, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the client answered %s", resp.Status)
	}
	return nil
}

func lastErrorText(s string) string {
	if s == "" {
		return "no attempt answered"
	}
	return s
}
