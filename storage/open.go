package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialects returned by (*Store).Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// sqliteBusyTimeout is how long a SQLite connection waits for the write lock
// before it gives up with SQLITE_BUSY (reported as ErrUnavailable), when
// Options.QueryTimeout is 0 or longer; otherwise the query timeout is the
// busy timeout, so a statement waiting for the lock ends within its bound.
const sqliteBusyTimeout = 10 * time.Second

// Options tune Open. The zero value is usable.
type Options struct {
	// Clock is the time source for timestamps and expiry checks; nil means time.Now.
	Clock func() time.Time
	// Logger receives migration progress; nil discards.
	Logger *slog.Logger
	// MaxOpenConns caps the connection pool; 0 picks a default per dialect
	// (PostgreSQL: max(10, 4×GOMAXPROCS); SQLite file: max(4, GOMAXPROCS);
	// SQLite in memory: always 1, since each connection would be its own database).
	// On PostgreSQL, Open adds a pool of half as many connections (at least
	// 2) for the hot reads (see Open), so the server may see 1.5 × MaxOpenConns.
	MaxOpenConns int
	// QueryTimeout bounds each statement outside a transaction and each
	// transaction from BEGIN to its end, pool acquire included; past it the
	// statement fails with ErrUnavailable (a transaction rolls back). On
	// PostgreSQL it is also the connect timeout of both pools; on SQLite it
	// caps the busy timeout. 0 means no bound (and a 10 s busy timeout).
	QueryTimeout time.Duration
	// TracerProvider records a span per transaction and statement of a
	// traced request (see WithTracerProvider); nil records none.
	TracerProvider trace.TracerProvider
}

// Store is otpstep's persistence: a connection pool to PostgreSQL or SQLite.
// A Store is safe for concurrent use by many goroutines, and several Stores (or
// processes) may share one PostgreSQL database: every multi-step operation is
// either one atomic statement or runs in a transaction.
type Store struct {
	gdb     *gorm.DB // also identifies the pool in transaction contexts
	sqlDB   *sql.DB
	dialect string
	now     func() time.Time
	log     *slog.Logger
	tables  requestTables
	// purgeBatch is PurgeExpired's batch size; 0 is defaultPurgeBatch
	// (tests set a small one).
	purgeBatch int
	// queryTimeout bounds statements and transactions (Options.QueryTimeout).
	queryTimeout time.Duration
	// outage is shared by the Stores derived from this one (see Ready).
	outage *outageMark

	// reads is a native pgx pool beside gorm's (PostgreSQL from Open only)
	// for the hot read-only queries outside a transaction; see readRow.
	reads *pgxpool.Pool
	// clients, when set, supplies the client of token reads outside a
	// transaction; see WithClientLoader.
	clients ClientLoader
	// tracer starts the storage spans (trace.go).
	tracer trace.Tracer
}

// Open connects to the database named by dsn and returns a Store. It does not
// migrate; call Migrate. When the database cannot be reached or opened, the
// error matches ErrUnavailable.
//
//   - postgres://… or postgresql://… : PostgreSQL through pgx. Besides gorm's
//     pool, a native pgx pool (same DSN, half the size, connecting lazily)
//     serves the hot paths outside a transaction: token, user and client
//     reads, and the session API's pipelined new-session transaction.
//   - sqlite://path, sqlite:path, sqlite::memory: or a bare file path: SQLite
//     (pure Go) with WAL, foreign keys, a 10 s busy timeout and BEGIN IMMEDIATE
//     transactions, so concurrent writers queue instead of deadlocking.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s := &Store{now: opts.Clock, log: opts.Logger, tracer: newTracer(opts.TracerProvider),
		queryTimeout: opts.QueryTimeout, outage: newOutageMark()}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	var (
		dialector gorm.Dialector
		maxConns  = opts.MaxOpenConns
		inMemory  bool
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = DialectPostgres
		connCfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", s.dialect, err)
		}
		if opts.QueryTimeout > 0 {
			connCfg.ConnectTimeout = opts.QueryTimeout
		}
		dialector = postgres.New(postgres.Config{Conn: sql.OpenDB(newDeadConnConnector(*connCfg, s.outage))})
		if maxConns <= 0 {
			maxConns = max(10, 4*runtime.GOMAXPROCS(0))
		}
	default:
		path, err := sqlitePath(dsn)
		if err != nil {
			return nil, err
		}
		s.dialect = DialectSQLite
		inMemory = path == ":memory:"
		dialector = sqlite.Open(sqliteDSN(path, opts.QueryTimeout))
		switch {
		case inMemory:
			maxConns = 1
		case maxConns <= 0:
			maxConns = max(4, runtime.GOMAXPROCS(0))
		}
	}

	gdb, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		PrepareStmt:            false, // pgx caches statements per connection; gorm's cache could deadlock a full pool on a cold start
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
	})
	if err != nil { // the dialector may already have queried the database
		return nil, fmt.Errorf("storage: open %s: %w", s.dialect, classify(err))
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", s.dialect, err)
	}
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	if !inMemory {
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s.gdb, s.sqlDB = gdb, sqlDB
	s.tables = newRequestTables()

	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if s.dialect == DialectPostgres {
		if s.reads, err = openReadPool(dsn, readPoolSize(maxConns), opts.QueryTimeout, s.outage); err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("storage: open %s: %w", s.dialect, err)
		}
	}
	return s, nil
}

// sqlitePath extracts the file path (or ":memory:") from a SQLite DSN.
func sqlitePath(dsn string) (string, error) {
	path := dsn
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "sqlite:"):
		path = strings.TrimPrefix(dsn, "sqlite:")
	case strings.Contains(dsn, "://"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return "", fmt.Errorf("storage: unsupported database scheme %q (want postgres://, postgresql:// or sqlite://)", scheme)
	case strings.Contains(dsn, "=") && strings.Contains(dsn, " "):
		// "host=… dbname=…" is a PostgreSQL keyword DSN, not a file name.
		return "", errors.New("storage: keyword/value DSNs are not supported; use a postgres:// URL")
	}
	if path == "" {
		return "", errors.New("storage: empty SQLite path")
	}
	return path, nil
}

// sqliteDSN adds the connection settings otpstep relies on to a SQLite path.
// Parameters already present in the path's query are kept.
func sqliteDSN(path string, queryTimeout time.Duration) string {
	base, query, _ := strings.Cut(path, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		q = url.Values{}
	}
	busy := sqliteBusyTimeout
	if queryTimeout > 0 && queryTimeout < busy {
		busy = queryTimeout
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if base != ":memory:" {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	if q.Get("_txlock") == "" {
		// Take the write lock at BEGIN: a deferred transaction that reads and
		// then writes cannot upgrade its lock while another writer holds it, and
		// SQLite fails that case at once instead of waiting.
		q.Set("_txlock", "immediate")
	}
	return base + "?" + q.Encode()
}

// Close closes the connection pools. Stores derived with WithClock or
// WithClientLoader share them.
func (s *Store) Close() error {
	if s.reads != nil {
		s.reads.Close()
	}
	if err := s.sqlDB.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Pools are s's connection pools, for their statistics: gorm's
// database/sql pool, and the native pgx pool for hot reads (PostgreSQL
// opened by Open; nil otherwise).
func (s *Store) Pools() (*sql.DB, *pgxpool.Pool) { return s.sqlDB, s.reads }

// Dialect is "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers. When it cannot be reached (or the
// Store is closed) the error matches ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	// database/sql retries getting a connection, not the ping: a dead pooled
	// connection fails it with driver.ErrBadConn, and is closed. A ping
	// changes nothing, so it runs again, once per pooled connection at most.
	err := s.sqlDB.PingContext(bctx)
	for range s.sqlDB.Stats().MaxOpenConnections {
		if !errors.Is(err, driver.ErrBadConn) || bctx.Err() != nil {
			break
		}
		err = s.sqlDB.PingContext(bctx)
	}
	if err != nil {
		return fmt.Errorf("storage: ping %s: %w", s.dialect, classify(s.note(ctx, bctx, err)))
	}
	return nil
}

// WithClock returns a Store that shares s's connection pool (and its
// transactions) but reads time from clock. Tests use it to move time without
// sleeping.
func (s *Store) WithClock(clock func() time.Time) *Store {
	c := *s
	c.now = clock
	return &c
}
