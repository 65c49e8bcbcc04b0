package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Rate counters are fixed windows shared by every process on the database: a
// key's window starts at its first hit and lasts window; the first hit after
// it ends starts a new one.

// HitRateCounter counts one hit on key and returns the count in the current
// window (1 for the first hit) and when the window ends. It MUST be atomic
// across processes: one INSERT … ON CONFLICT DO UPDATE … RETURNING statement,
// which also restarts the window when it is older than window.
func (s *Store) HitRateCounter(ctx context.Context, key string, window time.Duration) (count int, resetAt time.Time, err error) {
	now := s.nowUTC()
	var start time.Time
	err = s.queryRow(ctx, `INSERT INTO rate_counters ("key", window_start, reset_at, count)
		VALUES ($1, $2, $3, 1)
		ON CONFLICT ("key") DO UPDATE SET
			count = CASE WHEN rate_counters.window_start <= $4 THEN 1 ELSE rate_counters.count + 1 END,
			window_start = CASE WHEN rate_counters.window_start <= $4 THEN excluded.window_start ELSE rate_counters.window_start END,
			reset_at = CASE WHEN rate_counters.window_start <= $4 THEN excluded.reset_at ELSE rate_counters.reset_at END
		RETURNING count, window_start`,
		key, s.timeArg(now), s.timeArg(now.Add(window)), s.timeArg(now.Add(-window))).
		Scan(&count, timeCol{&start})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("storage: hit rate counter: %w", classify(err))
	}
	return count, start.Add(window), nil
}

// PeekRateCounter is HitRateCounter without the hit: the count in the current
// window and when it ends, or 0 and the zero time when key has no live window.
func (s *Store) PeekRateCounter(ctx context.Context, key string, window time.Duration) (count int, resetAt time.Time, err error) {
	var start time.Time
	err = s.queryRow(ctx, `SELECT count, window_start FROM rate_counters WHERE "key" = $1`, key).
		Scan(&count, timeCol{&start})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("storage: peek rate counter: %w", classify(err))
	}
	if !start.After(s.nowUTC().Add(-window)) {
		return 0, time.Time{}, nil
	}
	return count, start.Add(window), nil
}

// ResetRateCounter forgets key's window (e.g. after a successful login).
// Resetting an unknown key is not an error.
func (s *Store) ResetRateCounter(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM rate_counters WHERE "key" = $1`, key); err != nil {
		return fmt.Errorf("storage: reset rate counter: %w", err)
	}
	return nil
}

// UndoRateCounterHit takes one hit back from key's count (never below zero),
// giving back a try reserved with HitRateCounter that turned out not to count.
// It is one atomic statement; an unknown key is not an error. The window is
// left as it is.
func (s *Store) UndoRateCounterHit(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `UPDATE rate_counters SET count = count - 1 WHERE "key" = $1 AND count > 0`, key); err != nil {
		return fmt.Errorf("storage: undo rate counter hit: %w", err)
	}
	return nil
}
