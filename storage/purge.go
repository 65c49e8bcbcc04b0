package storage

import (
	"context"
	"fmt"
	"time"
)

// otpChallengeRetention is how long PurgeExpired keeps an OTP challenge after
// it expired.
const otpChallengeRetention = 24 * time.Hour

// defaultPurgeBatch is how many rows one of PurgeExpired's statements deletes
// at most.
const defaultPurgeBatch = 5000

// PurgeExpired deletes authorization codes, tokens, PKCE and OpenID Connect
// sessions, client-assertion JTIs and login sessions that expired before
// before, rate counters whose window ended before it, and OTP challenges that
// expired more than a day before it (a consumed or burned challenge is one
// whose expiry has not passed yet, so it is kept at least a day after it was
// used). It returns how many rows it deleted. Rows without an expiry (a
// refresh token issued without lifespan) are kept.
//
// It deletes in batches of at most 5,000 rows per statement (each its own
// transaction), table after table, reading each table's expiry index: under
// load a table can hold a million expired rows, and one statement deleting
// them all would hold their locks, and write their WAL, in one go. On
// PostgreSQL a batch skips the rows another purger has locked (FOR UPDATE
// SKIP LOCKED), so instances purging at the same time split the work instead
// of waiting for each other. A cancelled ctx stops it between batches with
// what it deleted so far.
func (s *Store) PurgeExpired(ctx context.Context, before time.Time) (int64, error) {
	purge := [...]struct {
		table, column string
		before        time.Time
	}{
		{"oauth2_authorization_codes", "expires_at", before},
		{"oauth2_access_tokens", "expires_at", before},
		{"oauth2_refresh_tokens", "expires_at", before},
		{"oauth2_pkce", "expires_at", before},
		{"oauth2_oidc_sessions", "expires_at", before},
		{"oauth2_jti", "expires_at", before},
		{"rate_counters", "reset_at", before},
		{"otp_challenges", "expires_at", before.Add(-otpChallengeRetention)},
	}
	var total int64
	for _, p := range purge {
		n, err := s.purgeTable(ctx, p.table, p.column, p.before)
		total += n
		if err != nil {
			return total, fmt.Errorf("storage: purge expired: %w", err)
		}
	}
	// An expired login session ends here: its back-channel logouts are
	// queued with its delete (purgeLoginSessions).
	batch := s.purgeBatch
	if batch <= 0 {
		batch = defaultPurgeBatch
	}
	n, err := s.purgeLoginSessions(ctx, before, batch)
	total += n
	if err != nil {
		return total, fmt.Errorf("storage: purge expired: %w", err)
	}
	n, err = s.purgeSettledBackchannelLogouts(ctx)
	total += n
	if err != nil {
		return total, fmt.Errorf("storage: purge expired: %w", err)
	}
	return total, nil
}

// PurgeAuditEvents deletes the audit events recorded before before, in
// batches as PurgeExpired does, and returns how many it deleted.
func (s *Store) PurgeAuditEvents(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.purgeTable(ctx, "audit_events", "at", before)
	if err != nil {
		return n, fmt.Errorf("storage: purge audit events: %w", err)
	}
	return n, nil
}

// purgeTable deletes table's rows whose column is before before, a batch
// (purgeSQL) at a time until one comes back short.
func (s *Store) purgeTable(ctx context.Context, table, column string, before time.Time) (int64, error) {
	batch := s.purgeBatch
	if batch <= 0 {
		batch = defaultPurgeBatch
	}
	query := s.purgeSQL(table, column)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.exec(ctx, query, s.timeArg(before), batch)
		if err != nil {
			return total, fmt.Errorf("%s: %w", table, err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// purgeSQL deletes up to $2 rows of table whose column is before $1. The rows
// are picked by their physical address (ctid, rowid), which every table has,
// from the column's index; on PostgreSQL as an ARRAY(subquery), run once,
// for the reason ClaimOutbox's is (claimOutboxSQL).
func (s *Store) purgeSQL(table, column string) string {
	if s.dialect == DialectPostgres {
		return `DELETE FROM ` + table + ` WHERE ctid = ANY(ARRAY(SELECT ctid FROM ` + table +
			` WHERE ` + column + ` < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`
	}
	return `DELETE FROM ` + table + ` WHERE rowid IN (SELECT rowid FROM ` + table +
		` WHERE ` + column + ` < $1 LIMIT $2)`
}
