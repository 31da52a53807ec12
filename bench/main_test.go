package bench

import (
	"flag"
	"math/bits"
	"os"
	"sync"
	"testing"

	"github.com/rosterhq/roster/idgen"
	"github.com/rosterhq/roster/session"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv("BENCH_SERVER_CHILD"); kind != "" {
		serverChild(kind) // the server process of -server-process
		return
	}
	goleak.VerifyTestMain(m)
}

// round rotates the order in which the contenders run, so that over the
// rounds of run.sh none of them always runs first (or right after the
// heaviest one).
var round = flag.Int("round", 0, "rotate the contenders' order by this many places")

func rotate(cs []Contender) []Contender {
	k := *round % len(cs)
	return append(append([]Contender(nil), cs[k:]...), cs[:k]...)
}

var (
	keysMu  sync.Mutex
	keyPool []string
)

// keys returns n IDs made by idgen.New, the same n on every call. They are
// made once per process, before any timing.
func keys(n int) []string {
	keysMu.Lock()
	defer keysMu.Unlock()
	for len(keyPool) < n {
		keyPool = append(keyPool, idgen.New())
	}
	return keyPool[:n:n]
}

// rng is wyrand: a few nanoseconds per number, no allocation, one per
// goroutine.
type rng uint64

func newRNG(seed uint64) *rng {
	r := rng(seed*0x9E3779B97F4A7C15 + 1)
	return &r
}

func (r *rng) next() uint64 {
	*r += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(uint64(*r), uint64(*r)^0xe7037ed1a0b428db)
	return hi ^ lo
}

// intn returns a number in [0, n) by multiply-shift.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// newManager returns a session.Manager for up to n sessions, without a
// background sweeper.
func newManager(n int) *session.Manager {
	return session.NewManager(session.WithMaxSessions(n), session.WithCleanupInterval(0))
}
