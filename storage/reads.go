package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"go.opentelemetry.io/otel/trace"
)

// The hot paths skip what they can when no transaction is in ctx. The
// read-only queries — a token's request on every introspection, the user of
// every user-API request, a client on a cache miss — and the session API's
// new-session transaction (CreateSessionChallenge, pipelined):
//
//   - On PostgreSQL opened with Open, they go to a native pgx pool (reads)
//     instead of gorm's prepared statements over database/sql and pgx's
//     stdlib adapter: the same statement, prepared once per connection, with
//     less client-side work (a token read: 104 allocations instead of 174).
//   - With a ClientLoader (WithClientLoader), token reads select the token
//     row alone and take its client from the loader (the provider's client
//     cache) instead of joining oauth2_clients.
//
// Inside a transaction every statement runs on the transaction, as before.
// Nothing is cached here: a revoked token is gone for the next read.

// ClientLoader returns the client with this id, as (*Store).GetClient does:
// an error matching ErrNotFound (or fosite.ErrNotFound) when there is none.
type ClientLoader func(ctx context.Context, id string) (fosite.Client, error)

// WithClientLoader returns a Store that shares s's connection pools and
// transactions, whose token reads (GetAccessTokenSession and the other Get…
// Session methods) outside a transaction read the token row alone and take
// its client from load, typically a cache of GetClient. The client a token
// read returns is then as fresh as load's; a deleted client's tokens are
// still gone at once (ON DELETE CASCADE). Inside a transaction, token reads
// join the client row as s's do, so a transaction sees its own writes.
// load gets the caller's ctx, which then carries no transaction.
func (s *Store) WithClientLoader(load ClientLoader) *Store {
	c := *s
	c.clients = load
	return &c
}

// SubjectUser receives the user a token's subject names, read in the same
// query as the token (see WithSubjectUser).
type SubjectUser struct {
	// Read reports whether the token read also read the user; when false,
	// User means nothing and the caller reads the user itself.
	Read bool
	// User is the user the token's subject names, as GetUser returns it; nil
	// when there is none.
	User *User
}

type subjectUserKey struct{}

// WithSubjectUser returns a context under which a token read
// (GetAccessTokenSession and the other Get…Session methods) by a Store with a
// ClientLoader, outside a transaction, also reads the user that the token's
// subject names, in the same query, into dst. A bearer check that goes on to
// load the token's user (the user API does, on every request) saves a round
// trip: both rows come from one statement, as fresh as two would be.
func WithSubjectUser(ctx context.Context, dst *SubjectUser) context.Context {
	return context.WithValue(ctx, subjectUserKey{}, dst)
}

func subjectUserFrom(ctx context.Context) *SubjectUser {
	su, _ := ctx.Value(subjectUserKey{}).(*SubjectUser)
	return su
}

// readPoolSize is the size of the pgx pool for hot reads beside a gorm pool
// of maxConns connections: half as many (at least 2). One read is one short
// round trip; on the bench (2 cores, PostgreSQL on the same machine) 5 read
// connections cost PostgreSQL ~10% less CPU per introspection than 10, at
// the same or better throughput, and a smaller pool keeps the total
// connection count at 1.5 × database.max_open_conns.
func readPoolSize(maxConns int) int { return max(2, (maxConns+1)/2) }

// openReadPool opens (lazily: no connection until the first query) the pgx
// pool for hot reads.
func openReadPool(dsn string, size int, connectTimeout time.Duration, outage *outageMark) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if connectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	cfg.MaxConns = int32(size)
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool { return outage.shouldPing(p.IdleDuration) }
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// scanner is a *sql.Row or a pgx.Row.
type scanner interface{ Scan(dest ...any) error }

// readRow runs a read-only query expected to return at most one row: on the
// pgx read pool when there is one and ctx carries no transaction, else as
// queryRow. Errors surface from Scan, unclassified, as queryRow's. On the
// pgx pool, a query whose connection was lost (a dead pooled connection, see
// dead_conns.go) runs again on another connection: it only reads.
func (s *Store) readRow(ctx context.Context, query string, args ...any) scanner {
	if s.reads != nil && s.txFrom(ctx) == nil {
		ctx, span := s.startStmtSpan(ctx, query)
		return &poolRow{s: s, ctx: ctx, query: query, args: args, span: span}
	}
	return s.queryRow(ctx, query, args...)
}

// poolRow is a one-row read on the pgx read pool, run by Scan under the
// statement's bound.
type poolRow struct {
	s     *Store
	ctx   context.Context
	query string
	args  []any
	span  trace.Span // nil: none; ended by Scan
}

func (r *poolRow) Scan(dest ...any) error {
	bctx, cancel := r.s.bound(r.ctx)
	defer cancel()
	var err error
	for range r.s.retryTries() {
		err = r.s.reads.QueryRow(bctx, r.query, r.args...).Scan(dest...)
		if err == nil || !retryable(bctx, err) && (bctx.Err() != nil || !connLost(err)) { // a read changes nothing
			break
		}
	}
	err = r.s.note(r.ctx, bctx, err)
	endScanSpan(r.span, err)
	return err
}

// loadClient is the client of a token row, from the ClientLoader. A client
// gone meanwhile (its tokens went with it) makes the token not found, as the
// join would.
func (s *Store) loadClient(ctx context.Context, t *requestTable, id string) (fosite.Client, error) {
	c, err := s.clients(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(t.name)
		}
		return nil, fmt.Errorf("storage: get %s: client: %w", t.name, err)
	}
	return c, nil
}
