// Package store defines what a session.Manager needs from a shared store to
// run as one process of a fleet: a place of record for session state, leases
// that let one process at a time drive a session, fencing tokens that keep a
// paused former holder from overwriting a newer one's state, and an optional
// cap on leases across the fleet.
//
// The interface lives in a package of its own, not in package session, so
// that an implementation (store/redis) depends on neither the HTTP machinery
// of package session nor its tests, and package session's own tests can use
// a real implementation without an import cycle. Package roster re-exports
// its names.
package store

import (
	"context"
	"errors"
	"time"
)

// The errors of a Store. Implementations wrap them, adding the values at
// fault, so callers match with errors.Is.
var (
	// ErrLeased means another owner holds the session's lease. The
	// message names the holder.
	ErrLeased = errors.New("session leased by another process")
	// ErrFenced means a write was refused because a newer lease than the
	// writer's was granted since: the writer is no longer the holder.
	ErrFenced = errors.New("write refused: a newer lease exists")
	// ErrFleetFull means the fleet-wide cap on leases is reached. The
	// message gives the cap.
	ErrFleetFull = errors.New("fleet session cap reached")
	// ErrExists means the store already holds state for the ID.
	ErrExists = errors.New("session state already stored")
	// ErrUnavailable means the store could not be reached in time; the
	// operation may or may not have taken effect.
	ErrUnavailable = errors.New("session store unavailable")
)

// Lease is a lease on one session ID: who holds it and the fencing token
// it was granted with. Tokens of one ID only grow, so a larger token is a
// newer lease.
type Lease struct {
	ID    string
	Owner string
	Token int64
	// Fleet says the lease holds a fleet slot (it was taken with a
	// FleetMax), which renewals and releases then handle too.
	Fleet bool
}

// AcquireRequest asks for the lease on ID.
type AcquireRequest struct {
	ID    string
	Owner string
	// TTL is how long the lease lasts unless renewed.
	TTL time.Duration
	// FleetMax, when positive, makes the acquisition also take one of at
	// most FleetMax fleet slots, atomically with respect to every other
	// acquisition that names the same cap.
	FleetMax int
	// Create makes the acquisition fail with ErrExists when state is
	// stored under ID: a new session must not take over an old identity.
	Create bool
	// IfStored makes the acquisition take nothing, and return a zero
	// Lease.Token and nil state, when no state is stored under ID and no
	// one holds its lease: a lookup of an unknown ID leaves no trace.
	IfStored bool
}

// Write saves one session's state under its lease.
type Write struct {
	Lease Lease
	State []byte
	// StateTTL is how long the state is kept after this write.
	StateTTL time.Duration
	// Release gives the lease (and its fleet slot) up after the write.
	Release bool
}

// Store is a shared store of session state and leases. Implementations must
// be safe for concurrent use; every method honours ctx's deadline.
type Store interface {
	// Acquire takes the lease on req.ID for req.Owner and returns it with
	// the state stored under the ID, nil if there is none. An owner that
	// already holds the lease gets it back with its token, renewed. It
	// fails with ErrLeased when another owner holds it, ErrFleetFull at
	// the fleet cap and ErrExists (see AcquireRequest.Create); on failure
	// it holds nothing.
	Acquire(ctx context.Context, req AcquireRequest) (Lease, []byte, error)
	// Renew extends every lease by ttl, in as few round trips as it can,
	// with its fleet slot. It returns, per lease, whether it is still held;
	// err is set, and ok is nil, when the store could not be asked.
	Renew(ctx context.Context, leases []Lease, ttl time.Duration) (ok []bool, err error)
	// Save writes states in as few round trips as it can. A write is
	// refused with ErrFenced when a newer lease than its own was granted.
	// It returns one error per write (nil for success), or err when the
	// store could not be asked.
	Save(ctx context.Context, writes []Write) (errs []error, err error)
	// Release gives leases up with their fleet slots; a lease no longer
	// held is skipped.
	Release(ctx context.Context, leases []Lease) error
	// Delete removes the state stored under lease.ID and releases the
	// lease. It fails with ErrFenced when a newer lease exists, and with
	// ErrLeased when lease.Token is 0 and another owner holds the lease.
	Delete(ctx context.Context, lease Lease) error
}
