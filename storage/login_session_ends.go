package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"
)

// Ends are final. A login session that is logged out, or whose user is
// disabled, ends once and for all, in one transaction with everything issued
// under it: its live challenges are burned, its row is marked ended (and
// kept until it expires, so the id is never taken again), and its
// authorization codes and refresh tokens are marked inactive and its access
// tokens deleted. Token reads need no further check: nothing of an ended
// session is left active, on any instance, and nothing caches token rows.
//
// Locks are taken in one order, so ends, verifications and grants never
// deadlock: the user's row, then the challenges, then the session, then the
// tokens. A grant (a code exchange or a refresh, grantCheck) takes the user's
// row shared before it writes, and refuses an ended session or a disabled
// user; an end takes the same row exclusively first. So a grant and an end
// on the same user run one after the other, whatever instance runs them: a
// grant that commits first has its new tokens revoked by the end; one that
// comes second sees the end and issues nothing.
//
// An end also queues, in its transaction, a back-channel logout for every
// client that got tokens for the session (enqueueBackchannelLogouts), so
// none is lost when the process stops right after.

// ErrGrantEnded is what a grant of an ended session or a disabled user fails
// with. It matches fosite.ErrNotFound, so fosite answers invalid_grant.
var ErrGrantEnded = fmt.Errorf("storage: the grant's login session ended or its user is disabled: %w", fosite.ErrNotFound)

// EndLoginSession ends login session id for good (see above): a logout. A
// missing or already ended session → ErrNotFound, and nothing changes; an
// expired one ends like a live one (its tokens may still be live).
func (s *Store) EndLoginSession(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		var userID string
		if err := s.queryRow(ctx, `SELECT user_id FROM login_sessions WHERE id = $1 AND ended_at IS NULL`, id).Scan(&userID); err != nil {
			return scanErr(err, "login session")
		}
		if err := s.lockUser(ctx, userID, "NO KEY UPDATE"); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		now := s.timeArg(s.nowUTC())
		if _, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $3
			WHERE kind = 'login' AND user_id = $1 AND session_id = $2 AND consumed_at IS NULL AND burned_at IS NULL`,
			userID, id, now); err != nil {
			return fmt.Errorf("storage: end login session: burn challenges: %w", err)
		}
		if err := s.enqueueBackchannelLogouts(ctx, `ls.id = $1`, id); err != nil {
			return err
		}
		n, err := s.exec(ctx, `UPDATE login_sessions SET ended_at = $2, updated_at = $2 WHERE id = $1 AND ended_at IS NULL`, id, now)
		if err != nil {
			return fmt.Errorf("storage: end login session: %w", err)
		}
		if n == 0 {
			return notFound("login session")
		}
		return s.revokeGrants(ctx, "session_id", id)
	})
}

// DisableUser disables user id and ends every login session of the user
// (see above), in one transaction: the user's live challenges of every kind
// are burned and every code and token whose subject is the user is revoked.
// A missing user → ErrNotFound.
func (s *Store) DisableUser(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		now := s.timeArg(s.nowUTC())
		// The UPDATE takes the user's row first, as every end does.
		n, err := s.exec(ctx, `UPDATE users SET disabled = TRUE, updated_at = $2 WHERE id = $1`, id, now)
		if err != nil {
			return fmt.Errorf("storage: disable user: %w", err)
		}
		if n == 0 {
			return notFound("user")
		}
		if _, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $2
			WHERE user_id = $1 AND consumed_at IS NULL AND burned_at IS NULL`, id, now); err != nil {
			return fmt.Errorf("storage: disable user: burn challenges: %w", err)
		}
		if err := s.enqueueBackchannelLogouts(ctx, `ls.user_id = $1 AND ls.ended_at IS NULL`, id); err != nil {
			return err
		}
		if _, err := s.exec(ctx, `UPDATE login_sessions SET ended_at = $2, updated_at = $2
			WHERE user_id = $1 AND ended_at IS NULL`, id, now); err != nil {
			return fmt.Errorf("storage: disable user: end login sessions: %w", err)
		}
		return s.revokeGrants(ctx, "subject", id)
	})
}

// revokeGrants revokes every code and token whose column (session_id or
// subject) is value: codes and refresh tokens become inactive (a later use is
// a replay to fosite), access tokens are deleted (as RevokeAccessToken does).
func (s *Store) revokeGrants(ctx context.Context, column, value string) error {
	for _, q := range []string{
		`UPDATE oauth2_authorization_codes SET active = FALSE WHERE ` + column + ` = $1 AND active`,
		`UPDATE oauth2_refresh_tokens SET active = FALSE WHERE ` + column + ` = $1 AND active`,
		`DELETE FROM oauth2_access_tokens WHERE ` + column + ` = $1`,
	} {
		if _, err := s.exec(ctx, q, value); err != nil {
			return fmt.Errorf("storage: revoke the grants of a %s: %w", column, err)
		}
	}
	return nil
}

// lockUser locks user id's row in mode (PostgreSQL's SHARE or NO KEY
// UPDATE) until the transaction in ctx ends. SQLite needs no row lock: its
// transactions hold the database's write lock from BEGIN. A missing user →
// ErrNotFound.
func (s *Store) lockUser(ctx context.Context, id, mode string) error {
	q := `SELECT disabled FROM users WHERE id = $1`
	if s.dialect == DialectPostgres {
		q += ` FOR ` + mode
	}
	var disabled bool
	if err := s.queryRow(ctx, q, id).Scan(&disabled); err != nil {
		return scanErr(err, "user")
	}
	if disabled && mode == "SHARE" {
		return ErrGrantEnded
	}
	return nil
}

// grantCheck is what a code exchange or a refresh does before its first
// write, in its transaction: it takes the row of the user the grant (table's
// row under signature) names, shared, and refuses a disabled user or an ended
// login session with ErrGrantEnded. A grant of no user (client credentials)
// or of no session passes; an unknown signature is left to the caller.
func (s *Store) grantCheck(ctx context.Context, table, signature string) error {
	var subject, sessionID string
	err := s.queryRow(ctx, `SELECT subject, session_id FROM `+table+` WHERE signature = $1`, signature).Scan(&subject, &sessionID)
	if err != nil {
		if isNotFound(scanErr(err, "grant")) {
			return nil
		}
		return scanErr(err, "grant")
	}
	if subject != "" {
		if err := s.lockUser(ctx, subject, "SHARE"); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if sessionID == "" {
		return nil
	}
	// A statement after the lock: it sees every end committed before.
	var ended bool
	err = s.queryRow(ctx, `SELECT ended_at IS NOT NULL FROM login_sessions WHERE id = $1`, sessionID).Scan(&ended)
	switch {
	case err == nil && ended:
		return ErrGrantEnded
	case err == nil || isNotFound(scanErr(err, "login session")):
		// Live, or expired and purged: tokens outlive their login session.
		return nil
	}
	return scanErr(err, "login session")
}

// LoginSessionEnded reports whether login session id was ended (and not yet
// purged); a live, expired or unknown one is not.
func (s *Store) LoginSessionEnded(ctx context.Context, id string) (bool, error) {
	var ended bool
	err := s.readRow(ctx, `SELECT ended_at IS NOT NULL FROM login_sessions WHERE id = $1`, id).Scan(&ended)
	if err != nil {
		if err = scanErr(err, "login session"); isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return ended, nil
}
