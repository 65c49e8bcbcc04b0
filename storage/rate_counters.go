package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Rate counters are fixed windows shared by every process on the database: a
// key's window starts at its first hit and lasts the window that hit passed;
// its end is stored with it (reset_at), and the first hit at or after that
// end starts a new one. Every method judges a window by that stored end, so a
// later call passing another window (a changed setting) changes only the
// windows it starts.

// HitRateCounter counts one hit on key and returns the count in the current
// window (1 for the first hit) and when the window ends. It MUST be atomic
// across processes: one INSERT … ON CONFLICT DO UPDATE … RETURNING statement
// (HitRateCounters'), which also restarts the window when it is over.
func (s *Store) HitRateCounter(ctx context.Context, key string, window time.Duration) (count int, resetAt time.Time, err error) {
	counts, err := s.HitRateCounters(ctx, RateHit{Key: key, Window: window})
	if err != nil {
		return 0, time.Time{}, err
	}
	return counts[0].Count, counts[0].ResetAt, nil
}

// PeekRateCounter is HitRateCounter without the hit: the count in the current
// window and when it ends, or 0 and the zero time when key has no live window.
// The window argument is unused: the window's stored end decides.
func (s *Store) PeekRateCounter(ctx context.Context, key string, _ time.Duration) (count int, resetAt time.Time, err error) {
	err = s.queryRow(ctx, `SELECT count, reset_at FROM rate_counters WHERE "key" = $1`, key).
		Scan(&count, timeCol{&resetAt})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("storage: peek rate counter: %w", classify(err))
	}
	if !resetAt.After(s.nowUTC()) {
		return 0, time.Time{}, nil
	}
	return count, resetAt, nil
}

// ResetRateCounter forgets key's window (e.g. after a successful login).
// Resetting an unknown key is not an error.
func (s *Store) ResetRateCounter(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM rate_counters WHERE "key" = $1`, key); err != nil {
		return fmt.Errorf("storage: reset rate counter: %w", err)
	}
	return nil
}

// rateWindowOver is the one rule of every upsert of rate_counters for when
// the stored window is over: its own end (reset_at) is not after now, the
// window_start of the row the statement would insert.
const rateWindowOver = `rate_counters.reset_at <= excluded.window_start`

// RateHit is one key HitRateCounters counts, with its window and limit.
type RateHit struct {
	Key    string
	Window time.Duration
	// Max, when > 0, is the most hits the window allows: IssueChallenge,
	// CreateSessionChallenge and ReserveRateCounters refuse a request whose
	// hit counts past it (rateLimited). HitRateCounters only counts.
	Max int
}

// Refuses reports whether a count is past h's Max (a Max of 0 refuses
// nothing): the one rule of a limit, applied by rateLimited and by callers
// that tell whether a next hit would be refused.
func (h RateHit) Refuses(count int) bool { return h.Max > 0 && count > h.Max }

// RateCount is a key's count in its current window and when the window ends.
type RateCount struct {
	Count   int
	ResetAt time.Time
}

// HitRateCounters is HitRateCounter for several keys in one statement (one
// multi-row INSERT … ON CONFLICT DO UPDATE … RETURNING), each key with its own
// window; the counts come back in the order of hits. Keys must be distinct.
// Each key's count is atomic as HitRateCounter's. Inside a transaction the
// rows stay locked until it ends, so a caller that refuses the request can roll
// the hits back; callers that lock several keys should name them in one order.
func (s *Store) HitRateCounters(ctx context.Context, hits ...RateHit) ([]RateCount, error) {
	if len(hits) == 0 {
		return nil, nil
	}
	st := s.hitRateCountersStmt(hits, false)
	rows, err := s.query(ctx, st.sql, st.args...)
	if err != nil {
		return nil, fmt.Errorf("storage: hit rate counters: %w", err)
	}
	defer rows.Close()
	return scanRateCounts(rows, hits)
}

// hitRateCountersStmt is HitRateCounters' statement for one or more hits.
// limited (PostgreSQL only) makes it fail, with rateLimitedCode, when a hit
// would count past its Max: see rateLimitedCode.
func (s *Store) hitRateCountersStmt(hits []RateHit, limited bool) stmt {
	now := s.nowUTC()
	var (
		q    strings.Builder
		args = make([]any, 0, 4*len(hits))
	)
	q.WriteString(`INSERT INTO rate_counters ("key", window_start, reset_at, count) VALUES `)
	for i, h := range hits {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "($%d, $%d, $%d, 1)", 3*i+1, 3*i+2, 3*i+3)
		args = append(args, h.Key, s.timeArg(now), s.timeArg(now.Add(h.Window)))
	}
	// Each key keeps its own window in the one statement (rateWindowOver).
	// A first hit (the INSERT) counts 1, which no Max refuses.
	count := `CASE WHEN ` + rateWindowOver + ` THEN 1 ELSE rate_counters.count + 1 END`
	if limited {
		var max strings.Builder
		max.WriteString(`CASE excluded."key"`)
		for i, h := range hits {
			if h.Max > 0 {
				args = append(args, int64(h.Max))
				fmt.Fprintf(&max, ` WHEN $%d THEN $%d::bigint`, 3*i+1, len(args))
			}
		}
		max.WriteString(` ELSE 0 END`)
		count = `otpstep_within_limit(` + count + `, ` + max.String() + `, excluded."key")`
	}
	q.WriteString(` ON CONFLICT ("key") DO UPDATE SET
			count = ` + count + `,
			window_start = CASE WHEN ` + rateWindowOver + ` THEN excluded.window_start ELSE rate_counters.window_start END,
			reset_at = CASE WHEN ` + rateWindowOver + ` THEN excluded.reset_at ELSE rate_counters.reset_at END
		RETURNING "key", count, reset_at`)
	return stmt{q.String(), args}
}

// RateLimitedError refuses a request one of whose hits would count past its
// Max: nothing of the request is stored, its hits included. Counts are what
// each hit counted (or, where the database refused, would have counted), in
// the order of the hits; Index is the first hit past its Max, the limit that
// refused. Callers match it with errors.As and name the limit by Index.
type RateLimitedError struct {
	Index  int
	Counts []RateCount
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("storage: rate limited: hit %d counts %d, past its limit", e.Index, e.Counts[e.Index].Count)
}

// rateLimited is the one rule of a hit's Max where its count came back to
// Go: the first hit whose count is past its Max refuses the request, and nil
// means none is. The PostgreSQL statements that enforce Max themselves
// (otpstep_within_limit) fail instead, and their read-back counts come here
// to name the hit.
func rateLimited(hits []RateHit, counts []RateCount) *RateLimitedError {
	for i, h := range hits {
		if h.Refuses(counts[i].Count) {
			return &RateLimitedError{Index: i, Counts: counts}
		}
	}
	return nil
}

// rateLimitedCode is the SQLSTATE of otpstep_within_limit (PostgreSQL
// migration 00003): hitRateCountersStmt, limited, fails with it when a hit
// would count past its Max, which fails the transaction. That is how the
// session API's pipelined transaction (CreateSessionChallenge) rolls back on
// a refusal without a round trip to decide: the limit is enforced by the
// statement that counts. (A separate SELECT of the counters after the upsert
// did the same and cost PostgreSQL ~0.5 ms per request under the bench's
// load, more than the rest of the transaction's statements together.)
const rateLimitedCode = "OT429"

// hitsWouldCount is what hits would have counted now, read back after a
// limited hitRateCountersStmt failed and its transaction rolled back: one
// more than each live window's count, or 1 where the window is over or
// never was. query runs the read, its error classified: on the pipeline's
// own connection (CreateSessionChallenge) or the store's pool
// (ReserveRateCounters).
func (s *Store) hitsWouldCount(hits []RateHit, query func(sql string, args ...any) (rows rowScanner, closeRows func(), err error)) ([]RateCount, error) {
	var (
		q    strings.Builder
		args = make([]any, len(hits))
	)
	q.WriteString(`SELECT "key", count, reset_at FROM rate_counters WHERE "key" IN (`)
	for i, h := range hits {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "$%d", i+1)
		args[i] = h.Key
	}
	q.WriteString(")")
	rows, closeRows, err := query(q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer closeRows()
	live := make(map[string]RateCount, len(hits))
	now := s.nowUTC()
	for rows.Next() {
		var (
			key string
			c   RateCount
		)
		if err := rows.Scan(&key, &c.Count, timeCol{&c.ResetAt}); err != nil {
			return nil, classify(err)
		}
		if c.ResetAt.After(now) {
			live[key] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return wouldCount(hits, live, now), nil
}

// scanRateCounts reads hitRateCountersStmt's rows into the counts of hits,
// in their order.
func scanRateCounts(rows rowScanner, hits []RateHit) ([]RateCount, error) {
	byKey := make(map[string]RateCount, len(hits))
	for rows.Next() {
		var (
			key string
			c   RateCount
		)
		if err := rows.Scan(&key, &c.Count, timeCol{&c.ResetAt}); err != nil {
			return nil, fmt.Errorf("storage: hit rate counters: %w", classify(err))
		}
		byKey[key] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: hit rate counters: %w", classify(err))
	}
	out := make([]RateCount, len(hits))
	for i, h := range hits {
		c, ok := byKey[h.Key]
		if !ok {
			return nil, fmt.Errorf("storage: hit rate counters: no count returned for %q", h.Key)
		}
		out[i] = c
	}
	return out, nil
}

// CheckRateCounter is HitRateCounter for a caller that learns only later,
// in the same transaction, whether its request counts: it returns key's count
// in the current window (starting one, at 0, when there is none or it is
// over) and when the window ends, and counts nothing while the count is
// below limit. The caller then counts the request with CountRateCounterHit. A
// count already at limit or over is counted (+1) as a refusal, so the count
// returned is above limit exactly when the caller must refuse, and is limit+1
// at the window's first refusal.
//
// It is one INSERT … ON CONFLICT DO UPDATE … RETURNING statement. Check and
// count are atomic across processes only inside one transaction: the row
// stays locked until it ends (PostgreSQL: the upsert's row lock; SQLite: the
// transaction's write lock), which serializes the callers of one key.
func (s *Store) CheckRateCounter(ctx context.Context, key string, window time.Duration, limit int) (count int, resetAt time.Time, err error) {
	now := s.nowUTC()
	first := 0 // a new window's count
	if limit <= 0 {
		first = 1 // nothing is allowed: the request is the window's first refusal
	}
	err = s.queryRow(ctx, `INSERT INTO rate_counters ("key", window_start, reset_at, count)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT ("key") DO UPDATE SET
			count = CASE WHEN `+rateWindowOver+` THEN excluded.count
				WHEN rate_counters.count >= $5 THEN rate_counters.count + 1
				ELSE rate_counters.count END,
			window_start = CASE WHEN `+rateWindowOver+` THEN excluded.window_start ELSE rate_counters.window_start END,
			reset_at = CASE WHEN `+rateWindowOver+` THEN excluded.reset_at ELSE rate_counters.reset_at END
		RETURNING count, reset_at`,
		key, s.timeArg(now), s.timeArg(now.Add(window)), first, limit).
		Scan(&count, timeCol{&resetAt})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("storage: check rate counter: %w", classify(err))
	}
	return count, resetAt, nil
}

// CountRateCounterHit counts one hit on key's current window, for a caller
// that checked key with CheckRateCounter earlier in the same transaction (the
// row exists and is locked; the window is left as it is). An unknown key is
// not an error and counts nothing.
func (s *Store) CountRateCounterHit(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `UPDATE rate_counters SET count = count + 1 WHERE "key" = $1`, key); err != nil {
		return fmt.Errorf("storage: count rate counter hit: %w", err)
	}
	return nil
}

// ReserveRateCounters counts one hit on each of hits, all or none, for a
// caller that must refuse a request before it does the work a hit stands for
// (a password check) and learns only afterwards whether the hit should stay
// counted. When a hit would count past its Max, nothing is counted and
// reserved is false; counts are then what each hit would have counted (one
// more than its live window's count, or 1), so the caller finds the limit
// that refused it and when its window ends. Otherwise reserved is true and
// counts are the new counts; each hit stays counted until the caller gives it
// back (ReleaseRateCounter) or resets its key. Keys must be distinct; callers
// that reserve several keys should name them in one order.
//
// The windows and counts are HitRateCounters'. Reserving is atomic across
// processes, so of any number of concurrent callers at most Max get a
// reservation in a window: on PostgreSQL outside a transaction it is one
// statement, the upsert failing (otpstep_within_limit, rateLimitedCode) when
// a hit would count past its Max; elsewhere it is HitRateCounters in a
// transaction (a savepoint inside the caller's), rolled back when a count is
// past its Max, the counter rows locked until it ends.
func (s *Store) ReserveRateCounters(ctx context.Context, hits ...RateHit) (counts []RateCount, reserved bool, err error) {
	if len(hits) == 0 {
		return nil, true, nil
	}
	if s.dialect == DialectPostgres && s.txFrom(ctx) == nil {
		return s.reserveRateCountersLimited(ctx, hits)
	}
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("storage: reserve rate counters: %w", err)
	}
	counts, err = s.HitRateCounters(txCtx, hits...)
	if err == nil && rateLimited(hits, counts) != nil {
		return counts, false, s.Rollback(txCtx)
	}
	if err != nil {
		return nil, false, errors.Join(err, s.Rollback(txCtx))
	}
	if err := s.Commit(txCtx); err != nil {
		return nil, false, err
	}
	return counts, true, nil
}

// reserveRateCountersLimited is ReserveRateCounters on PostgreSQL outside a
// transaction: hitRateCountersStmt, limited, as one statement.
func (s *Store) reserveRateCountersLimited(ctx context.Context, hits []RateHit) ([]RateCount, bool, error) {
	st := s.hitRateCountersStmt(hits, true)
	rows, err := s.query(ctx, st.sql, st.args...)
	var counts []RateCount
	if err == nil {
		counts, err = scanRateCounts(rows, hits)
		rows.Close()
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == rateLimitedCode {
		counts, err := s.hitsWouldCount(hits, func(sql string, args ...any) (rowScanner, func(), error) {
			rows, err := s.query(ctx, sql, args...)
			if err != nil {
				return nil, nil, err
			}
			return rows, func() { rows.Close() }, nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("storage: reserve rate counters: read the refused counts: %w", err)
		}
		return counts, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: reserve rate counters: %w", err)
	}
	return counts, true, nil
}

// wouldCount is what hits would count now, given the live windows' counts
// by key: one more than a live window's count, or 1 where there is none.
func wouldCount(hits []RateHit, live map[string]RateCount, now time.Time) []RateCount {
	out := make([]RateCount, len(hits))
	for i, h := range hits {
		if c, ok := live[h.Key]; ok {
			out[i] = RateCount{Count: c.Count + 1, ResetAt: c.ResetAt}
		} else {
			out[i] = RateCount{Count: 1, ResetAt: now.Add(h.Window)}
		}
	}
	return out
}

// ReleaseRateCounter gives back one hit that ReserveRateCounters counted on
// key in the window ending at resetAt (the reservation's RateCount.ResetAt).
// A window that has ended or been reset since is left alone: the reservation
// went with it. Releasing an unknown key is not an error.
func (s *Store) ReleaseRateCounter(ctx context.Context, key string, resetAt time.Time) error {
	_, err := s.exec(ctx, `UPDATE rate_counters SET count = count - 1 WHERE "key" = $1 AND reset_at = $2 AND count > 0`,
		key, s.timeArg(resetAt))
	if err != nil {
		return fmt.Errorf("storage: release rate counter: %w", err)
	}
	return nil
}
