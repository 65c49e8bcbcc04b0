package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// UpsertExternalUser makes sure a user that an embedding host authenticates
// (the host owns the account and its password) has a row, so that login
// sessions, OTP challenges and linked identities can refer to it:
//
//   - no user with u.ID → one is created with that ID, the email lower-cased,
//     no password hash, not disabled; CreatedAt and UpdatedAt from the clock;
//   - a user with u.ID → its email is set to u.Email (UpdatedAt bumped only
//     when the email changed); PasswordHash and Disabled are never touched,
//     so a user disabled in otpstep stays disabled;
//   - u.Email belongs to another user → ErrAlreadyExists, nothing changes.
//
// u is filled with the stored row. An empty ID or email is an error. It is one
// atomic statement (INSERT … ON CONFLICT (id) DO UPDATE … RETURNING), so
// concurrent upserts of one user cannot fail each other.
func (s *Store) UpsertExternalUser(ctx context.Context, u *User) error {
	if u.ID == "" {
		return errors.New("storage: upsert external user: empty id")
	}
	if u.Email == "" {
		return errors.New("storage: upsert external user: empty email")
	}
	now := s.nowUTC()
	var err error
	// Two first upserts of one user race on PostgreSQL: the loser's insert
	// can trip the email index (not the ON CONFLICT arbiter) before it sees
	// the winner's row. Once the winner committed, a retry takes the
	// ON CONFLICT path. Inside a caller's transaction the error stands (it
	// aborted the transaction).
	for attempt := 0; attempt < 3; attempt++ {
		err = s.queryRow(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, '', FALSE, $3, $3, FALSE)
		ON CONFLICT (id) DO UPDATE SET
			email = excluded.email,
			updated_at = CASE WHEN users.email = excluded.email THEN users.updated_at ELSE excluded.updated_at END
		RETURNING `+userColumns,
			u.ID, strings.ToLower(u.Email), s.timeArg(now)).Scan(userDest(u)...)
		if err == nil || s.txFrom(ctx) != nil || !errors.Is(classify(err), ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("storage: upsert external user %q: %w", u.ID, classify(err))
	}
	return nil
}
