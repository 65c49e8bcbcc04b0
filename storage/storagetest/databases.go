package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the admin connection

	"github.com/otpstep/otpstep/storage"
)

// PostgresEnv names the environment variable holding the DSN of a PostgreSQL
// server tests may create databases on.
const PostgresEnv = "OTPSTEP_TEST_POSTGRES"

// DefaultPostgresDSN is used when PostgresEnv is unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NewSQLite returns a migrated Store on a SQLite file in a temporary directory,
// closed when the test ends.
func NewSQLite(t *testing.T) *storage.Store {
	t.Helper()
	return newSQLite(t)
}

func newSQLite(t testing.TB) *storage.Store {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "otpstep.db")
	return open(t, dsn)
}

// PostgresDSN creates a throwaway database on the server named by
// OTPSTEP_TEST_POSTGRES (default DefaultPostgresDSN) and returns its DSN; the
// database is dropped when the test ends. When the server is not reachable the
// test is skipped — or fails when CI=true, so CI never passes by skipping.
func PostgresDSN(t *testing.T) string {
	t.Helper()
	return postgresDSN(t)
}

func postgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		base = DefaultPostgresDSN
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storagetest: bad %s %q: %v", PostgresEnv, base, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storagetest: open %s: %v", u.Redacted(), err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		msg := "PostgreSQL not reachable at " + u.Redacted() + ": skipping (" + err.Error() + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true requires PostgreSQL")
		}
		t.Skip(msg)
	}

	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		t.Fatal(err)
	}
	name := "otpstep_test_" + hex.EncodeToString(buf[:])
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storagetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("storagetest: drop database %s: %v", name, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storagetest: drop database %s: %v", name, err)
		}
	})
	// A throwaway database need not survive a crash: skip the WAL flush at commit.
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" SET synchronous_commit = off"); err != nil {
		t.Fatalf("storagetest: configure database %s: %v", name, err)
	}

	dbURL := *u
	dbURL.Path = "/" + name
	return dbURL.String()
}

// NewPostgres returns a migrated Store on a throwaway PostgreSQL database
// (see PostgresDSN), closed and dropped when the test ends.
func NewPostgres(t *testing.T) *storage.Store {
	t.Helper()
	return newPostgres(t)
}

func newPostgres(t testing.TB) *storage.Store {
	t.Helper()
	return open(t, postgresDSN(t))
}

func open(t testing.TB, dsn string) *storage.Store {
	t.Helper()
	ctx := context.Background()
	s, err := storage.Open(ctx, dsn, storage.Options{})
	if err != nil {
		t.Fatalf("storagetest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storagetest: close: %v", err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("storagetest: migrate: %v", err)
	}
	return s
}
