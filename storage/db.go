package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// SQL in this package is written once for both dialects: $n placeholders
// (PostgreSQL's, also understood by the SQLite driver), ON CONFLICT, RETURNING
// and TRUE/FALSE. Statements go straight to gorm's prepared-statement pool,
// skipping gorm's reflection: the hot paths are one prepared statement each.

// conn is where a statement runs: the transaction carried by ctx, or the pool.
func (s *Store) conn(ctx context.Context) gorm.ConnPool {
	if tx := s.txFrom(ctx); tx != nil {
		return tx.db.Statement.ConnPool
	}
	return s.gdb.Statement.ConnPool
}

// exec runs a statement and returns the number of rows it affected.
func (s *Store) exec(ctx context.Context, query string, args ...any) (n int64, err error) {
	ctx, span := s.startStmtSpan(ctx, query)
	defer func() { endSpan(span, err) }()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.conn(ctx).ExecContext(bctx, query, args...)
	if err != nil {
		return 0, classify(s.note(ctx, bctx, err))
	}
	n, err = res.RowsAffected()
	if err != nil {
		return 0, classify(s.note(ctx, bctx, err))
	}
	return n, nil
}

// queryRow runs a query expected to return at most one row. Errors surface
// from Scan, unclassified; pass them through classify (or scanErr).
//
// It is built on QueryContext rather than gorm's QueryRowContext: when the
// statement cannot be prepared (the connection is gone, the pool closed),
// gorm's prepared-statement pool returns an empty *sql.Row, whose Scan panics.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *row {
	ctx, span := s.startStmtSpan(ctx, query)
	bctx, cancel := s.bound(ctx)
	rows, err := s.conn(ctx).QueryContext(bctx, query, args...)
	return &row{rows: rows, err: err, s: s, ctx: ctx, bounded: bctx, cancel: cancel, span: span}
}

// row is a *sql.Row that keeps the query's error, its bound, and the
// query's span (nil: none), ended by Scan.
type row struct {
	rows         *sql.Rows
	s            *Store
	err          error
	ctx, bounded context.Context
	cancel       context.CancelFunc
	span         trace.Span
}

// Scan copies the first row's columns into dest, as (*sql.Row).Scan does: no
// row → sql.ErrNoRows; further rows are discarded.
func (r *row) Scan(dest ...any) error {
	defer r.cancel()
	err := r.s.note(r.ctx, r.bounded, r.scan(dest...))
	endScanSpan(r.span, err)
	return err
}

func (r *row) scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

// query runs a query returning rows; Close them to release the statement's
// bound. Its span covers the round trip, not the rows streamed after.
func (s *Store) query(ctx context.Context, query string, args ...any) (*boundRows, error) {
	ctx, span := s.startStmtSpan(ctx, query)
	bctx, cancel := s.bound(ctx)
	rows, err := s.conn(ctx).QueryContext(bctx, query, args...)
	if err != nil {
		cancel()
		err = classify(s.note(ctx, bctx, err))
		endSpan(span, err)
		return nil, err
	}
	endSpan(span, nil)
	return &boundRows{Rows: rows, s: s, ctx: ctx, bounded: bctx, cancel: cancel}, nil
}

// sqliteTimeLayout is how SQLite stores timestamps: UTC, fixed width, so that
// string order is time order.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// normTime is t as the database keeps it: UTC, microsecond precision (the
// precision of PostgreSQL's timestamptz).
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// now is the store clock, normalised.
func (s *Store) nowUTC() time.Time { return normTime(s.now()) }

// timeArg encodes t as a statement argument for the store's dialect.
func (s *Store) timeArg(t time.Time) any {
	t = normTime(t)
	if s.dialect == DialectSQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// nullTimeArg is timeArg with the zero time as NULL.
func (s *Store) nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.timeArg(t)
}

// nullTimePtrArg is timeArg with nil as NULL.
func (s *Store) nullTimePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.nullTimeArg(*t)
}

// timeCol scans a timestamp column of either dialect; NULL scans as the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = normTime(x)
	case string:
		return c.parse(x)
	case []byte:
		return c.parse(string(x))
	default:
		return fmt.Errorf("storage: cannot scan %T into a time", v)
	}
	return nil
}

func (c timeCol) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("storage: bad timestamp %q: %w", v, err)
	}
	*c.t = normTime(t)
	return nil
}

// nullTimeCol scans a nullable timestamp column into a *time.Time.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(v); err != nil {
		return err
	}
	*c.t = &t
	return nil
}

// encodeList encodes a list column as a JSON array ("[]" for none).
func encodeList(list []string) string {
	if len(list) == 0 {
		return "[]"
	}
	b, err := json.Marshal(list)
	if err != nil { // cannot happen for []string
		panic(err)
	}
	return string(b)
}

// decodeList decodes a JSON array column; an empty array decodes as nil.
func decodeList(v string) ([]string, error) {
	if v == "" || v == "[]" {
		return nil, nil
	}
	if list, ok := decodePlainList(v); ok {
		return list, nil
	}
	var list []string
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return nil, fmt.Errorf("storage: bad list column %q: %w", v, err)
	}
	return list, nil
}

// decodePlainList is decodeList's fast path, on every token read: the
// session decoder's string-array reader (sessionDecoder.strings), so there is
// one such parser. It takes a compact array of printable-ASCII strings
// without escapes, as encodeList writes scopes, audiences and URIs, and
// reports false for anything else, which json.Unmarshal then reads.
func decodePlainList(v string) ([]string, bool) {
	d := sessionDecoder{b: []byte(v)}
	list, ok := d.strings()
	if !ok || d.pos != len(d.b) || list == nil {
		return nil, false
	}
	return list, true
}

// stmt is one SQL statement and its arguments, built once by a Store method
// and run either through database/sql (exec, query) or in a pgx batch.
type stmt struct {
	sql  string
	args []any
}

// rowScanner is *sql.Rows or pgx.Rows.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}
