package storage

import (
	"database/sql"
	"errors"
	"fmt"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
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
//     40P01 deadlock, SQLite BUSY/LOCKED         → fosite.ErrSerializationFailure
//
// The driver error stays in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%w: %w", &notFoundError{what: "row"}, err)
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
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		}
	}
	return err
}

// scanErr classifies a Scan error, naming what was missing when there was no row.
func scanErr(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(what)
	}
	return classify(err)
}
