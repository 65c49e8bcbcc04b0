package storage

import (
	"context"
	"fmt"
)

// SetUserPIN stores hash (an argon2id encoding) as the user's PIN, replacing
// the one before. An unknown user → ErrNotFound.
func (s *Store) SetUserPIN(ctx context.Context, userID, hash string) error {
	_, err := s.exec(ctx, `INSERT INTO user_pins (user_id, pin_hash, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET pin_hash = excluded.pin_hash, updated_at = excluded.updated_at`,
		userID, hash, s.timeArg(s.nowUTC()))
	if err != nil {
		return fmt.Errorf("storage: set user pin: %w", err)
	}
	return nil
}

// UserPINHash returns the hash of the user's PIN, or ErrNotFound when the
// user has none.
func (s *Store) UserPINHash(ctx context.Context, userID string) (string, error) {
	var hash string
	if err := s.readRow(ctx, `SELECT pin_hash FROM user_pins WHERE user_id = $1`, userID).Scan(&hash); err != nil {
		return "", scanErr(err, "user pin")
	}
	return hash, nil
}
