package daemon

// CachedLeaves reports how many leaves ca's cache holds.
func CachedLeaves(ca *CA) int { return ca.cached() }

// Streamed is streamed, for the proxy's tests.
var Streamed = streamed
