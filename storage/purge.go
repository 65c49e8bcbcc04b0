package storage

import (
	"context"
	"fmt"
	"time"
)

// PurgeExpired deletes authorization codes, tokens, PKCE and OpenID Connect
// sessions, client-assertion JTIs and login sessions that expired before
// before, and rate counters whose window ended before it. It returns how many
// rows it deleted. Each table is purged by its own statement, so a concurrent
// request is never blocked for the whole purge.
func (s *Store) PurgeExpired(ctx context.Context, before time.Time) (int64, error) {
	// Rows without an expiry (a refresh token issued without lifespan) are kept.
	purge := [...]string{
		`DELETE FROM oauth2_authorization_codes WHERE expires_at < $1`,
		`DELETE FROM oauth2_access_tokens WHERE expires_at < $1`,
		`DELETE FROM oauth2_refresh_tokens WHERE expires_at < $1`,
		`DELETE FROM oauth2_pkce WHERE expires_at < $1`,
		`DELETE FROM oauth2_oidc_sessions WHERE expires_at < $1`,
		`DELETE FROM oauth2_jti WHERE expires_at < $1`,
		`DELETE FROM login_sessions WHERE expires_at < $1`,
		`DELETE FROM rate_counters WHERE reset_at < $1`,
	}
	var total int64
	arg := s.timeArg(before)
	for _, q := range purge {
		n, err := s.exec(ctx, q, arg)
		if err != nil {
			return total, fmt.Errorf("storage: purge expired: %w", err)
		}
		total += n
	}
	return total, nil
}
