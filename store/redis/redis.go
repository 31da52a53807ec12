// Package redis is a store.Store on Redis (github.com/redis/go-redis/v9),
// single node or Cluster.
//
// Every key of a session ID carries the ID as its hash tag, so the keys a
// script touches together live on one Cluster node:
//
//	<prefix>{<id>}:s  the state (a protocol.SessionState as JSON), with the state TTL
//	<prefix>{<id>}:l  the lease: "token owner", with the lease TTL
//	<prefix>{<id>}:f  the fencing counter, INCRed at each new lease
//	<prefix>{fleet}   a sorted set of fleet slots, scored by expiry (ms)
//
// An ID with a brace in it gets the hex of its hash as its tag instead, so
// that it cannot end the tag early.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rosterhq/roster/store"
	"github.com/zeebo/xxh3"
)

// DefaultPrefix is the key prefix of a Store made with an empty Prefix.
const DefaultPrefix = "roster:"

// Options configure a Store.
type Options struct {
	// Prefix starts every key; "" means DefaultPrefix. It must not hold
	// a brace, which would confuse Redis Cluster's hash tags.
	Prefix string
	// ClusterSafe makes every script touch the keys of one ID only, even
	// on a single node (*redis.Client), as it must on a Cluster or behind
	// a proxy that shards keys. Clients other than *redis.Client always
	// get it. It costs renewals one call per lease instead of one per
	// thousand.
	ClusterSafe bool
}

// Store is a store.Store on a Redis client. Its methods are safe for
// concurrent use. It does not own the client: close the client yourself.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	fleet  string
	single bool // one node: a script may touch the keys of many IDs
}

var _ store.Store = (*Store)(nil)

// New returns a Store on c. It fails if the prefix holds a brace.
func New(c goredis.UniversalClient, o Options) (*Store, error) {
	p := o.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	if strings.ContainsAny(p, "{}") {
		return nil, fmt.Errorf("redis store: prefix %q holds a brace", p)
	}
	_, single := c.(*goredis.Client)
	return &Store{c: c, prefix: p, fleet: p + "{fleet}", single: single && !o.ClusterSafe}, nil
}

// Dial connects to the Redis at url (redis://, rediss:// or unix://, as
// goredis.ParseURL reads it), using password when the URL has none, and
// checks the connection with a PING within timeout. The caller closes the
// returned client.
func Dial(ctx context.Context, url, password string, timeout time.Duration) (goredis.UniversalClient, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	if o.Password == "" {
		o.Password = password
	}
	if timeout > 0 {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = timeout, timeout, timeout
	}
	c := goredis.NewClient(o)
	ctx, cancel := context.WithTimeout(ctx, max(timeout, time.Second))
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%w: ping %s: %w", store.ErrUnavailable, o.Addr, err)
	}
	return c, nil
}

func (s *Store) key(id, suffix string) string {
	if strings.ContainsAny(id, "{}") {
		return s.prefix + "{" + strconv.FormatUint(xxh3.HashString(id), 16) + "}" + id + suffix
	}
	return s.prefix + "{" + id + "}" + suffix
}

// StateKey returns the key that holds id's state, for tools and tests.
func (s *Store) StateKey(id string) string { return s.key(id, ":s") }

// LeaseKey returns the key that holds id's lease, for tools and tests.
func (s *Store) LeaseKey(id string) string { return s.key(id, ":l") }

// FleetKey returns the key of the fleet's sorted set.
func (s *Store) FleetKey() string { return s.fleet }

func member(l store.Lease) string { return l.Owner + "/" + l.ID }

func leaseValue(l store.Lease) string { return strconv.FormatInt(l.Token, 10) + " " + l.Owner }

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// fenceTTL keeps a fencing counter longer than any state or lease it
// guards, so a token is never handed out twice while either lives.
func fenceTTL(d time.Duration) int64 { return ms(max(d, 24*time.Hour) * 2) }

// unavailable wraps an error of the client as store.ErrUnavailable.
func unavailable(op, id string, err error) error {
	return fmt.Errorf("%w: %s %q: %w", store.ErrUnavailable, op, id, err)
}

// Acquire implements store.Store.
func (s *Store) Acquire(ctx context.Context, req store.AcquireRequest) (store.Lease, []byte, error) {
	l := store.Lease{ID: req.ID, Owner: req.Owner, Fleet: req.FleetMax > 0}
	create, ifStored := "0", "0"
	if req.Create {
		create = "1"
	}
	if req.IfStored {
		ifStored = "1"
	}
	keys := []string{s.key(req.ID, ":l"), s.key(req.ID, ":f"), s.key(req.ID, ":s")}
	args := []any{req.Owner, ms(req.TTL), create, fenceTTL(req.TTL), ifStored}
	var res any
	if req.FleetMax > 0 {
		// Both in one round trip; the rare loser undoes the other's effect.
		var fleet *goredis.Cmd
		var acq *goredis.Cmd
		err := s.pipe(ctx, func(p goredis.Pipeliner) {
			fleet = fleetReserveScript.EvalSha(ctx, p, []string{s.fleet}, member(l), req.FleetMax, ms(req.TTL))
			acq = acquireScript.EvalSha(ctx, p, keys, args...)
		})
		if err != nil {
			return l, nil, unavailable("acquire", req.ID, err)
		}
		res = acq.Val()
		granted, _ := fleet.Int64()
		l2, state, err := parseAcquire(l, res)
		if err == nil && l2.Token == 0 { // nothing stored: give the slot back
			if granted == 1 {
				if zerr := s.c.ZRem(ctx, s.fleet, member(l)).Err(); zerr != nil {
					return l, nil, unavailable("fleet release", req.ID, zerr)
				}
			}
			return l2, nil, nil
		}
		if err == nil && granted == 0 {
			err = fmt.Errorf("%w (%d)", store.ErrFleetFull, req.FleetMax)
			if rerr := s.Release(ctx, []store.Lease{l2}); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return l, nil, err
		}
		if err != nil && granted == 1 {
			if zerr := s.c.ZRem(ctx, s.fleet, member(l)).Err(); zerr != nil {
				err = errors.Join(err, unavailable("fleet release", req.ID, zerr))
			}
		}
		return l2, state, err
	}
	res, err := acquireScript.Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return l, nil, unavailable("acquire", req.ID, err)
	}
	return parseAcquire(l, res)
}

func parseAcquire(l store.Lease, res any) (store.Lease, []byte, error) {
	a, ok := res.([]any)
	if !ok || len(a) == 0 {
		return l, nil, fmt.Errorf("%w: acquire %q: unexpected reply %v", store.ErrUnavailable, l.ID, res)
	}
	code, _ := a[0].(int64)
	switch {
	case code == 2:
		return l, nil, fmt.Errorf("%w: %q", store.ErrExists, l.ID)
	case code == 3:
		return l, nil, nil // nothing stored, nothing taken
	case code == 0 && len(a) == 3:
		return l, nil, fmt.Errorf("%w: %q is held by %v (lease %v)", store.ErrLeased, l.ID, a[2], a[1])
	case code == 1 && len(a) >= 2:
		tok, err := strconv.ParseInt(fmt.Sprint(a[1]), 10, 64)
		if err != nil {
			return l, nil, fmt.Errorf("%w: acquire %q: bad token %v", store.ErrUnavailable, l.ID, a[1])
		}
		l.Token = tok
		if len(a) == 3 {
			st, _ := a[2].(string)
			return l, []byte(st), nil
		}
		return l, nil, nil
	}
	return l, nil, fmt.Errorf("%w: acquire %q: unexpected reply %v", store.ErrUnavailable, l.ID, res)
}

// pipe runs fill's commands in one pipeline and, when Redis has lost its
// script cache (it restarted), loads the scripts and runs them once more.
func (s *Store) pipe(ctx context.Context, fill func(goredis.Pipeliner)) error {
	for try := 0; ; try++ {
		p := s.c.Pipeline()
		fill(p)
		cmds, err := p.Exec(ctx)
		noscript := false
		for _, c := range cmds {
			if e := c.Err(); e != nil && goredis.HasErrorPrefix(e, "NOSCRIPT") {
				noscript = true
				break
			}
		}
		if !noscript || try > 0 {
			if err != nil && !isReply(err) {
				return err
			}
			return nil
		}
		for _, sc := range allScripts {
			if err := sc.Load(ctx, s.c).Err(); err != nil {
				return err
			}
		}
	}
}

// isReply reports whether err is an error reply of Redis, as opposed to a
// failure to reach it; the caller then looks at each command's result.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// batch is how many commands go into one pipeline: large enough that the
// round trips are few, small enough to bound the memory of one.
const batch = 10000

// renewChunk is how many leases one script call renews on a single node:
// the call blocks Redis for about a millisecond.
const renewChunk = 1000

// Renew implements store.Store. On a single node it renews 1,000 leases
// per script call, and a pipeline carries up to ten such calls; on a
// Cluster, one call per lease, 10,000 per pipeline.
func (s *Store) Renew(ctx context.Context, leases []store.Lease, ttl time.Duration) ([]bool, error) {
	if s.single {
		return s.renewSingle(ctx, leases, ttl)
	}
	ok := make([]bool, len(leases))
	for lo := 0; lo < len(leases); lo += batch {
		part := leases[lo:min(lo+batch, len(leases))]
		cmds := make([]*goredis.Cmd, len(part))
		err := s.pipe(ctx, func(p goredis.Pipeliner) {
			members := make([]any, 0, len(part)+1)
			members = append(members, ms(ttl))
			for i, l := range part {
				cmds[i] = renewScript.EvalSha(ctx, p, []string{s.key(l.ID, ":l")}, leaseValue(l), ms(ttl))
				if l.Fleet {
					members = append(members, member(l))
				}
			}
			if len(members) > 1 {
				fleetRenewScript.EvalSha(ctx, p, []string{s.fleet}, members...)
			}
		})
		if err != nil {
			return nil, unavailable("renew", fmt.Sprintf("%d leases", len(leases)), err)
		}
		for i, c := range cmds {
			n, _ := c.Int64()
			ok[lo+i] = n == 1
		}
	}
	return ok, nil
}

func (s *Store) renewSingle(ctx context.Context, leases []store.Lease, ttl time.Duration) ([]bool, error) {
	ok := make([]bool, len(leases))
	for lo := 0; lo < len(leases); lo += batch {
		part := leases[lo:min(lo+batch, len(leases))]
		var cmds []*goredis.Cmd
		err := s.pipe(ctx, func(p goredis.Pipeliner) {
			cmds = cmds[:0]
			for c := 0; c < len(part); c += renewChunk {
				chunk := part[c:min(c+renewChunk, len(part))]
				keys := make([]string, len(chunk))
				args := make([]any, 1, len(chunk)+1)
				args[0] = ms(ttl)
				members := make([]any, 1, len(chunk)+1)
				members[0] = ms(ttl)
				for i, l := range chunk {
					keys[i] = s.key(l.ID, ":l")
					args = append(args, leaseValue(l))
					if l.Fleet {
						members = append(members, member(l))
					}
				}
				cmds = append(cmds, renewManyScript.EvalSha(ctx, p, keys, args...))
				if len(members) > 1 {
					fleetRenewScript.EvalSha(ctx, p, []string{s.fleet}, members...)
				}
			}
		})
		if err != nil {
			return nil, unavailable("renew", fmt.Sprintf("%d leases", len(leases)), err)
		}
		for c, cmd := range cmds {
			res, _ := cmd.Val().([]any)
			for i, v := range res {
				n, _ := v.(int64)
				if j := lo + c*renewChunk + i; j < len(ok) {
					ok[j] = n == 1
				}
			}
		}
	}
	return ok, nil
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, writes []store.Write) ([]error, error) {
	errs := make([]error, len(writes))
	for lo := 0; lo < len(writes); lo += batch {
		part := writes[lo:min(lo+batch, len(writes))]
		cmds := make([]*goredis.Cmd, len(part))
		err := s.pipe(ctx, func(p goredis.Pipeliner) {
			for i, w := range part {
				l := w.Lease
				rel := "0"
				if w.Release {
					rel = "1"
				}
				cmds[i] = saveScript.EvalSha(ctx, p,
					[]string{s.key(l.ID, ":f"), s.key(l.ID, ":s"), s.key(l.ID, ":l")},
					l.Token, w.State, ms(w.StateTTL), rel, leaseValue(l), fenceTTL(w.StateTTL))
				if w.Release && l.Fleet {
					p.ZRem(ctx, s.fleet, member(l))
				}
			}
		})
		if err != nil {
			return nil, unavailable("save", fmt.Sprintf("%d states", len(writes)), err)
		}
		for i, c := range cmds {
			n, err := c.Int64()
			switch {
			case err != nil:
				errs[lo+i] = fmt.Errorf("%w: save %q: %w", store.ErrUnavailable, part[i].Lease.ID, err)
			case n == 0:
				errs[lo+i] = fmt.Errorf("%w: save %q with lease %d", store.ErrFenced, part[i].Lease.ID, part[i].Lease.Token)
			}
		}
	}
	return errs, nil
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, leases []store.Lease) error {
	for lo := 0; lo < len(leases); lo += batch {
		part := leases[lo:min(lo+batch, len(leases))]
		err := s.pipe(ctx, func(p goredis.Pipeliner) {
			for _, l := range part {
				releaseScript.EvalSha(ctx, p, []string{s.key(l.ID, ":l")}, leaseValue(l))
				if l.Fleet {
					p.ZRem(ctx, s.fleet, member(l))
				}
			}
		})
		if err != nil {
			return unavailable("release", fmt.Sprintf("%d leases", len(leases)), err)
		}
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, l store.Lease) error {
	var cmd *goredis.Cmd
	err := s.pipe(ctx, func(p goredis.Pipeliner) {
		cmd = deleteScript.EvalSha(ctx, p,
			[]string{s.key(l.ID, ":f"), s.key(l.ID, ":s"), s.key(l.ID, ":l")}, l.Token, leaseValue(l))
		if l.Fleet {
			p.ZRem(ctx, s.fleet, member(l))
		}
	})
	if err == nil {
		err = cmd.Err()
	}
	if err != nil {
		return unavailable("delete", l.ID, err)
	}
	a, _ := cmd.Val().([]any)
	if len(a) == 0 {
		return fmt.Errorf("%w: delete %q: unexpected reply %v", store.ErrUnavailable, l.ID, cmd.Val())
	}
	switch code, _ := a[0].(int64); code {
	case 0:
		return fmt.Errorf("%w: %q is held (lease %v)", store.ErrLeased, l.ID, a[1])
	case 2:
		return fmt.Errorf("%w: delete %q with lease %d", store.ErrFenced, l.ID, l.Token)
	}
	return nil
}
