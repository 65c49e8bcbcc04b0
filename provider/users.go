package provider

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"

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
// come back.
type TooManyAttemptsError struct {
	Limit      string
	RetryAfter time.Duration
}

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many attempts (%s), retry after %s", e.Limit, e.RetryAfter)
}

// MinPasswordLength follows NIST SP 800-63B §5.1.1.2 (at least 8).
const MinPasswordLength = 8

// NewPasswordHash hashes a password with argon2id (PasswordParams).
func NewPasswordHash(password string) (string, error) {
	return argon2id.CreateHash(password, &PasswordParams)
}

// CreateUser validates and stores a new user with an argon2id password hash.
func (p *Provider) CreateUser(ctx context.Context, email, password string) (*storage.User, error) {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != strings.TrimSpace(email) {
		return nil, fmt.Errorf("%w: %q is not an email address", ErrInvalidInput, email)
	}
	if len(password) < MinPasswordLength {
		return nil, fmt.Errorf("%w: the password needs at least %d characters", ErrInvalidInput, MinPasswordLength)
	}
	if len(password) > 1024 {
		return nil, fmt.Errorf("%w: the password is longer than 1024 bytes", ErrInvalidInput)
	}
	hash, err := p.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &storage.User{Email: strings.ToLower(addr.Address), PasswordHash: hash}
	if err := p.store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
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

// Authenticate checks an email and password (the first factor). Failures are
// counted per account and per client IP in the database, so the limits hold
// across instances; past login.max_failures_per_* it answers
// *TooManyAttemptsError without checking the password.
func (p *Provider) Authenticate(ctx context.Context, email, password, ip string) (*storage.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	window := p.cfg.Login.FailureWindow
	accountKey := "login:account:" + email
	ipKey := "login:ip:" + ip
	for _, lim := range []struct {
		key, name string
		max       int
	}{
		{accountKey, "login.max_failures_per_account", p.cfg.Login.MaxFailuresPerAccount},
		{ipKey, "login.max_failures_per_ip", p.cfg.Login.MaxFailuresPerIP},
	} {
		n, resetAt, err := p.store.PeekRateCounter(ctx, lim.key, window)
		if err != nil {
			return nil, err
		}
		if n >= lim.max {
			return nil, &TooManyAttemptsError{Limit: lim.name, RetryAfter: resetAt.Sub(p.clock())}
		}
	}
	if len(password) > 1024 {
		password = password[:1024]
	}
	u, err := p.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	hash := p.dummyHash // equal work whether or not the account exists
	if u != nil {
		hash = u.PasswordHash
	}
	if err := p.acquireHash(ctx); err != nil {
		return nil, err
	}
	ok, cmpErr := argon2id.ComparePasswordAndHash(password, hash)
	p.releaseHash()
	if cmpErr != nil {
		return nil, fmt.Errorf("password hash of %s: %w", email, cmpErr)
	}
	if u == nil || !ok || u.Disabled {
		for _, key := range []string{accountKey, ipKey} {
			if _, _, err := p.store.HitRateCounter(ctx, key, window); err != nil {
				return nil, err
			}
		}
		reason := "wrong password"
		switch {
		case u == nil:
			reason = "unknown email"
		case u.Disabled && ok:
			reason = "account disabled"
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidCredentials, reason)
	}
	if err := p.store.ResetRateCounter(ctx, accountKey); err != nil {
		return nil, err
	}
	return u, nil
}
