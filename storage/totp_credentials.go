package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Kinds of TOTPCredential.
const (
	// TOTPKindDevice is a device TOTP: PACE's CreateTOTP made it for the
	// device that named it (DeviceID); it is usable at once.
	TOTPKindDevice = "device"
	// TOTPKindAuthenticator is an authenticator app's TOTP, enrolled by the
	// user; it is usable once confirmed with a first code.
	TOTPKindAuthenticator = "authenticator"
)

// TOTPCredential is one TOTP secret of a user (RFC 6238). The secret is
// sealed by the provider; this package never sees it in the clear.
type TOTPCredential struct {
	ID        string // set by the caller (the seal is bound to it) or, if empty, by CreateTOTPCredential
	UserID    string
	Kind      string // TOTPKindDevice or TOTPKindAuthenticator
	DeviceID  string // a device TOTP's device (the JSON:API id it sent); "" for an authenticator
	Sealed    []byte
	Period    int    // seconds per time step
	Digits    int    // code length
	Algorithm string // the HMAC hash: SHA1, SHA256 or SHA512
	// ConfirmedAt is when the first code was accepted; zero for an
	// authenticator whose enrollment is not confirmed yet. A device TOTP is
	// confirmed when it is made.
	ConfirmedAt time.Time
	// LastUsedStep is the time step of the last code accepted, nil when
	// none was: a code of this step or an earlier one is refused.
	LastUsedStep *int64
	CreatedAt    time.Time
}

const totpCredentialColumns = `id, user_id, kind, device_id, sealed_secret, period, digits, algorithm, confirmed_at, last_used_step, created_at`

func totpCredentialDest(c *TOTPCredential) []any {
	return []any{&c.ID, &c.UserID, &c.Kind, &c.DeviceID, &c.Sealed, &c.Period, &c.Digits, &c.Algorithm,
		timeCol{&c.ConfirmedAt}, &c.LastUsedStep, timeCol{&c.CreatedAt}}
}

// CreateTOTPCredential stores c, setting CreatedAt from the clock (and ID
// when empty); LastUsedStep starts nil. A device TOTP replaces the one of
// the same user and DeviceID, if any, whole (id, secret, parameters and
// used step): one atomic upsert, so concurrent creations for a device leave
// exactly one. An unconfirmed authenticator replaces the user's other
// unconfirmed ones (an enrollment begun again), in one transaction; confirmed
// ones stay. An unknown user → ErrNotFound.
func (s *Store) CreateTOTPCredential(ctx context.Context, c *TOTPCredential) error {
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Kind != TOTPKindDevice && c.Kind != TOTPKindAuthenticator {
		return fmt.Errorf("storage: create totp credential: unknown kind %q", c.Kind)
	}
	if c.Kind == TOTPKindAuthenticator {
		c.DeviceID = ""
	}
	now := s.nowUTC()
	return s.InTx(ctx, func(ctx context.Context) error {
		if c.Kind == TOTPKindAuthenticator && c.ConfirmedAt.IsZero() {
			if _, err := s.exec(ctx, `DELETE FROM totp_credentials WHERE user_id = $1 AND kind = $2 AND confirmed_at IS NULL`,
				c.UserID, TOTPKindAuthenticator); err != nil {
				return fmt.Errorf("storage: create totp credential: %w", err)
			}
		}
		_, err := s.exec(ctx, `INSERT INTO totp_credentials (`+totpCredentialColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)
			ON CONFLICT (user_id, device_id) WHERE kind = 'device' DO UPDATE SET id = excluded.id,
				sealed_secret = excluded.sealed_secret, period = excluded.period, digits = excluded.digits,
				algorithm = excluded.algorithm, confirmed_at = excluded.confirmed_at, last_used_step = NULL,
				created_at = excluded.created_at`,
			c.ID, c.UserID, c.Kind, c.DeviceID, c.Sealed, c.Period, c.Digits, c.Algorithm,
			s.nullTimeArg(c.ConfirmedAt), s.timeArg(now))
		if err != nil {
			return fmt.Errorf("storage: create totp credential: %w", err)
		}
		c.CreatedAt, c.LastUsedStep = now, nil
		c.ConfirmedAt = nullableNorm(c.ConfirmedAt)
		return nil
	})
}

// nullableNorm is t as stored: the zero time stays zero.
func nullableNorm(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return normTime(t)
}

// GetTOTPCredential returns the user's credential id; another user's, or
// none → ErrNotFound.
func (s *Store) GetTOTPCredential(ctx context.Context, userID, id string) (*TOTPCredential, error) {
	var c TOTPCredential
	err := s.queryRow(ctx, `SELECT `+totpCredentialColumns+` FROM totp_credentials WHERE id = $1 AND user_id = $2`,
		id, userID).Scan(totpCredentialDest(&c)...)
	if err != nil {
		return nil, scanErr(err, "totp credential")
	}
	return &c, nil
}

// ListTOTPCredentials returns the user's credentials of kind ("" for
// every kind), confirmed or not, oldest first.
func (s *Store) ListTOTPCredentials(ctx context.Context, userID, kind string) ([]TOTPCredential, error) {
	q, args := `SELECT `+totpCredentialColumns+` FROM totp_credentials WHERE user_id = $1`, []any{userID}
	if kind != "" {
		q, args = q+` AND kind = $2`, append(args, kind)
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: list totp credentials: %w", err)
	}
	defer rows.Close()
	var out []TOTPCredential
	for rows.Next() {
		var c TOTPCredential
		if err := rows.Scan(totpCredentialDest(&c)...); err != nil {
			return nil, fmt.Errorf("storage: list totp credentials: %w", classify(err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list totp credentials: %w", classify(err))
	}
	return out, nil
}

// UseTOTPStep records that a code of time step step was accepted for
// credential id, when no code of that step or a later one was (RFC 6238
// §5.2: a verifier must not accept the second attempt of the same OTP). It
// is one conditional UPDATE, so of concurrent uses of a step on any
// instance exactly one gets true; false means the step (or a later one) was
// used already, or the credential is gone.
func (s *Store) UseTOTPStep(ctx context.Context, id string, step int64) (bool, error) {
	n, err := s.exec(ctx, `UPDATE totp_credentials SET last_used_step = $2
		WHERE id = $1 AND (last_used_step IS NULL OR last_used_step < $2)`, id, step)
	if err != nil {
		return false, fmt.Errorf("storage: use totp step: %w", err)
	}
	return n == 1, nil
}

// ConfirmTOTPCredential confirms the user's unconfirmed credential id with
// the accepted code's time step: confirmed_at is set from the clock and the
// step is used (as UseTOTPStep), in one conditional UPDATE. A credential
// that is another user's, gone, confirmed already, or whose step (or a
// later one) was used → ErrNotFound, nothing changed.
func (s *Store) ConfirmTOTPCredential(ctx context.Context, userID, id string, step int64) error {
	n, err := s.exec(ctx, `UPDATE totp_credentials SET confirmed_at = $3, last_used_step = $4
		WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL AND (last_used_step IS NULL OR last_used_step < $4)`,
		id, userID, s.timeArg(s.nowUTC()), step)
	if err != nil {
		return fmt.Errorf("storage: confirm totp credential: %w", err)
	}
	if n == 0 {
		return notFound("unconfirmed totp credential")
	}
	return nil
}

// DeleteTOTPCredential removes the user's credential id; another user's, or
// none → ErrNotFound.
func (s *Store) DeleteTOTPCredential(ctx context.Context, userID, id string) error {
	n, err := s.exec(ctx, `DELETE FROM totp_credentials WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("storage: delete totp credential: %w", err)
	}
	if n == 0 {
		return notFound("totp credential")
	}
	return nil
}
