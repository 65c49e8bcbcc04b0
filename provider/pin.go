package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpstep/otpstep/storage"
)

// The PACE PIN: a 4-digit secret a user sets with an account OTP and then
// re-authenticates with (CreateOTP, device TOTPs) instead of the password.

// Errors of the PIN; the web layer maps them in one place.
var (
	// ErrPINNotSecure means a new PIN breaks one of PACE's rules
	// (CheckPINRules); the wrapped message says which.
	ErrPINNotSecure = errors.New("PIN is not secure")
	// ErrPINOTPInvalid means the account OTP that authorises setting a PIN
	// did not match a live account code.
	ErrPINOTPInvalid = errors.New("account OTP is not valid for setting a PIN")
	// ErrNoPIN means the user has no PIN.
	ErrNoPIN = errors.New("user has no PIN")
)

// PINLength is the length of a PACE PIN.
const PINLength = 4

// MaxPINFailures is how many wrong PINs a user may try per
// otp.failure_window: a 4-digit PIN has 10,000 values, so 5 tries in a
// window guess it with a chance of 1 in 2,000.
const MaxPINFailures = 5

// pinLimit names the PIN's failure limit in a TooManyAttemptsError.
const pinLimit = "pin.max_failures_per_user"

// CheckPINRules applies PACE's rules for a new PIN (UpdateUserPIN: "must be
// 4 digits long, must use 3 different digits, must not be a numerical series
// (e.g. 1234, 4321, ...)"); a series is four digits each one more, or each
// one less, than the one before. A PIN breaking one is ErrPINNotSecure.
func CheckPINRules(pin string) error {
	if len(pin) != PINLength {
		return fmt.Errorf("%w: it must have %d digits", ErrPINNotSecure, PINLength)
	}
	distinct := map[byte]bool{}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return fmt.Errorf("%w: it must have only digits", ErrPINNotSecure)
		}
		distinct[pin[i]] = true
	}
	if len(distinct) < 3 {
		return fmt.Errorf("%w: it must use at least 3 different digits", ErrPINNotSecure)
	}
	up, down := true, true
	for i := 1; i < len(pin); i++ {
		up = up && pin[i] == pin[i-1]+1
		down = down && pin[i] == pin[i-1]-1
	}
	if up || down {
		return fmt.Errorf("%w: it must not be a series of digits", ErrPINNotSecure)
	}
	return nil
}

// SetPIN sets user's PIN, authorised by otp, a live account code of the user
// (CreateOTP, SendmailOTP). The rules come first (ErrPINNotSecure), so an
// insecure PIN spends no attempt of the code; then the code is verified as
// VerifyOTP with type account does (a wrong one spends an attempt and counts
// in otp.max_failures_per_user) and is ErrPINOTPInvalid, or a
// *TooManyAttemptsError; then the PIN is stored as an argon2id hash.
func (p *Provider) SetPIN(ctx context.Context, user *storage.User, pin, otp string) error {
	if err := CheckPINRules(pin); err != nil {
		return err
	}
	if _, err := p.VerifyOTP(ctx, []string{OTPKindAccount}, user, "", otp); err != nil {
		if errors.Is(err, ErrOTPMismatch) {
			return fmt.Errorf("%w: %w", ErrPINOTPInvalid, err)
		}
		return err
	}
	hash, err := p.hashPassword(ctx, pin)
	if err != nil {
		return err
	}
	if err := p.store.SetUserPIN(ctx, user.ID, hash); err != nil {
		return err
	}
	return p.Audit(ctx, AuditEvent{Type: AuditPINSet, UserID: user.ID})
}

// HasPIN reports whether the user has set a PIN.
func (p *Provider) HasPIN(ctx context.Context, userID string) (bool, error) {
	_, err := p.store.UserPINHash(ctx, userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// CheckPIN re-authenticates user with pin: nil when it is the user's PIN.
//
// Failures are limited per user, MaxPINFailures per otp.failure_window, in
// the database, so the limit holds across instances and under a burst: every
// check first reserves a failure, atomically, and a request whose
// reservation would pass the limit is a *TooManyAttemptsError without the
// PIN being compared. So however many requests arrive at once, no more PINs
// are compared than the limit allows. A wrong PIN (or a user without one,
// compared with a dummy hash for equal work) keeps its reservation and is
// ErrInvalidCredentials (a *CredentialsError); the right one, or an error
// before the comparison, gives it back.
func (p *Provider) CheckPIN(ctx context.Context, user *storage.User, pin string) error {
	hit := storage.RateHit{Key: "pin:user:" + user.ID, Window: p.cfg.OTP.FailureWindow, Max: MaxPINFailures}
	counts, reserved, err := p.store.ReserveRateCounters(ctx, hit)
	if err != nil {
		return err
	}
	if !reserved {
		return p.countRefusal(&TooManyAttemptsError{Limit: pinLimit, RetryAfter: counts[0].ResetAt.Sub(p.clock()), UserID: user.ID})
	}
	hash, err := p.store.UserPINHash(ctx, user.ID)
	hasPIN := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return errors.Join(err, p.giveBackLoginFailure(ctx, hit.Key, counts[0]))
	}
	if !hasPIN {
		hash = p.dummyHash
	}
	if len(pin) > 64 {
		pin = pin[:64]
	}
	if err := p.acquireHash(ctx); err != nil {
		return errors.Join(err, p.giveBackLoginFailure(ctx, hit.Key, counts[0]))
	}
	ok, err := p.comparePassword(pin, hash)
	p.releaseHash()
	switch {
	case err != nil:
		return errors.Join(fmt.Errorf("PIN hash of %s: %w", user.ID, err), p.giveBackLoginFailure(ctx, hit.Key, counts[0]))
	case !hasPIN:
		return &CredentialsError{Reason: "no PIN set", UserID: user.ID}
	case !ok || user.Disabled:
		return &CredentialsError{Reason: "wrong PIN", UserID: user.ID}
	}
	return p.store.ReleaseRateCounter(ctx, hit.Key, counts[0].ResetAt)
}
