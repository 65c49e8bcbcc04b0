package storage

import (
	"context"
	"fmt"
	"time"
)

// AddSigningKey stores a new signing key. A zero CreatedAt is set from the
// clock. An existing key with the same KID → ErrAlreadyExists.
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	k.CreatedAt = normTime(k.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_jwk, created_at, retired_at, publish_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.KID, k.Algorithm, k.PublicJWK, k.SealedJWK, s.timeArg(k.CreatedAt),
		s.nullTimePtrArg(k.RetiredAt), s.nullTimePtrArg(k.PublishUntil))
	if err != nil {
		return fmt.Errorf("storage: add signing key %q: %w", k.KID, err)
	}
	return nil
}

// ListSigningKeys returns every stored key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.query(ctx, `SELECT kid, algorithm, public_jwk, sealed_jwk, created_at, retired_at, publish_until
		FROM signing_keys ORDER BY created_at DESC, kid DESC`)
	if err != nil {
		return nil, fmt.Errorf("storage: list signing keys: %w", err)
	}
	defer rows.Close()
	var keys []SigningKey
	for rows.Next() {
		var k SigningKey
		if err := rows.Scan(&k.KID, &k.Algorithm, &k.PublicJWK, &k.SealedJWK, timeCol{&k.CreatedAt},
			nullTimeCol{&k.RetiredAt}, nullTimeCol{&k.PublishUntil}); err != nil {
			return nil, fmt.Errorf("storage: list signing keys: %w", classify(err))
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list signing keys: %w", classify(err))
	}
	return keys, nil
}

// RetireSigningKeys sets RetiredAt and PublishUntil on every key of
// algorithm alg ("" = of every algorithm) that is not retired yet, except
// exceptKID (the key that signs from now on). It is one atomic statement;
// keys already retired keep their dates.
func (s *Store) RetireSigningKeys(ctx context.Context, alg, exceptKID string, retiredAt, publishUntil time.Time) error {
	_, err := s.exec(ctx, `UPDATE signing_keys SET retired_at = $2, publish_until = $3
		WHERE kid <> $1 AND retired_at IS NULL AND ($4 = '' OR algorithm = $4)`,
		exceptKID, s.timeArg(retiredAt), s.timeArg(publishUntil), alg)
	if err != nil {
		return fmt.Errorf("storage: retire signing keys: %w", err)
	}
	return nil
}

// DeleteUnpublishedSigningKeys deletes retired keys whose PublishUntil is
// before now: they have left the JWKS and no token they signed is still valid.
func (s *Store) DeleteUnpublishedSigningKeys(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM signing_keys WHERE publish_until IS NOT NULL AND publish_until < $1`, s.timeArg(now))
	if err != nil {
		return fmt.Errorf("storage: delete unpublished signing keys: %w", err)
	}
	return nil
}
