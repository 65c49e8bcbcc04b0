package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const federatedTokenColumns = `ft.user_id, ft.provider, ft.subject, ft.sealed_tokens, ft.refresh_lease_id, ft.refresh_lease_until, ft.updated_at`

func federatedTokenDest(ft *FederatedToken) []any {
	return []any{&ft.UserID, &ft.Provider, &ft.Subject, &ft.Sealed, &ft.RefreshLeaseID, timeCol{&ft.RefreshLeaseUntil}, timeCol{&ft.UpdatedAt}}
}

// PutFederatedToken stores ft.Sealed as the tokens of the user's link at
// ft.Provider, replacing earlier ones and any refresh lease; UpdatedAt is set
// from the clock. The user having no link there, or one to another subject
// than ft.Subject, is ErrNotFound and stores nothing.
func (s *Store) PutFederatedToken(ctx context.Context, ft *FederatedToken) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		var subject string
		err := s.queryRow(ctx, `SELECT subject FROM linked_identities WHERE user_id = $1 AND provider = $2`,
			ft.UserID, ft.Provider).Scan(&subject)
		if err != nil {
			return scanErr(err, "linked identity")
		}
		if subject != ft.Subject {
			return notFound("linked identity of that subject")
		}
		now := s.nowUTC()
		// A concurrent unlink makes the insert fail on the foreign key
		// (ErrNotFound); a concurrent relink to another subject leaves rows
		// that GetFederatedToken no longer returns.
		_, err = s.exec(ctx, `INSERT INTO federated_tokens (user_id, provider, subject, sealed_tokens, refresh_lease_id, refresh_lease_until, updated_at)
			VALUES ($1, $2, $3, $4, '', NULL, $5)
			ON CONFLICT (user_id, provider) DO UPDATE SET subject = excluded.subject, sealed_tokens = excluded.sealed_tokens,
				refresh_lease_id = '', refresh_lease_until = NULL, updated_at = excluded.updated_at`,
			ft.UserID, ft.Provider, ft.Subject, ft.Sealed, s.timeArg(now))
		if err != nil {
			return fmt.Errorf("storage: put federated token: %w", err)
		}
		ft.RefreshLeaseID, ft.RefreshLeaseUntil, ft.UpdatedAt = "", time.Time{}, now
		return nil
	})
}

// GetFederatedToken returns the tokens of the user's link at provider, or
// ErrNotFound when there is no link, no tokens, or tokens of another subject
// than the link's now.
func (s *Store) GetFederatedToken(ctx context.Context, userID, provider string) (*FederatedToken, error) {
	var ft FederatedToken
	err := s.queryRow(ctx, `SELECT `+federatedTokenColumns+` FROM federated_tokens ft
		JOIN linked_identities li ON li.user_id = ft.user_id AND li.provider = ft.provider AND li.subject = ft.subject
		WHERE ft.user_id = $1 AND ft.provider = $2`, userID, provider).Scan(federatedTokenDest(&ft)...)
	if err != nil {
		return nil, scanErr(err, "federated token")
	}
	return &ft, nil
}

// LeaseFederatedTokenRefresh takes the refresh lease of the user's tokens at
// provider for leaseID until until, when no other lease is live (one
// conditional UPDATE, so of concurrent callers on any instance exactly one
// wins): true when taken. No tokens → ErrNotFound.
func (s *Store) LeaseFederatedTokenRefresh(ctx context.Context, userID, provider, leaseID string, until time.Time) (bool, error) {
	n, err := s.exec(ctx, `UPDATE federated_tokens SET refresh_lease_id = $3, refresh_lease_until = $4
		WHERE user_id = $1 AND provider = $2 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $5)`,
		userID, provider, leaseID, s.timeArg(until), s.timeArg(s.nowUTC()))
	if err != nil {
		return false, fmt.Errorf("storage: lease federated token refresh: %w", err)
	}
	if n == 1 {
		return true, nil
	}
	var one int
	err = s.queryRow(ctx, `SELECT 1 FROM federated_tokens WHERE user_id = $1 AND provider = $2`, userID, provider).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, notFound("federated token")
	}
	if err != nil {
		return false, scanErr(err, "federated token")
	}
	return false, nil
}

// CompleteFederatedTokenRefresh stores sealed as the refreshed tokens and
// ends the lease leaseID holds. The lease lost (expired and taken by another,
// or the tokens deleted) → ErrNotFound, nothing stored.
func (s *Store) CompleteFederatedTokenRefresh(ctx context.Context, userID, provider, leaseID string, sealed []byte) error {
	n, err := s.exec(ctx, `UPDATE federated_tokens SET sealed_tokens = $4, refresh_lease_id = '', refresh_lease_until = NULL, updated_at = $5
		WHERE user_id = $1 AND provider = $2 AND refresh_lease_id = $3`,
		userID, provider, leaseID, sealed, s.timeArg(s.nowUTC()))
	if err != nil {
		return fmt.Errorf("storage: complete federated token refresh: %w", err)
	}
	if n == 0 {
		return notFound("federated token refresh lease")
	}
	return nil
}

// ReleaseFederatedTokenRefresh ends the lease leaseID holds, keeping the
// tokens (a refresh that could not reach the upstream). A lease not held is
// no error.
func (s *Store) ReleaseFederatedTokenRefresh(ctx context.Context, userID, provider, leaseID string) error {
	_, err := s.exec(ctx, `UPDATE federated_tokens SET refresh_lease_id = '', refresh_lease_until = NULL
		WHERE user_id = $1 AND provider = $2 AND refresh_lease_id = $3`, userID, provider, leaseID)
	if err != nil {
		return fmt.Errorf("storage: release federated token refresh: %w", err)
	}
	return nil
}

// DeleteFederatedToken removes the tokens of the user's link at provider;
// none → ErrNotFound. Deleting the link deletes them too.
func (s *Store) DeleteFederatedToken(ctx context.Context, userID, provider string) error {
	n, err := s.exec(ctx, `DELETE FROM federated_tokens WHERE user_id = $1 AND provider = $2`, userID, provider)
	if err != nil {
		return fmt.Errorf("storage: delete federated token: %w", err)
	}
	if n == 0 {
		return notFound("federated token")
	}
	return nil
}
