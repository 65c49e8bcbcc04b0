package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/ory/fosite"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

// notFoundError is returned when a row does not exist. It matches both
// ErrNotFound and fosite.ErrNotFound with errors.Is (fosite's PKCE, OpenID
// Connect, refresh and revocation handlers depend on the latter).
type notFoundError struct{ what string }

func (e *notFoundError) Error() string   { return "storage: " + e.what + " not found" }
func (e *notFoundError) Unwrap() []error { return []error{ErrNotFound, fosite.ErrNotFound} }

func notFound(what string) error { return &notFoundError{what: what} }

// classify maps driver errors onto the errors callers match:
//
//   - no rows                                   → ErrNotFound and fosite.ErrNotFound
//   - unique / primary key violation            → ErrAlreadyExists
//   - foreign key violation (missing parent)    → ErrNotFound and fosite.ErrNotFound
//   - PostgreSQL 40001 serialization failure,
//     40P01 deadlock, SQLite BUSY_SNAPSHOT and
//     LOCKED                                     → fosite.ErrSerializationFailure
//   - the database cannot be reached or used at
//     all (see unavailable)                      → ErrUnavailable
//
// The driver error stays in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%w: %w", &notFoundError{what: "row"}, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01":
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		case "23505":
			return fmt.Errorf("%w: %w", ErrAlreadyExists, err)
		case "23503":
			return fmt.Errorf("%w: %w", &notFoundError{what: "referenced row"}, err)
		}
		return err
	}
	var liteErr *gosqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		switch {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", ErrAlreadyExists, err)
		case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", &notFoundError{what: "referenced row"}, err)
		case code == sqlite3.SQLITE_BUSY_SNAPSHOT, code&0xff == sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		}
	}
	return err
}

// unavailable reports whether err is a connection-level failure rather than
// an error of the statement: the server refused or dropped the connection
// (refused, reset, broken pipe, EOF), a PostgreSQL connection attempt failed
// (its database dropped, the server starting or shutting down, a connect
// timeout), PostgreSQL ended the session (SQLSTATE class 08, 57P01-57P03,
// 3D000, 53100 disk full, 53300), the pool is closed, a deadline passed (a pool acquire or a
// statement past Options.QueryTimeout, a connect past its timeout), or
// SQLite cannot open, read or write its file (CANTOPEN, IOERR, NOTADB, FULL:
// the disk is full) or still finds its write lock held once the busy timeout
// is over (BUSY; BUSY_SNAPSHOT is a conflict, see classify). A statement
// on a connection pgx already closed ("conn closed") is one too. A context
// cancelled by the caller is not unavailability.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", // admin_shutdown (also: database dropped WITH (FORCE))
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "3D000", // invalid_catalog_name: the database does not exist
			pgErr.Code == "53100", // disk_full
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var liteErr *gosqlite.Error
	if errors.As(err, &liteErr) {
		if liteErr.Code() == sqlite3.SQLITE_BUSY_SNAPSHOT {
			return false
		}
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY:
			return true
		}
		return false
	}
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, puddle.ErrClosedPool), // the pgx read pool is closed
		errors.Is(err, pgconn.ErrConnClosed), // a statement on a connection pgx closed after a failure
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	// database/sql's error for a closed *sql.DB is not exported.
	return strings.Contains(err.Error(), "sql: database is closed")
}

// isNotFound reports whether err means a missing row.
func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, fosite.ErrNotFound)
}

// scanErr classifies a Scan error, naming what was missing when there was no row.
func scanErr(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(what)
	}
	return classify(err)
}
