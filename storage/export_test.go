package storage

// ClaimOutboxSQL exposes ClaimOutbox's statement to the plan test.
func (s *Store) ClaimOutboxSQL() string { return s.claimOutboxSQL() }

// SetPurgeBatch sets PurgeExpired's batch size (0: the default).
func (s *Store) SetPurgeBatch(n int) { s.purgeBatch = n }
