package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// OpenGorm returns a Store on a connection pool the caller already holds: an
// embedding host's *gorm.DB. otpstep's tables live beside the host's (Migrate
// creates them; its migration table is otpstep_schema_migrations, so it does
// not collide with the host's own goose migrations).
//
// The dialect comes from db's dialector: "postgres" (gorm.io/driver/postgres,
// pgx) or "sqlite" (github.com/glebarez/sqlite, whose errors otpstep
// classifies). A SQLite pool must enforce foreign keys (_pragma=foreign_keys(1)
// in its DSN); OpenGorm checks that on one connection. It does not migrate;
// it pings the database (an unreachable one → ErrUnavailable).
//
// The pool stays the caller's: do not Close a Store from OpenGorm unless the
// caller means to close db's pool too. opts.QueryTimeout bounds statements
// and transactions as for Open, but the pool's connect timeout and SQLite's
// busy timeout stay as the caller set them. opts.MaxOpenConns is ignored, and no
// second pool is opened for hot reads (as Open does on PostgreSQL): every
// statement goes through db.
func OpenGorm(ctx context.Context, db *gorm.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("storage: open gorm: nil *gorm.DB")
	}
	s := &Store{now: opts.Clock, log: opts.Logger, tracer: newTracer(opts.TracerProvider),
		queryTimeout: opts.QueryTimeout, outage: &outageMark{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch name := db.Dialector.Name(); name {
	case "postgres":
		s.dialect = DialectPostgres
	case "sqlite":
		s.dialect = DialectSQLite
	default:
		return nil, fmt.Errorf("storage: open gorm: dialect %q is not postgres or sqlite", name)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("storage: open gorm: %w", err)
	}
	s.gdb, s.sqlDB = db, sqlDB
	s.tables = newRequestTables()
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	if s.dialect == DialectSQLite {
		var on int
		if err := s.queryRow(ctx, `PRAGMA foreign_keys`).Scan(&on); err != nil {
			return nil, fmt.Errorf("storage: open gorm: %w", classify(err))
		}
		if on != 1 {
			return nil, errors.New("storage: open gorm: the SQLite pool does not enforce foreign keys (open it with _pragma=foreign_keys(1))")
		}
	}
	return s, nil
}
