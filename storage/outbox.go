package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The mail outbox is a queue shared by every process on the database. A
// message is enqueued in the transaction that decides to send it; a
// dispatcher claims a batch (leasing it until available_at), delivers it, and
// deletes or reschedules each message. A claim that is never settled (the
// process died) expires with its lease and the message is claimed again.

const outboxColumns = `id, sealed_payload, attempts, available_at, created_at, last_error`

func outboxDest(m *OutboxMessage) []any {
	return []any{&m.ID, &m.Sealed, &m.Attempts, timeCol{&m.AvailableAt}, timeCol{&m.CreatedAt}, &m.LastError}
}

// EnqueueOutbox stores a message, in the transaction ctx carries if any (so a
// challenge and its mail commit together). An empty ID is filled with a random
// UUID; a zero CreatedAt is set from the clock and a zero AvailableAt to
// CreatedAt. The stored values are written back into m. An existing ID →
// ErrAlreadyExists.
func (s *Store) EnqueueOutbox(ctx context.Context, m *OutboxMessage) error {
	st := s.enqueueOutboxStmt(m)
	if _, err := s.exec(ctx, st.sql, st.args...); err != nil {
		return fmt.Errorf("storage: enqueue outbox message: %w", err)
	}
	return nil
}

// enqueueOutboxStmt fills m's ID and times as EnqueueOutbox documents and
// returns its INSERT.
func (s *Store) enqueueOutboxStmt(m *OutboxMessage) stmt {
	if m.ID == "" {
		m.ID = uuid.NewString()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.now()
	}
	if m.AvailableAt.IsZero() {
		m.AvailableAt = m.CreatedAt
	}
	m.CreatedAt, m.AvailableAt = normTime(m.CreatedAt), normTime(m.AvailableAt)
	sealed := m.Sealed
	if sealed == nil {
		sealed = []byte{}
	}
	return stmt{`INSERT INTO mail_outbox (` + outboxColumns + `) VALUES ($1, $2, $3, $4, $5, $6)`,
		[]any{m.ID, sealed, m.Attempts, s.timeArg(m.AvailableAt), s.timeArg(m.CreatedAt), m.LastError}}
}

// ClaimOutbox claims up to limit messages whose AvailableAt is not after now,
// those available longest first: it sets their AvailableAt to now+lease and
// increments their Attempts, and returns them with the new values, ordered by
// CreatedAt. limit <= 0 claims nothing.
//
// It MUST be atomic across processes: one UPDATE … RETURNING statement whose
// subquery picks the rows. On PostgreSQL the subquery locks its rows FOR
// UPDATE SKIP LOCKED, so concurrent claimers take disjoint batches without
// waiting; on SQLite writers are serialised. A claimed message is not
// claimable again before its lease ends.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := s.nowUTC()
	rows, err := s.claimRows(ctx, s.claimOutboxSQL(), s.timeArg(now), s.timeArg(now.Add(lease)), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: claim outbox: %w", err)
	}
	defer rows.Close()
	var msgs []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		if err := rows.Scan(outboxDest(&m)...); err != nil {
			return nil, fmt.Errorf("storage: claim outbox: %w", classify(err))
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: claim outbox: %w", classify(err))
	}
	// RETURNING order is unspecified.
	slices.SortFunc(msgs, func(a, b OutboxMessage) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return msgs, nil
}

// claimOutboxSQL is ClaimOutbox's statement ($1 now, $2 the lease's end, $3
// the limit). Its cost must not grow with the backlog, whatever the
// statistics say: after an SMTP outage the outbox holds every mail of the
// outage, and the table's statistics are those of the nearly empty queue it
// was when autovacuum last came round. So:
//   - the subquery orders by available_at alone, the order the available_at
//     index gives, and stops after limit rows (ordering ties by id as well
//     made it sort every due row: 24 ms per claim over 26,000);
//   - on PostgreSQL the claimed IDs are an ARRAY(subquery), run once before
//     the UPDATE, which then looks each ID up by primary key. With
//     "id IN (subquery)" the planner, trusting statistics of one row, chose
//     a nested loop that ran the subquery once per row of the table: 2.3 s
//     per claim of 20 over 26,000 queued mails, which the dispatcher drained
//     at 120 a second. TestClaimOutbox_PlanReadsTheBatchNotTheBacklog holds
//     it to that.
func (s *Store) claimOutboxSQL() string {
	pick := `SELECT id FROM mail_outbox WHERE available_at <= $1 ORDER BY available_at LIMIT $3`
	if s.dialect == DialectPostgres {
		return `UPDATE mail_outbox SET available_at = $2, attempts = attempts + 1
		WHERE id = ANY(ARRAY(` + pick + ` FOR UPDATE SKIP LOCKED))
		RETURNING ` + outboxColumns
	}
	return `UPDATE mail_outbox SET available_at = $2, attempts = attempts + 1
		WHERE id IN (` + pick + `)
		RETURNING ` + outboxColumns
}

// claimRows runs ClaimOutbox's statement. On PostgreSQL outside a
// transaction it is sent as an unnamed statement (pgx's QueryExecModeExec,
// through database/sql: not gorm's prepared statements), so that it is
// planned on every call, not once per connection. The outbox is a churning
// queue: nearly empty, but every mail leaves dead rows behind (insert, lease,
// delete), and until autovacuum comes round (autovacuum_naptime, 1 min by
// default) its heap grows by a page every few mails. A prepared statement's
// plan, made while the table was empty, seq-scans that whole heap on every
// claim: under PUT /sessions at ~1,000 mails/s the bench measured 2.9 ms per
// claim, a quarter of PostgreSQL's statement time. Planned per call, the
// planner sees the heap's current size and reads the available_at index
// instead. It stays on the main pool: on the hot paths' native pool the
// dispatcher queued behind request traffic and fell 2 s behind.
func (s *Store) claimRows(ctx context.Context, query string, args ...any) (*boundRows, error) {
	if s.dialect == DialectPostgres && s.txFrom(ctx) == nil {
		bctx, cancel := s.bound(ctx)
		rows, err := s.sqlDB.QueryContext(bctx, query, append([]any{pgx.QueryExecModeExec}, args...)...)
		if err != nil {
			cancel()
			return nil, classify(s.note(ctx, bctx, err))
		}
		return &boundRows{Rows: rows, s: s, ctx: ctx, bounded: bctx, cancel: cancel}, nil
	}
	return s.query(ctx, query, args...)
}

// DeleteOutboxMessage removes a message (delivered or given up). Deleting a
// missing message is not an error.
func (s *Store) DeleteOutboxMessage(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM mail_outbox WHERE id = $1`, id); err != nil {
		return fmt.Errorf("storage: delete outbox message: %w", err)
	}
	return nil
}

// DeleteOutboxMessages removes the messages with the given IDs in one
// statement (one commit outside a transaction) and returns how many it
// removed: a dispatcher settles a claimed batch this way instead of row by
// row. IDs that no longer exist are skipped, not an error; no IDs is a no-op.
func (s *Store) DeleteOutboxMessages(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.exec(ctx, `DELETE FROM mail_outbox WHERE `+s.outboxIDsIn(1), s.outboxIDsArg(ids))
	if err != nil {
		return 0, fmt.Errorf("storage: delete outbox messages: %w", err)
	}
	return int(n), nil
}

// RescheduleOutboxMessages is RescheduleOutboxMessage for several messages
// sharing availableAt and lastError, in one statement. It returns how many it
// updated; IDs that no longer exist are skipped (the caller compares the
// count). No IDs is a no-op.
func (s *Store) RescheduleOutboxMessages(ctx context.Context, ids []string, availableAt time.Time, lastError string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.exec(ctx, `UPDATE mail_outbox SET available_at = $1, last_error = $2 WHERE `+s.outboxIDsIn(3),
		s.timeArg(availableAt), lastError, s.outboxIDsArg(ids))
	if err != nil {
		return 0, fmt.Errorf("storage: reschedule outbox messages: %w", err)
	}
	return int(n), nil
}

// ExtendOutboxLease moves the lease of those of the messages with these IDs
// that are still leased until leasedUntil — the claim that set it has not
// been superseded — to now+lease, and returns their IDs and the new end. A
// dispatcher calls it while it works on a claimed batch (its heartbeat), so
// that a slow send keeps its rows and a short lease still lets another
// instance take over soon after a process dies. A message claimed again by
// someone else since (its lease ran out), rescheduled, or deleted is left
// alone and missing from held: the caller must not send it. No IDs is a no-op.
func (s *Store) ExtendOutboxLease(ctx context.Context, ids []string, leasedUntil time.Time, lease time.Duration) (held []string, until time.Time, err error) {
	if len(ids) == 0 {
		return nil, leasedUntil, nil
	}
	until = s.nowUTC().Add(lease)
	rows, err := s.query(ctx, `UPDATE mail_outbox SET available_at = $1 WHERE available_at = $2 AND `+s.outboxIDsIn(3)+` RETURNING id`,
		s.timeArg(until), s.timeArg(leasedUntil), s.outboxIDsArg(ids))
	if err != nil {
		return nil, leasedUntil, fmt.Errorf("storage: extend outbox lease: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, leasedUntil, fmt.Errorf("storage: extend outbox lease: %w", classify(err))
		}
		held = append(held, id)
	}
	if err := rows.Err(); err != nil {
		return nil, leasedUntil, fmt.Errorf("storage: extend outbox lease: %w", classify(err))
	}
	return held, until, nil
}

// outboxIDsIn is the condition "id is one of the list in parameter $n": the
// list is one parameter, so the statement text (and its cached plan) does not
// depend on the batch size, and no parameter limit applies. PostgreSQL takes
// a text[] (= ANY, an index scan on the primary key); SQLite a JSON array,
// read with json_each (IN (SELECT …), also a primary-key lookup per ID).
func (s *Store) outboxIDsIn(n int) string {
	if s.dialect == DialectPostgres {
		return fmt.Sprintf("id = ANY($%d::text[])", n)
	}
	return fmt.Sprintf("id IN (SELECT value FROM json_each($%d))", n)
}

// outboxIDsArg encodes ids for outboxIDsIn.
func (s *Store) outboxIDsArg(ids []string) any {
	if s.dialect == DialectPostgres {
		return ids
	}
	b, _ := json.Marshal(ids) // []string always marshals
	return string(b)
}

// RescheduleOutboxMessage makes a message claimable again from availableAt
// (ending its lease early when availableAt is now) and records why the last
// attempt failed. Attempts is kept. A missing message → ErrNotFound.
func (s *Store) RescheduleOutboxMessage(ctx context.Context, id string, availableAt time.Time, lastError string) error {
	n, err := s.exec(ctx, `UPDATE mail_outbox SET available_at = $2, last_error = $3 WHERE id = $1`,
		id, s.timeArg(availableAt), lastError)
	if err != nil {
		return fmt.Errorf("storage: reschedule outbox message: %w", err)
	}
	if n == 0 {
		return notFound("outbox message")
	}
	return nil
}

// OutboxBacklog reports how many messages are queued (due, leased or waiting
// for a retry) and when the oldest of them was enqueued (the zero time when
// none is): now minus oldest is the outbox lag.
func (s *Store) OutboxBacklog(ctx context.Context) (pending int, oldest time.Time, err error) {
	err = s.queryRow(ctx, `SELECT COUNT(*), MIN(created_at) FROM mail_outbox`).Scan(&pending, timeCol{&oldest})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("storage: outbox backlog: %w", classify(err))
	}
	return pending, oldest, nil
}
