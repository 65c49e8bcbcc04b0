package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/ory/fosite"
)

// An OTP challenge's scope is (kind, user_id, session_id); at most one
// challenge per scope is live (consumed_at and burned_at NULL), which a partial
// unique index enforces. Every state change below is one conditional UPDATE,
// so concurrent verifiers of one challenge (other goroutines, other processes)
// never spend more attempts than allowed nor consume it twice.

const otpChallengeColumns = `id, kind, user_id, session_id, client_id, code_hash, attempts, max_attempts,
	expires_at, consumed_at, burned_at, created_at`

// otpLiveScope is the WHERE clause of a scope's live challenge, $1..$3 being
// kind, user_id and session_id. It matches the partial unique index.
const otpLiveScope = `kind = $1 AND user_id = $2 AND session_id = $3 AND consumed_at IS NULL AND burned_at IS NULL`

// otpCreateAttempts bounds CreateOTPChallenge's burn-and-insert rounds when
// concurrent creates for the same scope keep taking the live slot.
const otpCreateAttempts = 3

func otpChallengeDest(ch *OTPChallenge) []any {
	return []any{&ch.ID, &ch.Kind, &ch.UserID, &ch.SessionID, &ch.ClientID, &ch.CodeHash,
		&ch.Attempts, &ch.MaxAttempts, timeCol{&ch.ExpiresAt}, nullTimeCol{&ch.ConsumedAt},
		nullTimeCol{&ch.BurnedAt}, timeCol{&ch.CreatedAt}}
}

// CreateOTPChallenge burns (BurnedAt = now) every live challenge of ch's scope
// (Kind, UserID, SessionID) and stores ch as the scope's live challenge, in
// one transaction (the one ctx carries, if any). An empty ID is filled with a
// random UUID and a zero CreatedAt is set from the clock; the stored values are
// written back into ch. An unknown UserID → ErrNotFound; an existing ID →
// ErrAlreadyExists.
//
// It MUST be atomic and safe against concurrent creates for the same scope:
// the insert is ON CONFLICT (the partial unique index) DO NOTHING, so a
// concurrent create that took the live slot first never aborts the caller's
// transaction; the burn and insert are then repeated (on PostgreSQL the retry's
// burn sees the other create's committed row). If the slot is still taken after
// a few rounds, the error matches fosite.ErrSerializationFailure: retry the
// whole operation.
func (s *Store) CreateOTPChallenge(ctx context.Context, ch *OTPChallenge) error {
	insert := s.insertOTPChallengeStmt(ch)
	return s.InTx(ctx, func(ctx context.Context) error {
		// The insert comes first: a scope without a live challenge (every new
		// login session) needs no burn. When the slot is taken, the burn and
		// the insert are repeated.
		for i := range otpCreateAttempts + 1 {
			if i > 0 {
				if _, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $4 WHERE `+otpLiveScope,
					ch.Kind, ch.UserID, ch.SessionID, s.timeArg(s.now())); err != nil {
					return fmt.Errorf("storage: create otp challenge: burn previous: %w", err)
				}
			}
			n, err := s.exec(ctx, insert.sql+otpLiveConflictDoNothing, insert.args...)
			if err != nil {
				return fmt.Errorf("storage: create otp challenge: %w", err)
			}
			if n == 1 {
				return nil
			}
		}
		return fmt.Errorf("storage: create otp challenge: concurrent creates for the same scope: %w",
			fosite.ErrSerializationFailure)
	})
}

// otpLiveConflictDoNothing makes insertOTPChallengeStmt's INSERT insert
// nothing while the scope has a live challenge.
const otpLiveConflictDoNothing = `
				ON CONFLICT (kind, user_id, session_id) WHERE consumed_at IS NULL AND burned_at IS NULL DO NOTHING`

// insertOTPChallengeStmt fills ch's ID and times as CreateOTPChallenge
// documents and returns its INSERT, which fails while the scope has a live
// challenge (unique violation) unless otpLiveConflictDoNothing is added.
func (s *Store) insertOTPChallengeStmt(ch *OTPChallenge) stmt {
	if ch.ID == "" {
		ch.ID = uuid.NewString()
	}
	if ch.CreatedAt.IsZero() {
		ch.CreatedAt = s.now()
	}
	ch.CreatedAt, ch.ExpiresAt = normTime(ch.CreatedAt), normTime(ch.ExpiresAt)
	codeHash := ch.CodeHash
	if codeHash == nil {
		codeHash = []byte{}
	}
	return stmt{`INSERT INTO otp_challenges (` + otpChallengeColumns + `)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		[]any{ch.ID, ch.Kind, ch.UserID, ch.SessionID, ch.ClientID, codeHash, ch.Attempts, ch.MaxAttempts,
			s.timeArg(ch.ExpiresAt), s.nullTimePtrArg(ch.ConsumedAt), s.nullTimePtrArg(ch.BurnedAt),
			s.timeArg(ch.CreatedAt)}}
}

// LiveOTPChallenge returns the live (neither consumed nor burned) challenge of
// the scope, even if it has expired; none → ErrNotFound.
func (s *Store) LiveOTPChallenge(ctx context.Context, kind, userID, sessionID string) (*OTPChallenge, error) {
	var ch OTPChallenge
	err := s.queryRow(ctx, `SELECT `+otpChallengeColumns+` FROM otp_challenges WHERE `+otpLiveScope,
		kind, userID, sessionID).Scan(otpChallengeDest(&ch)...)
	if err != nil {
		return nil, scanErr(err, "otp challenge")
	}
	return &ch, nil
}

// BurnOTPChallenge ends a live challenge without consuming it (BurnedAt = now).
// Burning a missing, consumed or already burned challenge changes nothing and
// is not an error.
func (s *Store) BurnOTPChallenge(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $2
		WHERE id = $1 AND consumed_at IS NULL AND burned_at IS NULL`, id, s.timeArg(s.now()))
	if err != nil {
		return fmt.Errorf("storage: burn otp challenge: %w", err)
	}
	return nil
}

// BurnOTPChallenges burns the live challenge(s) of a scope, e.g. once its
// login session passed the second factor. None is not an error.
func (s *Store) BurnOTPChallenges(ctx context.Context, kind, userID, sessionID string) error {
	_, err := s.exec(ctx, `UPDATE otp_challenges SET burned_at = $4 WHERE `+otpLiveScope,
		kind, userID, sessionID, s.timeArg(s.now()))
	if err != nil {
		return fmt.Errorf("storage: burn otp challenges: %w", err)
	}
	return nil
}

// TryOTPChallenge records one verification try on challenge id: one attempt
// is spent and, when consume is true (the caller found the code right), the
// challenge is consumed by the same statement. It returns the attempts spent
// so far, this one included. ok is false, with no error and nothing changed,
// when the challenge is missing, consumed, burned, expired (ExpiresAt not
// after the store clock) or has no attempts left.
//
// It MUST be atomic: one conditional UPDATE, so of N concurrent callers on a
// challenge with m attempts left exactly min(N, m) get ok, and of concurrent
// consuming callers at most one gets ok (single use). Inside a transaction the
// row stays locked until it ends.
func (s *Store) TryOTPChallenge(ctx context.Context, id string, consume bool) (attempts int, ok bool, err error) {
	now := s.nowUTC()
	var consumedAt any // NULL: the WHERE clause has it NULL already, so nothing changes
	if consume {
		consumedAt = s.timeArg(now)
	}
	err = s.queryRow(ctx, `UPDATE otp_challenges SET attempts = attempts + 1, consumed_at = $2
		WHERE id = $1 AND consumed_at IS NULL AND burned_at IS NULL AND attempts < max_attempts AND expires_at > $3
		RETURNING attempts`, id, consumedAt, s.timeArg(now)).Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("storage: try otp challenge: %w", classify(err))
	}
	return attempts, true, nil
}

// The statements below write login_sessions and rate_counters, but only OTP
// verification uses them; they live here, next to the challenge they go with.
