package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
)

// RFC 7523 §3: "The JWT MAY contain a "jti" (JWT ID) claim that provides a
// unique identifier for the token. The authorization server MAY ensure that
// JWTs are not replayed by maintaining the set of used "jti" values for the
// length of time for which the JWT would be considered valid".

// ClientAssertionJWTValid implements fosite.ClientManager: fosite.ErrJTIKnown
// when jti was seen and has not expired yet, nil otherwise.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var exp time.Time
	err := s.queryRow(ctx, `SELECT expires_at FROM oauth2_jti WHERE jti = $1`, jti).Scan(timeCol{&exp})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("storage: check client assertion jti: %w", classify(err))
	case exp.After(s.now()):
		return fmt.Errorf("storage: %w", fosite.ErrJTIKnown)
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager: it deletes expired
// JTIs, then records jti until exp. A jti that is still known →
// fosite.ErrJTIKnown. Both steps run in one transaction.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `DELETE FROM oauth2_jti WHERE expires_at <= $1`, s.timeArg(s.now())); err != nil {
			return fmt.Errorf("storage: purge client assertion jtis: %w", err)
		}
		// ON CONFLICT DO NOTHING rather than a unique violation: on PostgreSQL a
		// failed statement would abort the caller's transaction.
		n, err := s.exec(ctx, `INSERT INTO oauth2_jti (jti, expires_at) VALUES ($1, $2)
			ON CONFLICT (jti) DO NOTHING`, jti, s.timeArg(exp))
		if err != nil {
			return fmt.Errorf("storage: record client assertion jti: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("storage: %w", fosite.ErrJTIKnown)
		}
		return nil
	})
}
