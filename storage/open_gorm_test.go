package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

func TestOpenGorm_SQLitePoolOfTheHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.db")
	db, err := gorm.Open(sqlite.Open(path+"?_pragma=foreign_keys(1)"), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })

	s, err := storage.OpenGorm(t.Context(), db, storage.Options{})
	require.NoError(t, err)
	assert.Equal(t, storage.DialectSQLite, s.Dialect())
	require.NoError(t, s.Migrate(t.Context()))
	require.NoError(t, s.UpsertExternalUser(t.Context(), &storage.User{ID: "h1", Email: "h1@example.com"}))

	// The host's own tables and otpstep's share the pool.
	require.NoError(t, db.Exec(`CREATE TABLE host_things (id TEXT PRIMARY KEY)`).Error)
	var n int64
	require.NoError(t, db.Raw(`SELECT count(*) FROM users`).Scan(&n).Error)
	assert.Equal(t, int64(1), n)
}

func TestOpenGorm_SQLiteWithoutForeignKeysIsRefused(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "host.db")), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })
	_, err = storage.OpenGorm(t.Context(), db, storage.Options{})
	require.ErrorContains(t, err, "foreign keys")
}

func TestOpenGorm_PostgresPoolOfTheHost(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })

	s, err := storage.OpenGorm(t.Context(), db, storage.Options{})
	require.NoError(t, err)
	assert.Equal(t, storage.DialectPostgres, s.Dialect())
	require.NoError(t, s.Migrate(t.Context()))
	u := &storage.User{ID: "h2", Email: "h2@example.com"}
	require.NoError(t, s.UpsertExternalUser(t.Context(), u))
	got, err := s.GetUser(t.Context(), "h2")
	require.NoError(t, err)
	assert.Equal(t, u, got)
}

func TestOpenGorm_NilIsAnError(t *testing.T) {
	_, err := storage.OpenGorm(t.Context(), nil, storage.Options{})
	assert.Error(t, err)
}
