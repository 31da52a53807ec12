package bench

import (
	"sync/atomic"
	"time"

	"github.com/jellydator/ttlcache/v3"
	"github.com/maypok86/otter/v2"
	gocache "github.com/patrickmn/go-cache"
)

// otterCache is otter/v2 with a maximum size and expire-after-access. At the
// cap it evicts (W-TinyLFU) where roster refuses. Its clock is otter's own
// CoarseClock, or the ManualClock when one is given (then no periodic
// clean-up goroutine runs and Sweep's CleanUp is the only one).
type otterCache struct {
	c       *otter.Cache[string, *Payload]
	coarse  *otter.CoarseClock
	evicted atomic.Int64
}

// NewOtter returns the otter contender.
func NewOtter(cfg Config) Registry {
	r := &otterCache{}
	o := &otter.Options[string, *Payload]{
		MaximumSize:      cfg.Cap,
		ExpiryCalculator: otter.ExpiryAccessing[string, *Payload](cfg.timeout()),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *Payload]) {
			if e.Cause.IsEviction() {
				r.evicted.Add(1)
			}
		},
	}
	if cfg.Clock != nil {
		o.Clock = cfg.Clock
	} else {
		r.coarse = otter.NewCoarseClock(CoarseResolution)
		o.Clock = r.coarse
	}
	r.c = otter.Must(o)
	return r
}

func (r *otterCache) Create(id string) error {
	if _, ok := r.c.SetIfAbsent(id, payload); !ok {
		return ErrExists
	}
	return nil
}

func (r *otterCache) CreateTTL(id string, ttl time.Duration) error {
	if err := r.Create(id); err != nil {
		return err
	}
	r.c.SetExpiresAfter(id, ttl)
	return nil
}

func (r *otterCache) Get(id string) bool {
	_, ok := r.c.GetIfPresent(id)
	return ok
}

func (r *otterCache) Delete(id string) { r.c.Invalidate(id) }

// Sweep runs otter's maintenance, which expires entries through its timer
// wheel. The count comes from the deletion listener, so it includes
// evictions that otter did on its own since the last Sweep.
func (r *otterCache) Sweep() int {
	r.c.CleanUp()
	return int(r.evicted.Swap(0))
}

func (r *otterCache) Len() int {
	r.c.CleanUp()
	return r.c.EstimatedSize()
}

func (r *otterCache) Close() {
	r.c.StopAllGoroutines()
	r.c.InvalidateAll()
	if r.coarse != nil {
		r.coarse.Stop()
	}
}

// ttlCache is jellydator/ttlcache/v3 with touch on get (its default): every
// Get takes the cache's one mutex for writing, moves the item to the front of
// its LRU list and fixes its place in the expiry heap. It reads the system
// clock (time.Now) and cannot be given another. At the cap it evicts the
// least recently used item. No janitor goroutine is started: Sweep is
// DeleteExpired, which pops expired items off the heap.
type ttlCache struct {
	c *ttlcache.Cache[string, *Payload]
}

// NewTTLCache returns the ttlcache contender.
func NewTTLCache(cfg Config) Registry {
	opts := []ttlcache.Option[string, *Payload]{ttlcache.WithTTL[string, *Payload](cfg.timeout())}
	if cfg.Cap > 0 {
		opts = append(opts, ttlcache.WithCapacity[string, *Payload](uint64(cfg.Cap)))
	}
	return &ttlCache{c: ttlcache.New(opts...)}
}

func (r *ttlCache) Create(id string) error {
	if _, loaded := r.c.GetOrSet(id, payload); loaded {
		return ErrExists
	}
	return nil
}

func (r *ttlCache) CreateTTL(id string, ttl time.Duration) error {
	if _, loaded := r.c.GetOrSet(id, payload, ttlcache.WithTTL[string, *Payload](ttl)); loaded {
		return ErrExists
	}
	return nil
}

func (r *ttlCache) Get(id string) bool { return r.c.Get(id) != nil }

func (r *ttlCache) Delete(id string) { r.c.Delete(id) }

func (r *ttlCache) Sweep() int {
	n := r.c.Metrics().Evictions
	r.c.DeleteExpired()
	return int(r.c.Metrics().Evictions - n)
}

func (r *ttlCache) Len() int { return r.c.Len() }

func (r *ttlCache) Close() { r.c.DeleteAll() }

// goCache is patrickmn/go-cache: one sync.RWMutex around one map. A Get
// does not refresh the expiry (expiry counts from the creation), there is no
// cap (Create checks ItemCount, as a user would), it reads time.Now on every
// Get, and its janitor, DeleteExpired, takes the write lock and scans every
// item. Its own janitor goroutine is not started (it stops only from a
// finalizer): Sweep calls DeleteExpired.
type goCache struct {
	c   *gocache.Cache
	cap int
}

// NewGoCache returns the go-cache contender.
func NewGoCache(cfg Config) Registry {
	return &goCache{c: gocache.New(cfg.timeout(), 0), cap: cfg.Cap}
}

func (r *goCache) Create(id string) error { return r.CreateTTL(id, gocache.DefaultExpiration) }

func (r *goCache) CreateTTL(id string, ttl time.Duration) error {
	if r.cap > 0 && r.c.ItemCount() >= r.cap {
		return ErrFull
	}
	if r.c.Add(id, payload, ttl) != nil {
		return ErrExists
	}
	return nil
}

func (r *goCache) Get(id string) bool {
	_, ok := r.c.Get(id)
	return ok
}

func (r *goCache) Delete(id string) { r.c.Delete(id) }

func (r *goCache) Sweep() int {
	n := r.c.ItemCount()
	r.c.DeleteExpired()
	return n - r.c.ItemCount()
}

func (r *goCache) Len() int { return r.c.ItemCount() }

func (r *goCache) Close() { r.c.Flush() }
