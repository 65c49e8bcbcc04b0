package storage

import "github.com/jackc/pgx/v5/pgxpool"

// ClaimOutboxSQL exposes ClaimOutbox's statement to the plan test.
func (s *Store) ClaimOutboxSQL() string { return s.claimOutboxSQL() }

// SetPurgeBatch sets PurgeExpired's batch size (0: the default).
func (s *Store) SetPurgeBatch(n int) { s.purgeBatch = n }

// ReadPool is the native pgx pool of the hot reads (nil on SQLite).
func (s *Store) ReadPool() *pgxpool.Pool { return s.reads }
