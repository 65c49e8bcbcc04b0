package storage

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpen_SQLiteConnectionSettings(t *testing.T) {
	s, err := Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "x.db"), Options{})
	require.NoError(t, err)
	defer s.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"busy_timeout": "10000",
		"synchronous":  "1", // NORMAL
	} {
		var got string
		require.NoError(t, s.queryRow(t.Context(), "PRAGMA "+pragma).Scan(&got), pragma)
		assert.Equal(t, want, got, pragma)
	}
}

// A query timeout below the default busy timeout becomes the busy timeout:
// a statement waiting for SQLite's write lock ends within its bound.
func TestOpen_SQLiteBusyTimeoutIsAtMostTheQueryTimeout(t *testing.T) {
	s, err := Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "x.db"), Options{QueryTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer s.Close()
	var got string
	require.NoError(t, s.queryRow(t.Context(), "PRAGMA busy_timeout").Scan(&got))
	assert.Equal(t, "2000", got)
}
