package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/storage"
)

// Errors of the password step. Callers show one generic message for
// ErrInvalidCredentials whatever the real cause (unknown email, wrong
// password, disabled account): the cause is only logged.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrInvalidInput       = errors.New("invalid input")
)

// TooManyAttemptsError is a rate or attempt limit; RetryAfter says when to
// come back. UserID or IP is whom the limit counted, for the log (the user
// of an account limit only when the account exists).
type TooManyAttemptsError struct {
	Limit      string
	RetryAfter time.Duration
	UserID     string
	IP         string
}

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many attempts (%s), retry after %s", e.Limit, e.RetryAfter)
}

// LogValue is the limit key, whom it counted and the retry delay.
func (e *TooManyAttemptsError) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("limit", e.Limit)}
	if e.UserID != "" {
		attrs = append(attrs, slog.String("user_id", e.UserID))
	}
	if e.IP != "" {
		attrs = append(attrs, slog.String("ip", e.IP))
	}
	return slog.GroupValue(append(attrs, slog.Duration("retry_after", e.RetryAfter))...)
}

// CredentialsError is a refused first factor: it is ErrInvalidCredentials
// to every caller, and tells the log why and, when the account exists,
// whose (never the email or the password).
type CredentialsError struct {
	Reason string // unknown email, wrong password, account disabled
	UserID string
}

func (e *CredentialsError) Error() string { return ErrInvalidCredentials.Error() + ": " + e.Reason }

func (e *CredentialsError) Unwrap() error { return ErrInvalidCredentials }

// LogValue is the reason and the user id when there is one.
func (e *CredentialsError) LogValue() slog.Value {
	if e.UserID == "" {
		return slog.GroupValue(slog.String("reason", e.Reason))
	}
	return slog.GroupValue(slog.String("reason", e.Reason), slog.String("user_id", e.UserID))
}

// MinPasswordLength follows NIST SP 800-63B §5.1.1.2 (at least 8).
const MinPasswordLength = 8

// NewPasswordHash hashes a password with argon2id (PasswordParams).
func NewPasswordHash(password string) (string, error) {
	return argon2id.CreateHash(password, &PasswordParams)
}

// CreateUser validates and stores a new user with an argon2id password hash.
func (p *Provider) CreateUser(ctx context.Context, email, password string) (*storage.User, error) {
	return p.createUser(ctx, email, password, false)
}

// CreateVerifiedUser is CreateUser for an address the operator vouches for
// (otpstep users create --email-verified): email_verified is true from the
// start instead of from the first emailed code the user passes.
func (p *Provider) CreateVerifiedUser(ctx context.Context, email, password string) (*storage.User, error) {
	return p.createUser(ctx, email, password, true)
}

func (p *Provider) createUser(ctx context.Context, email, password string, verified bool) (*storage.User, error) {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != strings.TrimSpace(email) {
		return nil, fmt.Errorf("%w: %q is not an email address", ErrInvalidInput, email)
	}
	if err := checkPasswordRules(password); err != nil {
		return nil, err
	}
	hash, err := p.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &storage.User{Email: strings.ToLower(addr.Address), PasswordHash: hash, EmailVerified: verified}
	if err := p.store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// MaxPasswordLength bounds a password, in bytes (argon2id hashes any
// length; a bound keeps a request's work bounded).
const MaxPasswordLength = 1024

// checkPasswordRules is the one rule of a new password (CreateUser, a
// recovery): MinPasswordLength to MaxPasswordLength bytes.
func checkPasswordRules(password string) error {
	if len(password) < MinPasswordLength {
		return fmt.Errorf("%w: the password needs at least %d characters", ErrInvalidInput, MinPasswordLength)
	}
	if len(password) > MaxPasswordLength {
		return fmt.Errorf("%w: the password is longer than %d bytes", ErrInvalidInput, MaxPasswordLength)
	}
	return nil
}

func (p *Provider) hashPassword(ctx context.Context, password string) (string, error) {
	if err := p.acquireHash(ctx); err != nil {
		return "", err
	}
	defer p.releaseHash()
	return NewPasswordHash(password)
}

func (p *Provider) acquireHash(ctx context.Context) error {
	select {
	case p.hashes <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Provider) releaseHash() { <-p.hashes }

// Authenticate checks an email and password (the first factor): the one
// password check of the login page and of the API's re-authentication.
//
// Failures are limited per account (login.max_failures_per_account) and per
// client IP (login.max_failures_per_ip) in each login.failure_window, in the
// database, so the limits hold across instances and under a burst: every
// check first reserves a failure on both counters, atomically, and a request
// whose reservation would pass a limit answers *TooManyAttemptsError without
// the password being checked. So however many requests arrive at once, no
// more passwords are checked than the limits allow. A wrong password keeps its
// reservation (it is the failure); the right one resets the account's counter
// and gives the IP's reservation back; an error before the check gives both
// back.
func (p *Provider) Authenticate(ctx context.Context, email, password, ip string) (*storage.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	window := p.cfg.Login.FailureWindow
	// Always in this order (account, then IP), so that concurrent
	// reservations lock the counter rows in one order.
	limits := []struct {
		hit  storage.RateHit
		name string
	}{
		{storage.RateHit{Key: loginAccountKey(email), Window: window, Max: p.cfg.Login.MaxFailuresPerAccount}, "login.max_failures_per_account"},
		{storage.RateHit{Key: "login:ip:" + ip, Window: window, Max: p.cfg.Login.MaxFailuresPerIP}, "login.max_failures_per_ip"},
	}
	account, byIP := limits[0].hit, limits[1].hit
	counts, reserved, err := p.store.ReserveRateCounters(ctx, account, byIP)
	if err != nil {
		return nil, err
	}
	if !reserved {
		for i, l := range limits {
			if counts[i].Count > l.hit.Max {
				e := &TooManyAttemptsError{Limit: l.name, RetryAfter: counts[i].ResetAt.Sub(p.clock()), IP: ip}
				if i == 0 { // the account's counter is keyed by the email: name the user, if any
					e.IP = ""
					if u, err := p.store.GetUserByEmail(ctx, email); err == nil {
						e.UserID = u.ID
					}
				}
				p.metrics.Login(metrics.LoginLimited)
				return nil, p.countRefusal(e)
			}
		}
		return nil, fmt.Errorf("provider: login failure reservation refused within its limits: %v", counts)
	}
	u, ok, err := p.checkPassword(ctx, email, password)
	if err != nil {
		return nil, errors.Join(err, p.giveBackLoginFailure(ctx, account.Key, counts[0]), p.giveBackLoginFailure(ctx, byIP.Key, counts[1]))
	}
	if u == nil || !ok || u.Disabled {
		switch {
		case u == nil:
			p.metrics.Login(metrics.LoginUnknownUser)
			return nil, &CredentialsError{Reason: "unknown email"}
		case u.Disabled && ok:
			p.metrics.Login(metrics.LoginDisabled)
			return nil, &CredentialsError{Reason: "account disabled", UserID: u.ID}
		}
		p.metrics.Login(metrics.LoginWrongPassword)
		return nil, &CredentialsError{Reason: "wrong password", UserID: u.ID}
	}
	if err := p.store.ResetRateCounter(ctx, account.Key); err != nil {
		return nil, err
	}
	if err := p.store.ReleaseRateCounter(ctx, byIP.Key, counts[1].ResetAt); err != nil {
		return nil, err
	}
	p.metrics.Login(metrics.LoginSuccess)
	return u, nil
}

// loginAccountKey is the counter of login.max_failures_per_account.
func loginAccountKey(email string) string { return "login:account:" + email }

// checkPassword compares password with email's hash, or with a dummy hash
// when there is no such user (equal work whether or not the account
// exists), at most login.max_concurrent_hashes at a time. u is nil for an
// unknown email.
func (p *Provider) checkPassword(ctx context.Context, email, password string) (u *storage.User, ok bool, err error) {
	if len(password) > 1024 {
		password = password[:1024]
	}
	u, err = p.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, false, err
	}
	hash := p.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	if err := p.acquireHash(ctx); err != nil {
		return nil, false, err
	}
	ok, err = p.comparePassword(password, hash)
	p.releaseHash()
	if err != nil {
		return nil, false, fmt.Errorf("password hash of %s: %w", email, err)
	}
	return u, ok, nil
}

// giveBackTimeout bounds giving back a reservation whose request failed (its
// own context may be what ended it).
const giveBackTimeout = 5 * time.Second

// giveBackLoginFailure gives back a failure reserved on key for a password
// that was not checked.
func (p *Provider) giveBackLoginFailure(ctx context.Context, key string, reserved storage.RateCount) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	return p.store.ReleaseRateCounter(ctx, key, reserved.ResetAt)
}

// DisableUser disables a user at once, everywhere: in one transaction the
// user is marked disabled, every login session of the user ends and every
// code and token issued to the user is revoked (storage.DisableUser), with a
// user.disabled audit event. A missing user → storage.ErrNotFound.
func (p *Provider) DisableUser(ctx context.Context, userID string) error {
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.DisableUser(ctx, userID); err != nil {
			return err
		}
		return p.writeAudit(ctx, &AuditEvent{Type: AuditUserDisabled, UserID: userID})
	})
	if err == nil {
		p.notifyLogouts() // the back-channel logouts the end queued
	}
	return err
}
