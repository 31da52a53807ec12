// Package evict holds the pieces of idle eviction that know nothing about
// what is evicted: the time base that stamps use, the idle min-heap each shard
// keeps, and the single sweeper goroutine that drives the sweeps (with a
// small goroutine beside it that keeps the coarse clock fresh).
//
// Stamps are int64 nanoseconds since the Unix epoch. A registry writes one on
// every use; reading the system clock on every use would cost more than the
// lookup itself, so Timebase keeps a coarse reading that the clock
// goroutine refreshes, rounded up by its resolution so that a stamp is not
// earlier than the use it records as long as the refresh keeps up. When it
// does not (a loaded machine, a long pause of the process), stamps can be
// early: each refresh measures by how much the reading it replaces had
// fallen behind, and the sweep's cutoff (Timebase.Cutoff) moves back by the
// worst such lag seen recently (for as long as a stamp that early can still
// be in the registry). So eviction may come late, by up to one resolution
// plus that lag, never early. An injected Clock is read exactly on every
// call, so tests that move a manual clock see exact stamps.
package evict
