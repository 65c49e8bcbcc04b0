package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

const userColumns = `id, email, password_hash, disabled, created_at, updated_at, email_verified`

func userDest(u *User) []any {
	return []any{&u.ID, &u.Email, &u.PasswordHash, &u.Disabled, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &u.EmailVerified}
}

// CreateUser stores a new user. An empty ID is filled with a random UUID; the
// email is lower-cased; CreatedAt and UpdatedAt are set from the clock. The
// stored values are written back into u. A user with the same email (in any
// case) → ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	if u.ID == "" {
		u.ID = uuid.NewString()
	}
	u.Email = strings.ToLower(u.Email)
	now := s.nowUTC()
	u.CreatedAt, u.UpdatedAt = now, now
	_, err := s.exec(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Email, u.PasswordHash, u.Disabled, s.timeArg(now), s.timeArg(now), u.EmailVerified)
	if err != nil {
		return fmt.Errorf("storage: create user %q: %w", u.Email, err)
	}
	return nil
}

// GetUser returns the user with this ID, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	err := s.readRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id).Scan(userDest(&u)...)
	if err != nil {
		return nil, scanErr(err, "user")
	}
	return &u, nil
}

// GetUserByEmail returns the user with this email, compared case-insensitively,
// or ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*User, error) {
	var u User
	err := s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`,
		strings.ToLower(email)).Scan(userDest(&u)...)
	if err != nil {
		return nil, scanErr(err, "user")
	}
	return &u, nil
}

// ListUsers returns every user, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("storage: list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		var u User
		if err := rows.Scan(userDest(&u)...); err != nil {
			return nil, fmt.Errorf("storage: list users: %w", classify(err))
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list users: %w", classify(err))
	}
	return users, nil
}

// SetEmailVerified marks the user's email address as proven. It is one
// conditional UPDATE that touches only a user not yet verified, so the
// common case (already verified) writes and locks nothing. A missing user
// is not an error: there is nothing left to mark.
func (s *Store) SetEmailVerified(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1 AND NOT email_verified`,
		id, s.timeArg(s.now()))
	if err != nil {
		return fmt.Errorf("storage: set email verified: %w", err)
	}
	return nil
}

// SetUserDisabled enables or disables a user and bumps UpdatedAt. A missing
// user → ErrNotFound.
func (s *Store) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	n, err := s.exec(ctx, `UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1`,
		id, disabled, s.timeArg(s.now()))
	if err != nil {
		return fmt.Errorf("storage: set user disabled: %w", err)
	}
	if n == 0 {
		return notFound("user")
	}
	return nil
}
