package storage_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	storagetest.RunTests(t, storagetest.NewSQLite)
}

func TestPostgres(t *testing.T) {
	storagetest.RunTests(t, storagetest.NewPostgres)
}

// The suite again on Stores whose token reads take the client from a
// ClientLoader (as the provider's, with its client cache).
func TestSQLite_ClientLoader(t *testing.T) {
	storagetest.RunTests(t, func(t *testing.T) *storage.Store { return withGetClientLoader(storagetest.NewSQLite(t)) })
}

func TestPostgres_ClientLoader(t *testing.T) {
	storagetest.RunTests(t, func(t *testing.T) *storage.Store { return withGetClientLoader(storagetest.NewPostgres(t)) })
}

func withGetClientLoader(s *storage.Store) *storage.Store {
	return s.WithClientLoader(s.GetClient)
}

func TestOpen_SQLiteDSNForms(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		"sqlite::memory:",
		"sqlite://:memory:",
		"sqlite://" + filepath.Join(dir, "url.db"),
		"sqlite:" + filepath.Join(dir, "opaque.db"),
		filepath.Join(dir, "bare.db"),
	} {
		t.Run(dsn, func(t *testing.T) {
			s, err := storage.Open(t.Context(), dsn, storage.Options{})
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, storage.DialectSQLite, s.Dialect())
			require.NoError(t, s.Migrate(t.Context()))
			// A transaction and a write through the pool, one after the other:
			// an in-memory database has a single connection.
			require.NoError(t, s.InTx(t.Context(), func(ctx context.Context) error {
				return s.CreateUser(ctx, &storage.User{Email: "a@example.com"})
			}))
			require.NoError(t, s.CreateUser(t.Context(), &storage.User{Email: "b@example.com"}))
			users, err := s.ListUsers(t.Context())
			require.NoError(t, err)
			assert.Len(t, users, 2)
		})
	}
	assert.FileExists(t, filepath.Join(dir, "url.db"))
	assert.FileExists(t, filepath.Join(dir, "opaque.db"))
	assert.FileExists(t, filepath.Join(dir, "bare.db"))
}

func TestOpen_RejectsOtherDSNs(t *testing.T) {
	for _, dsn := range []string{"mysql://u@h/db", "host=localhost dbname=otpstep", ""} {
		_, err := storage.Open(t.Context(), dsn, storage.Options{})
		assert.Error(t, err, dsn)
	}
}

func TestOpen_PostgresDSNForms(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	for _, form := range []string{dsn, "postgresql" + strings.TrimPrefix(dsn, "postgres")} {
		s, err := storage.Open(t.Context(), form, storage.Options{MaxOpenConns: 2})
		require.NoError(t, err)
		assert.Equal(t, storage.DialectPostgres, s.Dialect())
		require.NoError(t, s.Ping(t.Context()))
		require.NoError(t, s.Close())
	}
}

func TestMigrate_ConcurrentProcessesOnOnePostgres(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := storage.Open(t.Context(), dsn, storage.Options{MaxOpenConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			errs[i] = s.Migrate(t.Context())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

func TestOpen_UnreachableDatabaseIsUnavailable(t *testing.T) {
	// Port 1 on loopback: nothing listens, the connection is refused.
	_, err := storage.Open(t.Context(), "postgres://postgres@127.0.0.1:1/otpstep?sslmode=disable&connect_timeout=5", storage.Options{})
	assert.ErrorIs(t, err, storage.ErrUnavailable)

	_, err = storage.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), storage.Options{})
	assert.ErrorIs(t, err, storage.ErrUnavailable)
}

func TestPostgres_DroppedDatabaseIsUnavailable(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	s, err := storage.Open(t.Context(), dsn, storage.Options{MaxOpenConns: 2})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(t.Context()))
	u := &storage.User{Email: "a@example.com"}
	require.NoError(t, s.CreateUser(t.Context(), u))

	base := os.Getenv(storagetest.PostgresEnv)
	if base == "" {
		base = storagetest.DefaultPostgresDSN
	}
	dbURL, err := url.Parse(dsn)
	require.NoError(t, err)
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = admin.ExecContext(ctx, "DROP DATABASE "+strings.TrimPrefix(dbURL.Path, "/")+" WITH (FORCE)")
	require.NoError(t, err)

	// The pool's connections were terminated and new ones find no database.
	for range 2 {
		assert.ErrorIs(t, s.Ping(t.Context()), storage.ErrUnavailable)
		_, err = s.GetUser(t.Context(), u.ID)
		assert.ErrorIs(t, err, storage.ErrUnavailable)
		assert.NotErrorIs(t, err, storage.ErrNotFound)
	}
}
