package postgres

// CommitCounts returns how many decision batches s wrote in one round trip and how many
// took the locking path.
func CommitCounts(s *Store) (fast, locked int64) {
	return s.fastCommits.Load(), s.lockedCommits.Load()
}
