package storage

import (
	"context"
	"fmt"
	"time"
)

// otpChallengeRetention is how long PurgeExpired keeps an OTP challenge after
// it expired, was consumed or was burned.
const otpChallengeRetention = 24 * time.Hour

// PurgeExpired deletes authorization codes, tokens, PKCE and OpenID Connect
// sessions, client-assertion JTIs and login sessions that expired before
// before, rate counters whose window ended before it, and OTP challenges that
// expired, were consumed or were burned more than a day before it. It returns
// how many rows it deleted. Each table is purged by its own statement, so a
// concurrent request is never blocked for the whole purge.
func (s *Store) PurgeExpired(ctx context.Context, before time.Time) (int64, error) {
	// Rows without an expiry (a refresh token issued without lifespan) are kept.
	purge := [...]struct {
		query  string
		before time.Time
	}{
		{`DELETE FROM oauth2_authorization_codes WHERE expires_at < $1`, before},
		{`DELETE FROM oauth2_access_tokens WHERE expires_at < $1`, before},
		{`DELETE FROM oauth2_refresh_tokens WHERE expires_at < $1`, before},
		{`DELETE FROM oauth2_pkce WHERE expires_at < $1`, before},
		{`DELETE FROM oauth2_oidc_sessions WHERE expires_at < $1`, before},
		{`DELETE FROM oauth2_jti WHERE expires_at < $1`, before},
		{`DELETE FROM login_sessions WHERE expires_at < $1`, before},
		{`DELETE FROM rate_counters WHERE reset_at < $1`, before},
		{`DELETE FROM otp_challenges WHERE expires_at < $1 OR consumed_at < $1 OR burned_at < $1`,
			before.Add(-otpChallengeRetention)},
	}
	var total int64
	for _, p := range purge {
		n, err := s.exec(ctx, p.query, s.timeArg(p.before))
		if err != nil {
			return total, fmt.Errorf("storage: purge expired: %w", err)
		}
		total += n
	}
	return total, nil
}
