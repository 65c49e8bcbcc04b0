package storage

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationFiles holds the versioned SQL migrations, one directory per dialect.
// A schema change adds a file NNNNN_name.sql to both directories.
//
//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// migrationTable records applied versions. It is not goose's default name, so
// otpstep can share a database with an embedder's own goose migrations.
const migrationTable = "otpstep_schema_migrations"

// migrationLockID is the PostgreSQL advisory lock serialising Migrate across
// processes: crc32 (IEEE) of "otpstep", as goose's default is of "goose".
const migrationLockID int64 = 3943591242

// migrator builds a goose provider for the store's dialect; no goose global
// state is used.
func (s *Store) migrator() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrationFiles, path.Join("migrations", s.dialect))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(migrationTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.log),
	}
	dialect := goose.DialectSQLite3
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, s.sqlDB, fsys, opts...)
}

// Migrate applies every pending migration. It is idempotent, and safe to run
// from several processes at once on PostgreSQL (they queue on an advisory lock).
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.migrator()
	if err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "storage: migration applied",
			"dialect", s.dialect, "migration", path.Base(r.Source.Path), "duration", r.Duration)
	}
	return nil
}

// MigrationStatus lists every known migration, oldest first, with when it was
// applied (nil when pending).
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.migrator()
	if err != nil {
		return nil, fmt.Errorf("storage: migration status: %w", err)
	}
	status, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(status))
	for _, st := range status {
		ms := MigrationStatus{Version: st.Source.Version, Name: path.Base(st.Source.Path)}
		if st.State == goose.StateApplied {
			at := st.AppliedAt.UTC()
			ms.AppliedAt = &at
		}
		out = append(out, ms)
	}
	return out, nil
}
