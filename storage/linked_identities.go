package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

const linkedIdentityColumns = `id, user_id, provider, subject, email, created_at`

func linkedIdentityDest(li *LinkedIdentity) []any {
	return []any{&li.ID, &li.UserID, &li.Provider, &li.Subject, &li.Email, timeCol{&li.CreatedAt}}
}

// CreateLinkedIdentity links a user to a partner account. An empty ID is filled
// with a random UUID and CreatedAt is set from the clock; the stored values are
// written back into li. The (Provider, Subject) already linked (to anyone), or
// the user already having a link at Provider → ErrAlreadyExists; an unknown
// UserID → ErrNotFound.
func (s *Store) CreateLinkedIdentity(ctx context.Context, li *LinkedIdentity) error {
	if li.ID == "" {
		li.ID = uuid.NewString()
	}
	li.CreatedAt = s.nowUTC()
	_, err := s.exec(ctx, `INSERT INTO linked_identities (`+linkedIdentityColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		li.ID, li.UserID, li.Provider, li.Subject, li.Email, s.timeArg(li.CreatedAt))
	if err != nil {
		return fmt.Errorf("storage: create linked identity: %w", err)
	}
	return nil
}

// UpsertLinkedIdentity makes li.Subject the user's link at li.Provider:
//
//   - (Provider, Subject) linked to another user → ErrAlreadyExists, nothing changes;
//   - already the user's link → nothing changes (idempotent);
//   - the user has another Subject at Provider → that link is replaced: it keeps
//     its ID, and Subject, Email and CreatedAt (now) are overwritten;
//   - otherwise a new link is created as by CreateLinkedIdentity.
//
// li is filled with the stored row. An unknown UserID → ErrNotFound. It MUST
// be atomic: the check and the INSERT … ON CONFLICT (user_id, provider) DO
// UPDATE run in one transaction, and the unique indexes settle races (a
// concurrent link of the subject to another user makes the write fail with
// ErrAlreadyExists, which on PostgreSQL aborts an enclosing transaction).
func (s *Store) UpsertLinkedIdentity(ctx context.Context, li *LinkedIdentity) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		var cur LinkedIdentity
		err := s.queryRow(ctx, `SELECT `+linkedIdentityColumns+` FROM linked_identities
			WHERE provider = $1 AND subject = $2`, li.Provider, li.Subject).Scan(linkedIdentityDest(&cur)...)
		switch {
		case err == nil && cur.UserID != li.UserID:
			return fmt.Errorf("storage: upsert linked identity: %s subject linked to another user: %w",
				li.Provider, ErrAlreadyExists)
		case err == nil:
			*li = cur
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("storage: upsert linked identity: %w", classify(err))
		}
		id := li.ID
		if id == "" {
			id = uuid.NewString()
		}
		now := s.nowUTC()
		err = s.queryRow(ctx, `INSERT INTO linked_identities (`+linkedIdentityColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (user_id, provider) DO UPDATE SET
				subject = excluded.subject, email = excluded.email, created_at = excluded.created_at
			RETURNING `+linkedIdentityColumns,
			id, li.UserID, li.Provider, li.Subject, li.Email, s.timeArg(now)).Scan(linkedIdentityDest(li)...)
		if err != nil {
			return fmt.Errorf("storage: upsert linked identity: %w", classify(err))
		}
		return nil
	})
}

// GetLinkedIdentityBySubject returns the link of a partner account, or ErrNotFound.
func (s *Store) GetLinkedIdentityBySubject(ctx context.Context, provider, subject string) (*LinkedIdentity, error) {
	var li LinkedIdentity
	err := s.queryRow(ctx, `SELECT `+linkedIdentityColumns+` FROM linked_identities
		WHERE provider = $1 AND subject = $2`, provider, subject).Scan(linkedIdentityDest(&li)...)
	if err != nil {
		return nil, scanErr(err, "linked identity")
	}
	return &li, nil
}

// ListLinkedIdentities returns a user's links ordered by Provider (none: nil).
func (s *Store) ListLinkedIdentities(ctx context.Context, userID string) ([]LinkedIdentity, error) {
	rows, err := s.query(ctx, `SELECT `+linkedIdentityColumns+` FROM linked_identities
		WHERE user_id = $1 ORDER BY provider`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: list linked identities: %w", err)
	}
	defer rows.Close()
	var out []LinkedIdentity
	for rows.Next() {
		var li LinkedIdentity
		if err := rows.Scan(linkedIdentityDest(&li)...); err != nil {
			return nil, fmt.Errorf("storage: list linked identities: %w", classify(err))
		}
		out = append(out, li)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list linked identities: %w", classify(err))
	}
	return out, nil
}

// DeleteLinkedIdentity removes the user's link at provider; none → ErrNotFound.
func (s *Store) DeleteLinkedIdentity(ctx context.Context, userID, provider string) error {
	n, err := s.exec(ctx, `DELETE FROM linked_identities WHERE user_id = $1 AND provider = $2`, userID, provider)
	if err != nil {
		return fmt.Errorf("storage: delete linked identity: %w", err)
	}
	if n == 0 {
		return notFound("linked identity")
	}
	return nil
}

// HasLinkedIdentity reports whether the user has a link at one of providers;
// no providers means at any provider.
func (s *Store) HasLinkedIdentity(ctx context.Context, userID string, providers []string) (bool, error) {
	q := `SELECT 1 FROM linked_identities WHERE user_id = $1`
	args := []any{userID}
	if len(providers) > 0 {
		marks := make([]string, len(providers))
		for i, p := range providers {
			args = append(args, p)
			marks[i] = "$" + strconv.Itoa(i+2)
		}
		q += ` AND provider IN (` + strings.Join(marks, ", ") + `)`
	}
	var one int
	err := s.queryRow(ctx, q+` LIMIT 1`, args...).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("storage: has linked identity: %w", classify(err))
	}
	return true, nil
}
