package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"go.opentelemetry.io/otel/attribute"
)

// NewChallenge is what issuing a code stores: the rate-counter hits that
// limit it, the challenge, its mail and the request's audit events.
type NewChallenge struct {
	Hits      []RateHit // at least one
	Challenge *OTPChallenge
	Mail      *OutboxMessage
	Events    []*AuditEvent
}

// NewSessionChallenge is what PUT /sessions/{id} stores for a login session
// that does not exist yet: the session and its first challenge.
type NewSessionChallenge struct {
	Session *LoginSession
	NewChallenge
}

// IssueChallenge stores c in one transaction (the one ctx carries, if any):
// the hits (HitRateCounters), the challenge (CreateOTPChallenge, burning the
// scope's live one), the mail (EnqueueOutbox) and the events
// (AddAuditEvents), as those would, with their defaults written back into c.
// A hit that counts past its Max refuses the request with
// *RateLimitedError before the challenge is written; the caller's
// transaction (or IssueChallenge's own) then rolls the hits back.
func (s *Store) IssueChallenge(ctx context.Context, c *NewChallenge) error {
	if len(c.Hits) == 0 {
		return errors.New("storage: issue challenge: no rate-counter hits")
	}
	return s.InTx(ctx, func(ctx context.Context) error { return s.issueChallenge(ctx, c) })
}

// issueChallenge is IssueChallenge's statements, in the transaction in ctx,
// in the order createSessionChallengePipelined sends them.
func (s *Store) issueChallenge(ctx context.Context, c *NewChallenge) error {
	counts, err := s.HitRateCounters(ctx, c.Hits...)
	if err != nil {
		return err
	}
	if e := rateLimited(c.Hits, counts); e != nil {
		return e
	}
	if err := s.CreateOTPChallenge(ctx, c.Challenge); err != nil {
		return err
	}
	if err := s.EnqueueOutbox(ctx, c.Mail); err != nil {
		return err
	}
	return s.AddAuditEvents(ctx, c.Events...)
}

// CreateSessionChallenge stores c in one transaction: the session
// (CreateLoginSession), then the challenge as IssueChallenge does, with the
// defaults written back into c. A hit that counts past its Max refuses the
// request with *RateLimitedError and everything rolls back, counts
// included. A taken session ID → ErrAlreadyExists, nothing stored.
//
// On PostgreSQL opened with Open, outside a caller's transaction, the
// statements go to the native pool as one pipelined batch: one round trip,
// one implicit transaction, the counters' statement failing it when a hit
// would count past its Max (rateLimitedCode); a refusal then reads the counts
// back in a second round trip. Elsewhere they are CreateLoginSession and
// issueChallenge in InTx. Either way the same rows are written, and the
// counter rows stay locked until the transaction ends, so concurrent
// requests see each other's hits.
func (s *Store) CreateSessionChallenge(ctx context.Context, c *NewSessionChallenge) error {
	if len(c.Hits) == 0 {
		return errors.New("storage: create session challenge: no rate-counter hits")
	}
	if c.Challenge.SessionID != c.Session.ID || c.Challenge.UserID != c.Session.UserID {
		return errors.New("storage: create session challenge: the challenge is not the session's")
	}
	if s.reads != nil && s.txFrom(ctx) == nil {
		return s.createSessionChallengePipelined(ctx, c)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateLoginSession(ctx, c.Session); err != nil {
			return err
		}
		return s.issueChallenge(ctx, &c.NewChallenge)
	})
}

// createSessionChallengePipelined is CreateSessionChallenge on the native
// PostgreSQL pool, in one round trip: the INSERTs of CreateLoginSession and
// CreateOTPChallenge without their ON CONFLICT DO NOTHING (a taken session ID
// or challenge slot fails the transaction instead), HitRateCounters'
// statement limited by the hits' Max, EnqueueOutbox's and AddAuditEvents'
// statements.
//
// They need no BEGIN and no COMMIT: pgx sends a batch as extended-protocol
// messages closed by a single Sync, and PostgreSQL runs every statement up to
// a Sync in one implicit transaction, committed at the Sync; after a failure
// it skips the rest and rolls the transaction back (protocol, "Extended
// Query" and "Pipelining"; pgx's Conn.SendBatch says the same). A batch in
// pgx's simple-protocol mode is one multi-statement query, which PostgreSQL
// also runs as one implicit transaction. TestSessionChallenge_* in storagetest
// hold it to all-or-nothing.
func (s *Store) createSessionChallengePipelined(ctx context.Context, c *NewSessionChallenge) (err error) {
	// One span for the batch: it is one round trip and one transaction.
	ctx, span := s.startSpan(ctx, "db batch", attribute.String("db.operation.name", "BATCH"))
	defer func() { endSpan(span, err) }()
	session, hits := s.createLoginSessionStmt(c.Session), s.hitRateCountersStmt(c.Hits, true)
	challenge, mail := s.insertOTPChallengeStmt(c.Challenge), s.enqueueOutboxStmt(c.Mail)
	var audit stmt
	if len(c.Events) > 0 {
		if audit, err = s.addAuditEventsStmt(c.Events); err != nil {
			return fmt.Errorf("storage: create session challenge: %w", err)
		}
	}
	// The batch is one implicit transaction: one bound for all of it.
	bctx, cancel := s.bound(ctx)
	defer cancel()
	// A batch whose first statement failed before anything reached the
	// server (a dead pooled connection, see dead_conns.go) runs again on
	// another connection; nothing of it ran.
	for try := 1; ; try++ {
		retry, err := s.sendSessionChallenge(ctx, bctx, c, []stmt{session, hits, challenge, mail, audit}, try < s.retryTries())
		if !retry {
			return err
		}
	}
}

// sendSessionChallenge is one try of createSessionChallengePipelined: the
// batch of stmts (session, hits, challenge, mail, then the events' when
// its SQL is not empty) on a connection of the native pool. When mayRetry
// and the batch failed before it reached the server, it reports retry,
// with nothing noted.
func (s *Store) sendSessionChallenge(ctx, bctx context.Context, c *NewSessionChallenge, stmts []stmt, mayRetry bool) (retry bool, err error) {
	conn, err := s.reads.Acquire(bctx)
	if err != nil {
		return false, fmt.Errorf("storage: create session challenge: %w", classify(s.note(ctx, bctx, err)))
	}
	defer conn.Release()
	var batch pgx.Batch
	for _, st := range stmts {
		if st.sql != "" {
			batch.Queue(st.sql, st.args...)
		}
	}

	// Each step reads one statement's result; the first failure names the
	// error and br.Close drains the rest of the batch.
	fail := func(err error) error {
		return fmt.Errorf("storage: create session challenge: %w", classify(s.note(ctx, bctx, err)))
	}
	limited := false
	br := conn.SendBatch(bctx, &batch)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			if errors.Is(classify(err), ErrAlreadyExists) {
				return sessionTaken(c)
			}
			if mayRetry && retryable(bctx, err) {
				retry = true
				return err
			}
			return fail(err)
		}
		rows, err := br.Query()
		if err == nil {
			_, err = scanRateCounts(rows, c.Hits)
			rows.Close()
		}
		if err != nil {
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == rateLimitedCode {
				limited = true
			}
			return fail(err)
		}
		if _, err := br.Exec(); err != nil {
			if errors.Is(classify(err), ErrAlreadyExists) {
				return challengeSlotTaken()
			}
			return fail(err)
		}
		for range batch.Len() - 3 { // the mail, and the events if any
			if _, err := br.Exec(); err != nil {
				return fail(err)
			}
		}
		return nil
	}()
	// Close reads up to the Sync: a failure to commit comes from here.
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = fail(closeErr)
	}
	if retry {
		return true, err
	}
	if limited {
		return false, s.sessionChallengeRefused(bctx, conn, c, err)
	}
	return false, err
}

// sessionChallengeRefused is the refusal of a batch whose counters'
// statement failed it (rateLimitedCode, err): the counts read back on conn
// name the hit past its Max (*RateLimitedError).
func (s *Store) sessionChallengeRefused(bctx context.Context, conn *pgxpool.Conn, c *NewSessionChallenge, err error) error {
	counts, readErr := s.hitsWouldCount(c.Hits, func(sql string, args ...any) (rowScanner, func(), error) {
		rows, err := conn.Query(bctx, sql, args...)
		if err != nil {
			return nil, nil, classify(err)
		}
		return rows, rows.Close, nil
	})
	if readErr != nil {
		return errors.Join(err, fmt.Errorf("storage: create session challenge: read the refused counts: %w", readErr))
	}
	if e := rateLimited(c.Hits, counts); e != nil {
		return e
	}
	// The database refused a hit that, read back after the rollback, is no
	// longer past its Max (its window ended in between).
	return errors.Join(err, errors.New("storage: create session challenge: a window ended while its hit was refused; try again"))
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
