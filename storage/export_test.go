package storage

// ClaimOutboxSQL exposes ClaimOutbox's statement to the plan test.
func (s *Store) ClaimOutboxSQL() string { return s.claimOutboxSQL() }
