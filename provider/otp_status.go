package provider

import (
	"context"
	"errors"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// LoginCodeStatus is what the OTP page may truthfully say about the login
// code of a session: whether one is live (it was sent and can still be
// typed), how many tries it has left, and whether a new one would be
// refused now and by which limit.
type LoginCodeStatus struct {
	// Live: a code was sent for the session and has neither expired, nor
	// been used, nor burned.
	Live bool
	// Expired: the session's last code was sent but has expired unused.
	Expired bool
	// SentAt and ExpiresAt are the live code's; AttemptsLeft its tries left.
	SentAt, ExpiresAt time.Time
	AttemptsLeft      int
	// NextCode is the send limit that would refuse a new code now (its
	// Limit and RetryAfter), nil when one may be sent.
	NextCode *TooManyAttemptsError
	// Locked is otp.max_failures_per_user when it refuses every code of the
	// user now (its RetryAfter), else nil.
	Locked *TooManyAttemptsError
	// FailuresLeft is how many more wrong codes of any kind (emailed or
	// from an authenticator app) the user may type before
	// otp.max_failures_per_user refuses every code; 0 when Locked.
	FailuresLeft int
}

// LoginCodeStatus reads the session's login code and the send limits a new
// one would hit, without counting anything.
func (p *Provider) LoginCodeStatus(ctx context.Context, user *storage.User, sessionID string) (LoginCodeStatus, error) {
	now := p.clock().UTC()
	var st LoginCodeStatus
	ch, err := p.store.LiveOTPChallenge(ctx, OTPKindLogin, user.ID, sessionID)
	switch {
	case err == nil:
		if now.Before(ch.ExpiresAt) && ch.Attempts < ch.MaxAttempts {
			st.Live, st.SentAt, st.ExpiresAt, st.AttemptsLeft = true, ch.CreatedAt, ch.ExpiresAt, ch.MaxAttempts-ch.Attempts
		} else if !now.Before(ch.ExpiresAt) {
			st.Expired = true
		}
	case !errors.Is(err, storage.ErrNotFound):
		return st, err
	}
	o := &pendingOTP{req: OTPRequest{Kind: OTPKindLogin, User: user, SessionID: sessionID}, now: now}
	for _, l := range p.sendLimits(o) {
		n, resetAt, err := p.store.PeekRateCounter(ctx, l.hit.Key, l.hit.Window)
		if err != nil {
			return st, err
		}
		// The next code would be hit n+1, refused past Max as storage
		// refuses it (RateHit.Refuses).
		if l.hit.Refuses(n+1) && resetAt.After(now) {
			st.NextCode = &TooManyAttemptsError{Limit: l.configKey, RetryAfter: resetAt.Sub(now), UserID: user.ID}
			break
		}
	}
	st.FailuresLeft, st.Locked, err = p.OTPFailuresLeft(ctx, user)
	return st, err
}

// OTPFailuresLeft peeks otp.max_failures_per_user for user without counting:
// how many more wrong codes (emailed, or of an authenticator, which count on
// the same counter) may be typed in the current otp.failure_window, and,
// when none may, the limit's *TooManyAttemptsError with its RetryAfter.
func (p *Provider) OTPFailuresLeft(ctx context.Context, user *storage.User) (int, *TooManyAttemptsError, error) {
	now := p.clock().UTC()
	limit := p.cfg.OTP.MaxFailuresPerUser
	n, resetAt, err := p.store.PeekRateCounter(ctx, otpFailureKey([]string{OTPKindLogin}, user.ID), p.cfg.OTP.FailureWindow)
	if err != nil {
		return 0, nil, err
	}
	if !resetAt.After(now) {
		return limit, nil, nil
	}
	if n >= limit {
		return 0, &TooManyAttemptsError{Limit: "otp.max_failures_per_user", RetryAfter: resetAt.Sub(now), UserID: user.ID}, nil
	}
	return limit - n, nil, nil
}
