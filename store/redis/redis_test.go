package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rosterhq/roster/internal/redistest"
	"github.com/rosterhq/roster/store"
	rstore "github.com/rosterhq/roster/store/redis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, srv *redistest.Server) (*rstore.Store, goredis.UniversalClient) {
	t.Helper()
	return newStoreWith(t, srv, rstore.Options{Prefix: "t:"})
}

func newStoreWith(t *testing.T, srv *redistest.Server, o rstore.Options) (*rstore.Store, goredis.UniversalClient) {
	t.Helper()
	c, err := rstore.Dial(context.Background(), srv.URL(), "", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := rstore.New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestKeysShareHashTag(t *testing.T) {
	s, err := rstore.New(nil, rstore.Options{Prefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, state, lease string }{
		{"abc", "p:{abc}:s", "p:{abc}:l"},
		{"a}b", "", ""}, // a brace gets a hashed tag
		{"{x", "", ""},
	} {
		st, l := s.StateKey(tc.id), s.LeaseKey(tc.id)
		if tc.state != "" && (st != tc.state || l != tc.lease) {
			t.Errorf("%q: keys %q %q, want %q %q", tc.id, st, l, tc.state, tc.lease)
		}
		tag := func(k string) string {
			i := strings.IndexByte(k, '{')
			j := strings.IndexByte(k[i:], '}')
			return k[i+1 : i+j]
		}
		if tag(st) != tag(l) || tag(st) == "" {
			t.Errorf("%q: tags of %q and %q differ or are empty", tc.id, st, l)
		}
	}
	if _, err := rstore.New(nil, rstore.Options{Prefix: "a{b"}); err == nil {
		t.Error("a prefix with a brace was accepted")
	}
}

func TestLeaseLifecycle(t *testing.T) {
	for _, clusterSafe := range []bool{false, true} {
		t.Run(fmt.Sprintf("ClusterSafe=%v", clusterSafe), func(t *testing.T) { testLeaseLifecycle(t, clusterSafe) })
	}
}

func testLeaseLifecycle(t *testing.T, clusterSafe bool) {
	srv := redistest.Start(t)
	s, c := newStoreWith(t, srv, rstore.Options{Prefix: "t:", ClusterSafe: clusterSafe})
	ctx := redistest.Context(t)
	a := store.AcquireRequest{ID: "s1", Owner: "A", TTL: time.Minute}
	la, st, err := s.Acquire(ctx, a)
	if err != nil || st != nil || la.Token != 1 {
		t.Fatalf("first acquire: %+v %q %v", la, st, err)
	}
	// The holder asking again gets its token back.
	if l, _, err := s.Acquire(ctx, a); err != nil || l.Token != la.Token {
		t.Fatalf("re-acquire: %+v %v", l, err)
	}
	b := a
	b.Owner = "B"
	if _, _, err := s.Acquire(ctx, b); !errors.Is(err, store.ErrLeased) || !strings.Contains(err.Error(), "A") {
		t.Fatalf("acquire of a held lease: %v, want ErrLeased naming A", err)
	}
	errs, err := s.Save(ctx, []store.Write{{Lease: la, State: []byte(`{"v":1}`), StateTTL: time.Hour, Release: true}})
	if err != nil || errs[0] != nil {
		t.Fatalf("save: %v %v", errs, err)
	}
	lb, st, err := s.Acquire(ctx, b)
	if err != nil || string(st) != `{"v":1}` || lb.Token != 2 {
		t.Fatalf("acquire after release: %+v %q %v", lb, st, err)
	}
	// A's late write carries token 1: refused.
	errs, err = s.Save(ctx, []store.Write{{Lease: la, State: []byte(`{"v":"late"}`), StateTTL: time.Hour}})
	if err != nil || !errors.Is(errs[0], store.ErrFenced) {
		t.Fatalf("late write: %v %v, want ErrFenced", errs, err)
	}
	if v, _ := c.Get(ctx, s.StateKey("s1")).Result(); v != `{"v":1}` {
		t.Fatalf("state after a fenced write: %q", v)
	}
	ok, err := s.Renew(ctx, []store.Lease{la, lb}, time.Minute)
	if err != nil || ok[0] || !ok[1] {
		t.Fatalf("renew: %v %v, want [false true]", ok, err)
	}
	if err := s.Delete(ctx, la); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced delete: %v", err)
	}
	if err := s.Delete(ctx, store.Lease{ID: "s1"}); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("delete without the lease: %v", err)
	}
	if err := s.Delete(ctx, lb); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, s.StateKey("s1"), s.LeaseKey("s1")).Result(); n != 0 {
		t.Fatalf("%d keys left after delete", n)
	}
	// Create refuses an ID with stored state.
	if _, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "s2", Owner: "A", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	l2, _, _ := s.Acquire(ctx, store.AcquireRequest{ID: "s2", Owner: "A", TTL: time.Minute})
	if _, err := s.Save(ctx, []store.Write{{Lease: l2, State: []byte("x"), StateTTL: time.Hour, Release: true}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "s2", Owner: "B", TTL: time.Minute, Create: true}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create over stored state: %v", err)
	}
}

func TestLeaseExpires(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv)
	ctx := redistest.Context(t)
	if _, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "x", Owner: "A", TTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "x", Owner: "B", TTL: time.Minute})
		if err == nil {
			if l.Token != 2 {
				t.Fatalf("token after expiry %d, want 2", l.Token)
			}
			return
		}
		if !errors.Is(err, store.ErrLeased) || time.Now().After(deadline) {
			t.Fatalf("acquire after expiry: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFleetCap(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv)
	ctx := redistest.Context(t)
	req := func(id, owner string) store.AcquireRequest {
		return store.AcquireRequest{ID: id, Owner: owner, TTL: time.Minute, FleetMax: 2}
	}
	l1, _, err := s.Acquire(ctx, req("a", "A"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, req("b", "B")); err != nil {
		t.Fatal(err)
	}
	// A lookup of an unknown ID takes nothing, not even a fleet slot.
	for _, r := range []store.AcquireRequest{{ID: "nobody", Owner: "A", TTL: time.Minute, IfStored: true}, {ID: "nobody", Owner: "A", TTL: time.Minute, IfStored: true, FleetMax: 100}} {
		if l, st, err := s.Acquire(ctx, r); err != nil || l.Token != 0 || st != nil {
			t.Fatalf("IfStored acquire of an unknown ID: %+v %q %v", l, st, err)
		}
	}
	if keys, _ := c.Keys(ctx, "*nobody*").Result(); len(keys) != 0 {
		t.Fatalf("IfStored acquire left %q", keys)
	}
	if n, _ := c.ZCard(ctx, s.FleetKey()).Result(); n != 2 {
		t.Fatalf("fleet holds %d after an IfStored miss, want 2", n)
	}
	if _, _, err := s.Acquire(ctx, req("c", "A")); !errors.Is(err, store.ErrFleetFull) {
		t.Fatalf("third acquire at cap 2: %v", err)
	}
	// The refused acquire holds nothing.
	if n, _ := c.Exists(ctx, s.LeaseKey("c")).Result(); n != 0 {
		t.Fatal("refused acquire left a lease")
	}
	// The holder re-acquiring takes no second slot.
	if _, _, err := s.Acquire(ctx, req("a", "A")); err != nil {
		t.Fatal(err)
	}
	// A leased ID refused takes no slot.
	if err := s.Release(ctx, []store.Lease{l1}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.ZCard(ctx, s.FleetKey()).Result(); n != 1 {
		t.Fatalf("fleet holds %d after a release, want 1", n)
	}
	if _, _, err := s.Acquire(ctx, req("b", "C")); !errors.Is(err, store.ErrLeased) {
		t.Fatal(err)
	}
	if n, _ := c.ZCard(ctx, s.FleetKey()).Result(); n != 1 {
		t.Fatalf("fleet holds %d after a refused acquire, want 1", n)
	}
	lc, _, err := s.Acquire(ctx, req("c", "A"))
	if err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
	// A renewal moves the slot's expiry with the lease's, so that a live
	// session keeps its slot: a minute now, an hour after.
	for _, clusterSafe := range []bool{false, true} {
		rs, _ := newStoreWith(t, srv, rstore.Options{Prefix: "t:", ClusterSafe: clusterSafe})
		if err := c.ZAdd(ctx, s.FleetKey(), goredis.Z{Score: 0, Member: "A/c"}).Err(); err != nil {
			t.Fatal(err)
		}
		if ok, err := rs.Renew(ctx, []store.Lease{lc}, time.Hour); err != nil || !ok[0] {
			t.Fatalf("renew: %v %v", ok, err)
		}
		now, _ := c.Time(ctx).Result()
		if score, _ := c.ZScore(ctx, s.FleetKey(), "A/c").Result(); score < float64(now.Add(59*time.Minute).UnixMilli()) {
			t.Fatalf("ClusterSafe=%v: fleet slot expires at %v after a renewal for an hour", clusterSafe, time.UnixMilli(int64(score)))
		}
	}
}

func TestScriptCacheLostOnRestart(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv)
	ctx := redistest.Context(t)
	l, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "r", Owner: "A", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	// The pool's connections are broken; the first command may see it.
	var ok []bool
	for range 3 {
		if ok, err = s.Renew(ctx, []store.Lease{l}, time.Minute); err == nil {
			break
		}
	}
	if err != nil || !ok[0] {
		t.Fatalf("renew after a restart (lease kept by the AOF): %v %v", ok, err)
	}
}

func TestUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv)
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "u", Owner: "A", TTL: time.Minute})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("acquire from a paused Redis: %v", err)
	}
	if _, err := s.Save(ctx, []store.Write{{Lease: store.Lease{ID: "u", Token: 1}, State: []byte("x"), StateTTL: time.Hour}}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("save to a paused Redis: %v", err)
	}
}

// TestFenceNeverShortened: the fencing counter outlives the state written
// under it, whatever later acquires ask: an acquire with a short lease used
// to cut the counter's TTL to 48 h while the state lived 7 days, so that a
// holder paused past 48 h could pass the fence again.
func TestFenceNeverShortened(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv)
	ctx := redistest.Context(t)
	const stateTTL = 7 * 24 * time.Hour
	la, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "f1", Owner: "A", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if errs, err := s.Save(ctx, []store.Write{{Lease: la, State: []byte("x"), StateTTL: stateTTL, Release: true}}); err != nil || errs[0] != nil {
		t.Fatalf("save: %v %v", errs, err)
	}
	if _, _, err := s.Acquire(ctx, store.AcquireRequest{ID: "f1", Owner: "B", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	fence := strings.TrimSuffix(s.StateKey("f1"), ":s") + ":f"
	ttl, err := c.PTTL(ctx, fence).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < stateTTL {
		t.Fatalf("fence %s expires in %v, before the state's %v", fence, ttl, stateTTL)
	}
}
