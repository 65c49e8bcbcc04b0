package provider

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/storage"
)

// VerifyOTP checks code against the live challenges of the given kinds
// ("login" is the challenge of session sessionID, "account" the user's),
// each kind once however often it is named.
// It answers nil when a challenge matched and was consumed by this call,
// ErrOTPMismatch, ErrSessionNotFound (a login code matched but its session
// expired or ended meanwhile), or *TooManyAttemptsError. A matched login
// challenge passes the session's second factor.
//
// Everything a verification writes is one transaction: the failure counter,
// the attempt, the consumption, the session and the audit events. A refused
// or failed try commits too (what it counted stays counted); only an error of
// the store itself rolls it back. Rows are locked in one order, so concurrent
// verifications and PUT /sessions never deadlock: the user's failure counter,
// then the scopes' challenges (in the order of kinds), then the login session.
func (p *Provider) VerifyOTP(ctx context.Context, kinds []string, user *storage.User, sessionID, code string) (string, error) {
	kinds = distinctKinds(kinds)
	var (
		matched, verdict string
		outcome          error
	)
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		matched, verdict, outcome, err = p.verifyOTPInTx(ctx, kinds, user, sessionID, code, false)
		return err
	})
	if err != nil {
		return "", err
	}
	p.metrics.Verified(verdict)
	if outcome == nil && emailedKind(matched) {
		p.markEmailVerified(ctx, user)
	}
	return matched, p.countRefusal(outcome)
}

// markEmailVerified records that user proved the address: every code this
// provider verifies was emailed to it (OpenID Connect Core §5.1
// email_verified: "the End-User's e-mail address has been verified"). It
// runs after the verification's transaction, not in it: that transaction
// locks the challenge and the session, and taking the user's row there
// would lock in the opposite order of users disable. A failure is logged;
// the claim then stays false until the next code passes.
func (p *Provider) markEmailVerified(ctx context.Context, user *storage.User) {
	if user.EmailVerified {
		return
	}
	if err := p.store.SetEmailVerified(ctx, user.ID); err != nil {
		p.log.ErrorContext(ctx, "email_verified not recorded", "user_id", user.ID, "err", err)
		return
	}
	user.EmailVerified = true
}

// distinctKinds is kinds without repeats, in the order each is first named.
// API.md: types is a set, duplicates count once; so a request tries each
// challenge once and spends at most one attempt of it, however often it
// names its kind.
func distinctKinds(kinds []string) []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// PassLoginOTPInBrowser is VerifyOTP of a login code typed into the OTP page
// of the browser holding session sessionID. On a match, the same transaction
// replaces the session's browser key, which it returns in ls.BrowserKey for
// the new cookie: the step up to aal2 happens under a new cookie value, and a
// copy of the old one opens nothing.
func (p *Provider) PassLoginOTPInBrowser(ctx context.Context, user *storage.User, ls *storage.LoginSession, code string) error {
	return p.passInBrowser(ctx, OTPKindLogin, user, ls, code)
}

// PassLoginTOTPInBrowser is PassLoginOTPInBrowser for a code of the user's
// authenticator app (a confirmed authenticator TOTP, ±1 step, each step
// once) instead of the emailed one: a match passes session ls (amr gains
// "otp"), burns its emailed login code and replaces the browser key (in
// ls.BrowserKey). A wrong code is ErrOTPMismatch and counts in
// otp.max_failures_per_user (*TooManyAttemptsError past it); a session that
// expired or ended is ErrSessionNotFound.
func (p *Provider) PassLoginTOTPInBrowser(ctx context.Context, user *storage.User, ls *storage.LoginSession, code string) error {
	return p.passInBrowser(ctx, OTPKindTOTP, user, ls, code)
}

func (p *Provider) passInBrowser(ctx context.Context, kind string, user *storage.User, ls *storage.LoginSession, code string) error {
	var fresh storage.LoginSession
	if err := p.issueBrowserKey(&fresh); err != nil {
		return err
	}
	var (
		outcome error
		verdict string
	)
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		var (
			out error
			err error
		)
		_, verdict, out, err = p.verifyOTPInTx(ctx, []string{kind}, user, ls.ID, code, true)
		if err != nil || out != nil {
			outcome = out
			return err
		}
		return p.store.SetLoginSessionBrowserKey(ctx, ls.ID, fresh.BrowserKeyHash)
	})
	if err != nil {
		return err
	}
	p.metrics.Verified(verdict)
	if outcome != nil {
		return p.countRefusal(outcome)
	}
	ls.BrowserKey, ls.BrowserKeyHash = fresh.BrowserKey, fresh.BrowserKeyHash
	if emailedKind(kind) {
		p.markEmailVerified(ctx, user)
	}
	return nil
}

// emailedKind says whether a code of kind came by email (so its match
// proves the address); a TOTP's does not.
func emailedKind(kind string) bool {
	return kind == OTPKindLogin || kind == OTPKindAccount || kind == OTPKindRecovery
}

// verifyOTPInTx is VerifyOTP inside its transaction. It returns the matched
// kind or the caller's answer (outcome), and the verdict for the
// verifications metric (metrics.Verify*), with err nil so that the
// transaction commits; err is a store error that rolls it back. A matched
// TOTP passes session sessionID too (passSessionByTOTP; requireSession: a
// session otpstep does not hold is ErrSessionNotFound).
func (p *Provider) verifyOTPInTx(ctx context.Context, kinds []string, user *storage.User, sessionID, code string, requireSession bool) (matched, verdict string, outcome, err error) {
	now := p.clock().UTC()
	failKey := otpFailureKey(kinds, user.ID)
	// otp.max_failures_per_user per otp.failure_window, across sessions and
	// instances: the check comes first and keeps the user's counter row
	// locked until commit, so one user's verifications run one at a time and
	// a try is counted (below) before the next one is checked.
	if verdict, outcome, err := p.checkOTPFailures(ctx, failKey, user, sessionID, now); err != nil || outcome != nil {
		return "", verdict, outcome, err
	}
	normalized, wellFormed := normalizeOTP(code)
	tried, exhausted, expired := false, false, false
	attemptsLeft := -1 // of the first challenge tried; -1: none
	var events []*AuditEvent
	for _, kind := range kinds {
		var scopeSession string
		switch kind {
		case OTPKindLogin:
			if sessionID == "" {
				continue
			}
			scopeSession = sessionID
		case OTPKindAccount, OTPKindRecovery:
		case OTPKindTOTP, OTPKindDeviceTOTP:
			c, triedTOTP, err := p.verifyTOTPInTx(ctx, kind, user, now, code)
			if err != nil {
				return "", "", nil, err
			}
			tried = tried || triedTOTP
			if c == nil {
				continue
			}
			if outcome, err := p.passSessionByTOTP(ctx, user, sessionID, c, requireSession); err != nil || outcome != nil {
				return "", metrics.VerifyWrong, outcome, err
			}
			err = p.writeAudit(ctx, &AuditEvent{Type: AuditOTPVerifyPassed, UserID: user.ID, SessionID: sessionID,
				Detail: map[string]any{"kind": kind, "method": kind, "totp_id": c.ID, "device_id": c.DeviceID}})
			if err != nil {
				return "", "", nil, err
			}
			return kind, metrics.VerifyPassed, nil, nil
		default:
			continue
		}
		ch, err := p.store.LiveOTPChallenge(ctx, kind, user.ID, scopeSession)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", "", nil, err
		}
		// RFC 6238 §5.2 / docs/pace-update-session.txt: a code is valid until expiresAt only.
		if !now.Before(ch.ExpiresAt) {
			if err := p.store.BurnOTPChallenge(ctx, ch.ID); err != nil {
				return "", "", nil, err
			}
			p.log.InfoContext(ctx, "otp expired", "challenge_id", ch.ID, "user_id", user.ID)
			expired = true
			continue
		}
		// otp.max_attempts per challenge. docs/api.md: a challenge without
		// attempts left is burned for the caller, who gets 429 until a new
		// one is requested.
		if ch.Attempts >= ch.MaxAttempts {
			exhausted = true
			continue
		}
		// The code hash is keyed with the challenge's ID, so it is compared
		// here, before the write: the attempt is spent and, on a match, the
		// challenge consumed by one conditional UPDATE, which also refuses a
		// challenge that was consumed, burned, expired or used up since it
		// was read (single use, attempts never above max_attempts).
		match := wellFormed && p.otpHash.matches(ch.CodeHash, ch.ID, kind, scopeSession, user.ID, normalized)
		attempts, ok, err := p.store.TryOTPChallenge(ctx, ch.ID, match)
		if err != nil {
			return "", "", nil, err
		}
		if !ok {
			p.log.InfoContext(ctx, "otp challenge changed while verified", "challenge_id", ch.ID, "user_id", user.ID)
			continue
		}
		tried = true
		if match {
			if kind == OTPKindLogin {
				// The consumed challenge was its scope's only live one (the
				// partial unique index), so no login challenge of the
				// session is left to burn.
				err := p.store.PassLoginSession(ctx, sessionID, user.ID, AMROTP)
				if errors.Is(err, storage.ErrNotFound) {
					// The session expired or ended after its code was sent:
					// the code is spent, the session stays gone (404, not a
					// store error that would roll the try back every time).
					p.log.InfoContext(ctx, "otp matched for a login session that is gone", "challenge_id", ch.ID, "user_id", user.ID)
					return "", metrics.VerifyExpired, ErrSessionNotFound, nil
				}
				if errors.Is(err, storage.ErrSessionRecovered) {
					// Never lifted by an emailed code (recovery.go): the
					// code is spent, the session stays at aal1.
					p.log.InfoContext(ctx, "otp matched for a recovered login session", "challenge_id", ch.ID, "user_id", user.ID)
					return "", metrics.VerifyWrong, ErrRecoveredSession, nil
				}
				if err != nil {
					return "", "", nil, err
				}
			}
			err := p.writeAudit(ctx, &AuditEvent{Type: AuditOTPVerifyPassed, UserID: user.ID, SessionID: sessionID,
				ClientID: ch.ClientID, Detail: map[string]any{"kind": kind, "method": "email"}})
			if err != nil {
				return "", "", nil, err
			}
			return kind, metrics.VerifyPassed, nil, nil
		}
		if attemptsLeft < 0 {
			attemptsLeft = max(ch.MaxAttempts-attempts, 0)
		}
		if attempts >= ch.MaxAttempts {
			// Burned: no attempt is left, so every further try answers 429
			// until a new challenge replaces this one.
			events = append(events, &AuditEvent{Type: AuditOTPChallengeBurned, UserID: user.ID, SessionID: sessionID,
				Detail: map[string]any{"kind": kind, "reason": "max_attempts"}})
		}
	}
	if tried {
		if err := p.store.CountRateCounterHit(ctx, failKey); err != nil {
			return "", "", nil, err
		}
	} else if exhausted {
		// docs/api.md: a burned challenge answers 429 until a new one is requested.
		retry := p.cfg.OTP.ResendInterval
		if retry < time.Second {
			retry = time.Second
		}
		return "", metrics.VerifyBurned, &TooManyAttemptsError{Limit: "otp.max_attempts", RetryAfter: retry, UserID: user.ID}, nil
	}
	events = append(events, &AuditEvent{Type: AuditOTPVerifyFailed, UserID: user.ID, SessionID: sessionID,
		Detail: map[string]any{"kinds": kinds}})
	if err := p.writeAudit(ctx, events...); err != nil {
		return "", "", nil, err
	}
	verdict = metrics.VerifyWrong
	if expired && !tried {
		verdict = metrics.VerifyExpired
	}
	if tried && attemptsLeft >= 0 {
		return "", verdict, &OTPMismatchError{AttemptsLeft: attemptsLeft}, nil
	}
	return "", verdict, ErrOTPMismatch, nil
}

// otpFailureKey is the counter of otp.max_failures_per_user for a
// verification of kinds: the user's recovery codes count apart
// ("recovery:failures:"), so that tries at an address's recovery code, which
// anyone who knows the address can make, never lock the user's sign-in
// codes; every other verification counts on "otp:failures:".
func otpFailureKey(kinds []string, userID string) string {
	if len(kinds) == 1 && kinds[0] == OTPKindRecovery {
		return "recovery:failures:" + userID
	}
	return "otp:failures:" + userID
}

// writeAudit records events in one statement, inside the verification's
// transaction: unlike Audit, a failure fails the verification, since the
// transaction cannot commit without it on PostgreSQL.
func (p *Provider) writeAudit(ctx context.Context, events ...*AuditEvent) error {
	at := p.clock().UTC()
	for _, e := range events {
		if e.At.IsZero() {
			e.At = at
		}
	}
	if err := p.store.AddAuditEvents(ctx, events...); err != nil {
		p.log.ErrorContext(ctx, "audit events not recorded", "type", events[0].Type, "err", err)
		return err
	}
	return nil
}

// passSecondFactor marks userID's live login session sessionID as having
// passed the OTP (amr gains "otp", acr becomes aal2) and burns its live login
// challenge, with events, in one transaction; a session that is missing,
// expired or another user's → ErrSessionNotFound, nothing changed. Its rows
// are locked in VerifyOTP's order: the challenge before the session.
func (p *Provider) passSecondFactor(ctx context.Context, sessionID, userID string, events ...*AuditEvent) error {
	return p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.BurnOTPChallenges(ctx, OTPKindLogin, userID, sessionID); err != nil {
			return err
		}
		err := p.store.PassLoginSession(ctx, sessionID, userID, AMROTP)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrSessionNotFound
		}
		if errors.Is(err, storage.ErrSessionRecovered) {
			return ErrRecoveredSession
		}
		if err != nil {
			return err
		}
		return p.writeAudit(ctx, events...)
	})
}
