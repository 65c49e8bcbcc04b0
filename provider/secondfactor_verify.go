package provider

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// VerifyOTP checks code against the live challenges of the given kinds
// ("login" is the challenge of session sessionID, "account" the user's).
// It answers nil when a challenge matched and was consumed by this call,
// ErrOTPMismatch, or *TooManyAttemptsError. A matched login challenge passes
// the session's second factor.
func (p *Provider) VerifyOTP(ctx context.Context, kinds []string, user *storage.User, sessionID, code string) (string, error) {
	now := p.clock().UTC()
	failKey := "otp:failures:" + user.ID
	// otp.max_failures_per_user per otp.failure_window, across sessions and
	// instances: a try is reserved atomically before it is made, and the
	// reservation is given back when the code matches or no try happened.
	n, resetAt, err := p.store.HitRateCounter(ctx, failKey, p.cfg.OTP.FailureWindow)
	if err != nil {
		return "", err
	}
	if n > p.cfg.OTP.MaxFailuresPerUser {
		if n == p.cfg.OTP.MaxFailuresPerUser+1 {
			_ = p.Audit(ctx, AuditEvent{Type: "user.locked_out", UserID: user.ID, SessionID: sessionID})
		}
		return "", &TooManyAttemptsError{Limit: "otp.max_failures_per_user", RetryAfter: resetAt.Sub(now)}
	}
	giveBack := func() {
		if err := p.store.UndoRateCounterHit(ctx, failKey); err != nil {
			p.log.ErrorContext(ctx, "otp failure counter not restored", "user_id", user.ID, "err", err)
		}
	}
	normalized, wellFormed := normalizeOTP(code)
	tried, exhausted := false, false
	for _, kind := range kinds {
		var scopeSession string
		switch kind {
		case OTPKindLogin:
			if sessionID == "" {
				continue
			}
			scopeSession = sessionID
		case OTPKindAccount:
		default: // totp, device-totp: accepted, nothing to match until TOTP exists
			continue
		}
		ch, err := p.store.LiveOTPChallenge(ctx, kind, user.ID, scopeSession)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		// RFC 6238 §5.2 / seed: a code is valid until expiresAt only.
		if !now.Before(ch.ExpiresAt) {
			_ = p.store.BurnOTPChallenge(ctx, ch.ID)
			p.log.InfoContext(ctx, "otp expired", "challenge_id", ch.ID, "user_id", user.ID)
			continue
		}
		// otp.max_attempts per challenge: the attempt is spent atomically
		// (UPDATE … WHERE attempts < max_attempts) before the comparison.
		attempts, ok, err := p.store.SpendOTPAttempt(ctx, ch.ID)
		if err != nil {
			return "", err
		}
		if !ok {
			exhausted = true
			continue
		}
		tried = true
		if wellFormed && p.otpHash.matches(ch.CodeHash, ch.ID, kind, scopeSession, user.ID, normalized) {
			// Single use: exactly one caller consumes it.
			won, err := p.store.ConsumeOTPChallenge(ctx, ch.ID)
			if err != nil {
				return "", err
			}
			if !won {
				continue
			}
			giveBack()
			if kind == OTPKindLogin {
				if err := p.passSecondFactor(ctx, sessionID); err != nil {
					return "", err
				}
			}
			_ = p.Audit(ctx, AuditEvent{Type: "otp.verify_passed", UserID: user.ID, SessionID: sessionID, ClientID: ch.ClientID, Detail: map[string]any{"kind": kind}})
			return kind, nil
		}
		if attempts >= ch.MaxAttempts {
			// Burned: no attempt is left, so SpendOTPAttempt refuses every
			// further try (429) until a new challenge replaces this one.
			_ = p.Audit(ctx, AuditEvent{Type: "otp.challenge_burned", UserID: user.ID, SessionID: sessionID, Detail: map[string]any{"kind": kind, "reason": "max_attempts"}})
		}
	}
	if !tried {
		giveBack()
		if exhausted {
			// Seed/API.md: a burned challenge answers 429 until a new one is requested.
			retry := p.cfg.OTP.ResendInterval
			if retry < time.Second {
				retry = time.Second
			}
			return "", &TooManyAttemptsError{Limit: "otp.max_attempts", RetryAfter: retry}
		}
	}
	_ = p.Audit(ctx, AuditEvent{Type: "otp.verify_failed", UserID: user.ID, SessionID: sessionID, Detail: map[string]any{"kinds": kinds}})
	return "", ErrOTPMismatch
}

// passSecondFactor marks a login session as having passed the OTP
// (amr gains "otp", acr becomes aal2) and burns its live login challenge.
func (p *Provider) passSecondFactor(ctx context.Context, sessionID string) error {
	return p.store.InTx(ctx, func(ctx context.Context) error {
		ls, err := p.store.GetLoginSession(ctx, sessionID)
		if err != nil {
			return err
		}
		ls.PassedLoginOTP = true
		if !slices.Contains(ls.AMR, AMROTP) {
			ls.AMR = append(ls.AMR, AMROTP)
		}
		if err := p.store.UpdateLoginSession(ctx, ls); err != nil {
			return err
		}
		return p.store.BurnOTPChallenges(ctx, OTPKindLogin, ls.UserID, sessionID)
	})
}
