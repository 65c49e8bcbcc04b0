package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// An unavailable database must never look like a verdict: fosite turns
// storage errors into "not found", invalid_client or an inactive token, and
// some of its paths keep only the message of the error (WithDebug), not the
// error itself. So besides returning errors that match ErrUnavailable, the
// Store notes every unavailability in the request's context when the caller
// asked it to (WithUnavailableNote); IsUnavailable reads both, and the web
// layer asks it before writing any error response.

type unavailableNoteKey struct{}

// unavailableNote is set once any statement of the request found the
// database unavailable.
type unavailableNote struct{ noted atomic.Bool }

// WithUnavailableNote returns a context in which the Store notes any failure
// to reach the database, for IsUnavailable to find even when the error that
// reaches the caller no longer carries ErrUnavailable. Calling it on a
// context that already has a note returns ctx.
func WithUnavailableNote(ctx context.Context) context.Context {
	if _, ok := ctx.Value(unavailableNoteKey{}).(*unavailableNote); ok {
		return ctx
	}
	return context.WithValue(ctx, unavailableNoteKey{}, &unavailableNote{})
}

// IsUnavailable reports whether err, or any storage work done under ctx
// since WithUnavailableNote, failed because the database could not be used
// at all: connection refused or lost, pool acquire or query past its
// deadline (Options.QueryTimeout), SQLite's disk full or unreadable, or its
// write lock still held after the busy timeout. Such a request must be
// answered 503 with Retry-After, never with a verdict about what it asked.
func IsUnavailable(ctx context.Context, err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	n, ok := ctx.Value(unavailableNoteKey{}).(*unavailableNote)
	return ok && n.noted.Load()
}

// note records that err, a driver error of a statement run under bounded
// (the context bound returned), means the database is unavailable: in ctx's
// note (if any) and in the store's outage mark (see Ready). It returns err,
// with context.DeadlineExceeded added to its chain when the bound's deadline
// cut the statement short (drivers say so in their own words: SQLite as an
// interrupt).
func (s *Store) note(ctx, bounded context.Context, err error) error {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if bounded != nil && errors.Is(bounded.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	if unavailable(err) {
		if n, ok := ctx.Value(unavailableNoteKey{}).(*unavailableNote); ok {
			n.noted.Store(true)
		}
		if s.outage != nil {
			s.outage.marked.Store(true)
			s.outage.seen()
		}
	}
	return err
}

// outageMark remembers that a statement found the database unavailable,
// until Ready's write probe succeeds, and when it last did (see
// shouldPing). Stores derived from one Open share it.
type outageMark struct {
	marked atomic.Bool
	// base is when the mark was made (with its monotonic reading); last is
	// when, after base, a statement last found the database unavailable
	// (0: never).
	base time.Time
	last atomic.Int64
}

func newOutageMark() *outageMark { return &outageMark{base: time.Now()} }

// readyProbeKey is the rate counter Ready's write probe writes: expired at
// once, so no limit ever counts it and the purge deletes it.
const readyProbeKey = "otpstep:ready-probe"

// Ready reports whether the database can serve requests: it answers a ping
// and, after any statement found it unavailable since the last successful
// probe, it takes a write again (one upsert of an expired rate counter).
// A SQLite disk that filled up answers pings and reads but refuses writes;
// Ready fails until a write succeeds again, and needs no restart to pass.
// The error matches ErrUnavailable.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.outage == nil || !s.outage.marked.Load() {
		return nil
	}
	now := s.nowUTC()
	_, err := s.exec(ctx, `INSERT INTO rate_counters ("key", window_start, reset_at, count) VALUES ($1, $2, $2, 0)
		ON CONFLICT ("key") DO UPDATE SET window_start = excluded.window_start, reset_at = excluded.reset_at`,
		readyProbeKey, s.timeArg(now))
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return fmt.Errorf("storage: write probe: %w", err)
	}
	s.outage.marked.Store(false)
	return nil
}

// bound gives one statement (or one transaction, from BEGIN to its end) the
// store's query timeout. Inside a transaction the transaction's bound holds
// and ctx is returned as it is. Once ctx's note says the database was
// unavailable, the request's answer is a 503 whatever comes next, so further
// statements fail at once instead of each waiting out its own timeout
// (fosite, for one, reads a refresh token after a failed access-token read).
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if n, ok := ctx.Value(unavailableNoteKey{}).(*unavailableNote); ok && n.noted.Load() {
		return context.WithDeadline(ctx, time.Time{})
	}
	if s.queryTimeout <= 0 || s.txFrom(ctx) != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.queryTimeout)
}

// QueryTimeout is the bound of each statement outside a transaction and of
// each transaction as a whole; 0 means none.
func (s *Store) QueryTimeout() time.Duration { return s.queryTimeout }

// WithQueryTimeout returns a Store that shares s's pools and transactions
// and bounds each statement outside a transaction, and each transaction
// from BEGIN to COMMIT, by d (0: no bound). Past it the statement fails with
// an error matching ErrUnavailable and a transaction rolls back.
func (s *Store) WithQueryTimeout(d time.Duration) *Store {
	c := *s
	c.queryTimeout = d
	return &c
}

// boundRows is a statement's rows that release the statement's bound when
// closed, and note an unavailability met while reading them.
type boundRows struct {
	*sql.Rows
	s            *Store
	ctx, bounded context.Context
	cancel       context.CancelFunc
}

func (r *boundRows) Err() error { return r.s.note(r.ctx, r.bounded, r.Rows.Err()) }

func (r *boundRows) Scan(dest ...any) error {
	return r.s.note(r.ctx, r.bounded, r.Rows.Scan(dest...))
}

func (r *boundRows) Close() error {
	err := r.Rows.Close()
	r.cancel()
	return err
}
