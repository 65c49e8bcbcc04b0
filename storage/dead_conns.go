package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Dead pooled connections. When PostgreSQL resets its connections (a
// restart, a failover, a network cut), the pools keep their idle ones: no
// pool pings a connection used less than a second ago, so the first
// statement written to each one fails. When pgconn says nothing reached
// the server (pgconn.SafeToRetry), the statement is run again on another
// connection, the dead one being closed; an error after bytes were sent is
// returned as it is, never retried, since a write may have run.
//
// A read or a BEGIN, which change nothing, also run again after the
// connection was lost once they were sent (connLost).
//
//   - database/sql does that for plain statements (pgx's stdlib adapter
//     answers driver.ErrBadConn), but not for BEGIN: the adapter returns
//     BEGIN's error unchanged, and the first transaction on each dead
//     connection failed. deadConnConnector gives BEGIN the same answer.
//   - The native pgx pool retries nothing: readRow and the pipelined
//     new-session transaction retry themselves (see retryTries).
//   - Once a statement found the database unavailable, both pools ping a
//     connection idle since then before handing it out (shouldPing), so a
//     write after the outage does not meet a dead connection either.

// deadConnConnector is pgx's stdlib connector whose connections answer
// driver.ErrBadConn to a BEGIN that never reached the server or whose
// connection was lost, and ping as shouldPing decides, so that
// database/sql closes the connection and begins on another one (two pooled
// tries, then a new connection), as it does for statements.
type deadConnConnector struct{ driver.Connector }

func newDeadConnConnector(cfg pgx.ConnConfig, outage *outageMark) driver.Connector {
	return deadConnConnector{stdlib.GetConnector(cfg, stdlib.OptionShouldPing(
		func(_ context.Context, p stdlib.ShouldPingParams) bool { return outage.shouldPing(p.IdleDuration) }))}
}

func (c deadConnConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("storage: pgx stdlib connector returned a %T", conn)
	}
	return &deadConnConn{sc}, nil
}

// deadConnConn is a *stdlib.Conn (every method of it) whose BeginTx answers
// driver.ErrBadConn when BEGIN never reached the server or lost its
// connection.
type deadConnConn struct{ *stdlib.Conn }

func (c *deadConnConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil && (retryable(ctx, err) || ctx.Err() == nil && connLost(err)) { // BEGIN alone changes nothing
		return nil, driver.ErrBadConn
	}
	return tx, err
}

// retryable reports whether a statement that failed with err may run again
// on another connection: nothing of it reached the server and ctx (the
// statement's bound) is still live.
func retryable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && pgconn.SafeToRetry(err)
}

// connLost reports whether err says the connection was lost under the
// statement (reset, closed, ended by the server), not that a new one could
// not be made or the statement's bound passed. A statement without effects
// (a read, a BEGIN) may run again on another connection after it, even when
// it reached the server.
func connLost(err error) bool {
	var connectErr *pgconn.ConnectError
	return unavailable(err) && !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &connectErr)
}

// retryTries is how many times a statement on the native pool may run: once
// per connection the pool may hold (each dead one is closed by its failure
// and dropped by the pool), and once more on a new connection.
func (s *Store) retryTries() int { return int(s.reads.Config().MaxConns) + 1 }

// seen records that a statement found the database unavailable just now.
func (m *outageMark) seen() { m.last.Store(max(1, int64(time.Since(m.base)))) }

// shouldPing decides whether a pooled connection, idle for idle, is pinged
// before it is handed out (both pools ask; a failed ping discards it and
// another is taken): as the pools do by default, when it has been idle for
// over a second, and also when it has been idle since before a statement
// last found the database unavailable. Such a connection may have been cut
// with the others while nobody used it; once it has been used after the
// outage it is trusted again. The time is the pools' own (the monotonic
// clock of their idle durations), not the Store's injected clock.
func (m *outageMark) shouldPing(idle time.Duration) bool {
	if idle > time.Second {
		return true
	}
	last := m.last.Load()
	return last != 0 && int64(time.Since(m.base)-idle) <= last
}
