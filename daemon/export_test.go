package daemon

// CachedLeaves reports how many leaves ca's cache holds.
func CachedLeaves(ca *CA) int { return ca.cached() }
