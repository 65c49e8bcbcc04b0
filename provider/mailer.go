package provider

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
)

// newMailer builds the mailer mail.driver names.
func newMailer(cfg config.Mail, logger *slog.Logger, tp trace.TracerProvider) (mail.Mailer, error) {
	switch cfg.Driver {
	case "log":
		return mail.NewLog(logger), nil
	case "smtp":
		m, err := mail.NewSMTP(mail.SMTPConfig{URL: cfg.SMTPURL, TLS: cfg.TLS, From: cfg.From, Timeout: 30 * time.Second,
			MaxConnections: cfg.SMTPMaxConnections, TracerProvider: tp})
		if err != nil {
			return nil, fmt.Errorf("mail.smtp_url: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("mail.driver: %q is not smtp or log", cfg.Driver)
}

// mailOTPData is what the OTP mail of req shows: the product
// (ui.product_name), the app that asked (its client's name, when it is one
// of otpstep's clients), in the language of req.Locale.
func (p *Provider) mailOTPData(ctx context.Context, req OTPRequest, code string, expiresAt time.Time) mail.OTPData {
	ttl := p.cfg.OTP.TTL
	d := mail.OTPData{Code: code, ExpiresAt: expiresAt, TTLMinutes: int((ttl + time.Minute - 1) / time.Minute), Kind: req.Kind,
		Issuer: p.cfg.UI.ProductName, SupportURL: p.cfg.UI.SupportURL, Locale: req.Locale}
	if req.ClientID != "" {
		if c, err := p.clients.Get(ctx, req.ClientID); err == nil {
			d.ClientName = c.Name
		}
	}
	return d
}

// The dispatcher settles a claimed batch with one statement
// (outbox.BatchStore) and extends the lease of the batches it works on
// (outbox.LeaseStore): storage does both.
var (
	_ outbox.BatchStore = (*storage.Store)(nil)
	_ outbox.LeaseStore = (*storage.Store)(nil)
)

// RunOutbox delivers queued mail until ctx ends, with mail.smtp_max_connections
// senders. plugin.Start runs it.
func (p *Provider) RunOutbox(ctx context.Context) { p.dispatcher.Run(ctx) }

// FlushOutbox sends the mail due now and returns once a claim finds none
// (or ctx ends; the mail in flight is finished, the rest released). A
// shutdown calls it after RunOutbox has returned, with the rest of its
// budget, so that the codes of the last requests go out before exit.
func (p *Provider) FlushOutbox(ctx context.Context) (int, error) {
	return p.dispatcher.Flush(ctx)
}

// DeliverOutboxOnce sends what is due now (tests and the bench use it).
func (p *Provider) DeliverOutboxOnce(ctx context.Context) (int, error) {
	return p.dispatcher.RunOnce(ctx)
}

func (p *Provider) notifyOutbox() { p.dispatcher.Notify() }

// OutboxStatus is the outbox backlog as readiness reports it: information only,
// since a mail server outage loses no mail (it waits in the outbox).
type OutboxStatus struct {
	// Depth is how many mails are queued, across instances.
	Depth int
	// OldestAge is how long the oldest queued mail has waited (0: none).
	OldestAge time.Duration
}

// LastMailDelivery is when this process last had a mail accepted
// (zero: not since it started); it reads no database.
func (p *Provider) LastMailDelivery() time.Time { return p.metrics.LastDelivery() }

// OutboxStatus reads the outbox backlog from the database.
func (p *Provider) OutboxStatus(ctx context.Context) (OutboxStatus, error) {
	depth, oldest, err := p.store.OutboxBacklog(ctx)
	if err != nil {
		return OutboxStatus{}, err
	}
	st := OutboxStatus{Depth: depth}
	if !oldest.IsZero() {
		st.OldestAge = max(p.clock().Sub(oldest), 0)
	}
	return st, nil
}
