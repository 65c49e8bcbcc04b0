package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
)

// ErrOTPMismatch is every failed verification a caller may learn about:
// wrong code, no live challenge, expired challenge. The real cause is logged.
var ErrOTPMismatch = errors.New("one-time password does not match")

// IssuedOTP is a code that was created and queued for email.
type IssuedOTP struct {
	ChallengeID string
	Code        string
	ExpiresAt   time.Time
}

// IssueOTP creates a challenge of kind ("login" for a session's second
// factor, "account" for re-authentication) and queues its email in the same
// transaction, so a code is never stored without its mail nor mailed without
// its row. The previous live challenge of the same session/user and kind is
// burned (one live challenge per session and kind).
func (p *Provider) IssueOTP(ctx context.Context, kind string, user *storage.User, sessionID, clientID string) (*IssuedOTP, error) {
	now := p.clock().UTC()
	scope := sessionID
	if kind == OTPKindAccount {
		scope = user.ID
	}
	// Seed ("at most once per otp.resend_interval"): one atomic counter per
	// session and kind whose window is the interval, so parallel requests on
	// several instances cannot both pass.
	if p.cfg.OTP.ResendInterval > 0 {
		n, resetAt, err := p.store.HitRateCounter(ctx, "otp:resend:"+kind+":"+scope, p.cfg.OTP.ResendInterval)
		if err != nil {
			return nil, err
		}
		if n > 1 {
			return nil, &TooManyAttemptsError{Limit: "otp.resend_interval", RetryAfter: resetAt.Sub(now)}
		}
	}
	// otp.max_sends_per_hour per user, across sessions and instances.
	n, resetAt, err := p.store.HitRateCounter(ctx, "otp:sends:"+user.ID, time.Hour)
	if err != nil {
		return nil, err
	}
	if n > p.cfg.OTP.MaxSendsPerHour {
		return nil, &TooManyAttemptsError{Limit: "otp.max_sends_per_hour", RetryAfter: resetAt.Sub(now)}
	}
	code, err := newOTPCode(p.random, p.cfg.OTP.Length)
	if err != nil {
		return nil, err
	}
	ch := &storage.OTPChallenge{
		ID:          uuid.NewString(),
		Kind:        kind,
		UserID:      user.ID,
		SessionID:   sessionID,
		ClientID:    clientID,
		MaxAttempts: p.cfg.OTP.MaxAttempts,
		ExpiresAt:   now.Add(p.cfg.OTP.TTL),
		CreatedAt:   now,
	}
	ch.CodeHash = p.otpHash.hash(ch.ID, kind, sessionID, user.ID, code)
	subject, text, html, err := p.mailTemplates.OTP(mailOTPData(code, ch.ExpiresAt, p.cfg.OTP.TTL, kind, p.serviceName()))
	if err != nil {
		return nil, fmt.Errorf("otp mail template: %w", err)
	}
	msg := &storage.OutboxMessage{ID: uuid.NewString(), AvailableAt: now, CreatedAt: now}
	msg.Sealed, err = outbox.SealPayload(p.mailSealer, msg.ID, outbox.Payload{To: user.Email, Subject: subject, Text: text, HTML: html})
	if err != nil {
		return nil, err
	}
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.CreateOTPChallenge(ctx, ch); err != nil {
			return err
		}
		return p.store.EnqueueOutbox(ctx, msg)
	})
	if err != nil {
		return nil, err
	}
	p.notifyOutbox()
	return &IssuedOTP{ChallengeID: ch.ID, Code: code, ExpiresAt: ch.ExpiresAt}, nil
}

// NeedsSecondFactor says whether an authorize request may only be answered
// once the login session passed the OTP: the client requires it
// (require_second_factor, default true) or the request asks for
// acr_values=aal2 (fosite does not enforce acr_values; this does).
func (p *Provider) NeedsSecondFactor(client *storage.Client, ar interface{ GetRequestForm() url.Values }) bool {
	if client.RequireSecondFactor {
		return true
	}
	return slices.Contains(strings.Fields(ar.GetRequestForm().Get("acr_values")), ACRSecondFactor)
}

// EnsureLoginOTP issues a login OTP for the session unless a live, unexpired
// one exists (so reloading the OTP page does not send a new mail).
func (p *Provider) EnsureLoginOTP(ctx context.Context, user *storage.User, sessionID, clientID string) error {
	ch, err := p.store.LiveOTPChallenge(ctx, OTPKindLogin, user.ID, sessionID)
	if err == nil && p.clock().Before(ch.ExpiresAt) {
		return nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	_, err = p.IssueOTP(ctx, OTPKindLogin, user, sessionID, clientID)
	return err
}
