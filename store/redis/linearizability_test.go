package redis_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/rosterhq/roster/internal/redistest"
	"github.com/rosterhq/roster/store"
)

// The lease of one ID as a sequential object: who holds it, with which
// token, the fencing counter, and the stored state.
type leaseModel struct {
	holder string
	token  int64
	fence  int64
	state  string
}

type leaseOp struct {
	kind  string // "acquire", "release", "save"
	owner string
	token int64  // release, save: the lease the caller believes it holds
	value string // save
}

type leaseOut struct {
	ok     bool   // acquire: granted; save: written
	token  int64  // acquire: the token granted
	holder string // acquire refused: the holder named
	state  string // acquire granted: the state read
	fenced bool   // save: refused by the fence
}

func leaseStep(m leaseModel, in leaseOp, out leaseOut) (bool, leaseModel) {
	switch in.kind {
	case "acquire":
		switch {
		case m.holder == "":
			m.fence++
			m.holder, m.token = in.owner, m.fence
			return out.ok && out.token == m.token && out.state == m.state, m
		case m.holder == in.owner:
			return out.ok && out.token == m.token && out.state == m.state, m
		}
		return !out.ok && out.holder == m.holder, m
	case "release":
		if m.holder == in.owner && m.token == in.token {
			m.holder, m.token = "", 0
		}
		return true, m
	case "save":
		if m.fence > in.token {
			return out.fenced, m
		}
		m.state = in.value
		return out.ok, m
	}
	return false, m
}

// TestLeaseLinearizable drives one ID's lease from four processes (each
// its own client and owner) sharing one redis-server, and checks with
// porcupine that acquire, save and release behave as one sequential
// lease: never two holders, tokens that only grow, fenced writes refused.
func TestLeaseLinearizable(t *testing.T) {
	srv := redistest.Start(t)
	const clients, calls = 4, 150
	var mu sync.Mutex
	var ops []porcupine.Operation
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		s, _ := newStore(t, srv)
		owner := fmt.Sprintf("P%d", c)
		wg.Go(func() {
			ctx := redistest.Context(t)
			r := rand.New(rand.NewPCG(uint64(c), 7))
			var mine int64 // the token this process believes it holds
			for i := range calls {
				var in leaseOp
				var out leaseOut
				call := int64(time.Since(start))
				switch k := r.IntN(3); {
				case k == 0 || mine == 0:
					in = leaseOp{kind: "acquire", owner: owner}
					l, st, err := s.Acquire(ctx, store.AcquireRequest{ID: "L", Owner: owner, TTL: time.Hour})
					switch {
					case err == nil:
						out = leaseOut{ok: true, token: l.Token, state: string(st)}
						mine = l.Token
					case errors.Is(err, store.ErrLeased):
						h := err.Error()
						h = h[strings.Index(h, "held by ")+len("held by "):]
						out = leaseOut{holder: h[:strings.IndexByte(h, ' ')]}
					default:
						t.Error(err)
						return
					}
				case k == 1:
					in = leaseOp{kind: "save", owner: owner, token: mine, value: fmt.Sprintf("%s-%d", owner, i)}
					errs, err := s.Save(ctx, []store.Write{{Lease: store.Lease{ID: "L", Owner: owner, Token: mine}, State: []byte(in.value), StateTTL: time.Hour}})
					if err != nil {
						t.Error(err)
						return
					}
					out = leaseOut{ok: errs[0] == nil, fenced: errors.Is(errs[0], store.ErrFenced)}
				default:
					in = leaseOp{kind: "release", owner: owner, token: mine}
					if err := s.Release(ctx, []store.Lease{{ID: "L", Owner: owner, Token: mine}}); err != nil {
						t.Error(err)
						return
					}
					mine = 0
				}
				ret := int64(time.Since(start))
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	model := porcupine.Model{
		Init: func() any { return leaseModel{} },
		Step: func(st, in, out any) (bool, any) {
			return leaseStep(st.(leaseModel), in.(leaseOp), out.(leaseOut))
		},
		Equal: func(a, b any) bool { return a.(leaseModel) == b.(leaseModel) },
	}
	if res := porcupine.CheckOperationsTimeout(model, ops, 30*time.Second); res != porcupine.Ok {
		t.Fatalf("lease history of %d operations: %v", len(ops), res)
	}
}
