package storage

import (
	"context"
	"fmt"
)

// PasswordReset is what an account recovery stores once its code matched and
// a new password was chosen: the user's new password hash, replacing the one
// the recovery began with, the recovered login session, and the audit events.
type PasswordReset struct {
	UserID string
	// OldPasswordHash is the hash the recovery saw when its code matched;
	// the reset applies only while it is still the user's, so a recovery
	// sets a password once (a second try, or a try after any other change,
	// finds another hash).
	OldPasswordHash string
	NewPasswordHash string
	// Session is created with Recovered set (its ID and times are filled as
	// CreateLoginSession does).
	Session *LoginSession
	Events  []*AuditEvent
}

// ResetPassword stores r in one transaction: the user's password hash becomes
// r.NewPasswordHash if it is still r.OldPasswordHash and the user is not
// disabled; then every login session of the user ends (see ends: its live
// challenges of every kind are burned, every code and token whose subject is
// the user is revoked), r.Session is created as the user's one live session,
// marked Recovered, and r.Events are recorded. A missing or disabled user, or
// a password hash that changed since → ErrNotFound, and nothing changes.
//
// Locks are taken in the ends' order: the user's row (the UPDATE) first.
func (s *Store) ResetPassword(ctx context.Context, r *PasswordReset) error {
	if r.Session == nil || r.Session.UserID != r.UserID {
		return fmt.Errorf("storage: reset password: the session is not the user's")
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		now := s.timeArg(s.nowUTC())
		n, err := s.exec(ctx, `UPDATE users SET password_hash = $3, updated_at = $4
			WHERE id = $1 AND password_hash = $2 AND disabled = FALSE`, r.UserID, r.OldPasswordHash, r.NewPasswordHash, now)
		if err != nil {
			return fmt.Errorf("storage: reset password: %w", err)
		}
		if n == 0 {
			return notFound("user with that password hash")
		}
		if _, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $2
			WHERE user_id = $1 AND consumed_at IS NULL AND burned_at IS NULL`, r.UserID, now); err != nil {
			return fmt.Errorf("storage: reset password: burn challenges: %w", err)
		}
		if _, err := s.exec(ctx, `UPDATE login_sessions SET ended_at = $2, updated_at = $2
			WHERE user_id = $1 AND ended_at IS NULL`, r.UserID, now); err != nil {
			return fmt.Errorf("storage: reset password: end login sessions: %w", err)
		}
		if err := s.revokeGrants(ctx, "subject", r.UserID); err != nil {
			return err
		}
		r.Session.Recovered = true
		if err := s.CreateLoginSession(ctx, r.Session); err != nil {
			return err
		}
		return s.AddAuditEvents(ctx, r.Events...)
	})
}
