package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"
)

// NewSessionChallenge is what PUT /sessions/{id} stores for a login session
// that does not exist yet: the session, its first challenge, the challenge's
// mail and the request's audit events, limited by the rate-counter hits.
type NewSessionChallenge struct {
	Session   *LoginSession
	Hits      []RateHit // at least one
	Challenge *OTPChallenge
	Mail      *OutboxMessage
	Events    []*AuditEvent
}

// CreateSessionChallenge stores c in one transaction: the session
// (CreateLoginSession), the hits (HitRateCounters), the challenge
// (CreateOTPChallenge), the mail (EnqueueOutbox) and the events
// (AddAuditEvents), as those would, with their defaults written back into c.
// check gets the hits' counts in order and decides: an error from it rolls
// everything back, counts included, and is returned as it is. A taken session
// ID → ErrAlreadyExists, nothing stored, check not called.
//
// On PostgreSQL opened with Open, outside a caller's transaction, the
// transaction is pipelined on the native pool: BEGIN and every statement go
// in one round trip, COMMIT or ROLLBACK in a second (check then sees the
// counts after the inserts, which the rollback undoes). Elsewhere those
// methods are called one after another in InTx, check before the challenge.
// Either way the same rows are written, and the counter rows stay locked
// until the transaction ends, so concurrent requests see each other's hits.
func (s *Store) CreateSessionChallenge(ctx context.Context, c *NewSessionChallenge, check func([]RateCount) error) error {
	if len(c.Hits) == 0 {
		return errors.New("storage: create session challenge: no rate-counter hits")
	}
	if c.Challenge.SessionID != c.Session.ID || c.Challenge.UserID != c.Session.UserID {
		return errors.New("storage: create session challenge: the challenge is not the session's")
	}
	if s.reads != nil && s.txFrom(ctx) == nil {
		return s.createSessionChallengePipelined(ctx, c, check)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateLoginSession(ctx, c.Session); err != nil {
			return err
		}
		counts, err := s.HitRateCounters(ctx, c.Hits...)
		if err != nil {
			return err
		}
		if err := check(counts); err != nil {
			return err
		}
		if err := s.CreateOTPChallenge(ctx, c.Challenge); err != nil {
			return err
		}
		if err := s.EnqueueOutbox(ctx, c.Mail); err != nil {
			return err
		}
		return s.AddAuditEvents(ctx, c.Events...)
	})
}

// createSessionChallengePipelined is CreateSessionChallenge on the native
// PostgreSQL pool: the statements of CreateLoginSession, HitRateCounters,
// CreateOTPChallenge (its insert: a new session has no challenge to burn),
// EnqueueOutbox and AddAuditEvents after a BEGIN in one batch, then COMMIT
// or ROLLBACK. A connection left inside the transaction (a failed ROLLBACK)
// is closed by the pool on release.
func (s *Store) createSessionChallengePipelined(ctx context.Context, c *NewSessionChallenge, check func([]RateCount) error) error {
	stmts := []stmt{s.createLoginSessionStmt(c.Session), s.hitRateCountersStmt(c.Hits),
		s.insertOTPChallengeStmt(c.Challenge), s.enqueueOutboxStmt(c.Mail)}
	if len(c.Events) > 0 {
		audit, err := s.addAuditEventsStmt(c.Events)
		if err != nil {
			return fmt.Errorf("storage: create session challenge: %w", err)
		}
		stmts = append(stmts, audit)
	}
	conn, err := s.reads.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("storage: create session challenge: %w", classify(err))
	}
	defer conn.Release()
	var batch pgx.Batch
	batch.Queue("BEGIN")
	for _, st := range stmts {
		batch.Queue(st.sql, st.args...)
	}
	var (
		session, challenge pgconn.CommandTag
		counts             []RateCount
	)
	br := conn.SendBatch(ctx, &batch)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if session, err = br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		counts, err = scanRateCounts(rows, c.Hits)
		rows.Close()
		if err != nil {
			return err
		}
		if challenge, err = br.Exec(); err != nil {
			return err
		}
		for range stmts[3:] {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	err = errors.Join(err, br.Close())
	switch {
	case err != nil:
		err = fmt.Errorf("storage: create session challenge: %w", classify(err))
	case session.RowsAffected() == 0:
		err = sessionTaken(c)
	default:
		if err = check(counts); err == nil && challenge.RowsAffected() != 1 {
			err = challengeSlotTaken()
		}
	}
	if err != nil {
		if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
			return errors.Join(err, fmt.Errorf("storage: rollback: %w", rbErr))
		}
		return err
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("storage: create session challenge: commit: %w", classify(err))
	}
	return nil
}

func sessionTaken(c *NewSessionChallenge) error {
	return fmt.Errorf("storage: create session challenge: session %s: %w", c.Session.ID, ErrAlreadyExists)
}

// challengeSlotTaken: a new session's challenge slot was taken, which only a
// concurrent writer of the same new session could do.
func challengeSlotTaken() error {
	return fmt.Errorf("storage: create session challenge: the session's challenge slot is taken: %w",
		fosite.ErrSerializationFailure)
}
