package storage

import (
	"context"
	"fmt"
)

// SessionUpstream is the upstream identity a login session signed in with
// (sign-in with a partner).
type SessionUpstream struct {
	SessionID string
	Provider  string // the upstream's configured name
	Subject   string
	Email     string // informational, from the upstream
}

// SetSessionUpstream records the upstream identity su.SessionID signed in
// with, replacing one recorded before. An unknown session → ErrNotFound.
func (s *Store) SetSessionUpstream(ctx context.Context, su *SessionUpstream) error {
	_, err := s.exec(ctx, `INSERT INTO login_session_upstreams (session_id, provider, subject, email, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (session_id) DO UPDATE SET provider = excluded.provider, subject = excluded.subject,
			email = excluded.email, created_at = excluded.created_at`,
		su.SessionID, su.Provider, su.Subject, su.Email, s.timeArg(s.nowUTC()))
	if err != nil {
		return fmt.Errorf("storage: set session upstream: %w", err)
	}
	return nil
}

// GetSessionUpstream returns the upstream identity the session signed in
// with, or ErrNotFound when it did not sign in through one.
func (s *Store) GetSessionUpstream(ctx context.Context, sessionID string) (*SessionUpstream, error) {
	su := SessionUpstream{SessionID: sessionID}
	err := s.readRow(ctx, `SELECT provider, subject, email FROM login_session_upstreams WHERE session_id = $1`,
		sessionID).Scan(&su.Provider, &su.Subject, &su.Email)
	if err != nil {
		return nil, scanErr(err, "session upstream")
	}
	return &su, nil
}
