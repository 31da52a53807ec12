package idgen

import (
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewIsAULIDOfNow(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := New()
	after := time.Now()
	if len(id) != Len {
		t.Fatalf("len(%q) = %d, want %d", id, len(id), Len)
	}
	u, err := ulid.ParseStrict(id)
	if err != nil {
		t.Fatalf("ulid.ParseStrict(%q): %v", id, err)
	}
	if ts := ulid.Time(u.Time()); ts.Before(before) || ts.After(after) {
		t.Errorf("ID time %v, want between %v and %v", ts, before, after)
	}
	if !Valid(id) {
		t.Errorf("Valid(%q) = false", id)
	}
}

func TestNewIsUniqueAcrossGoroutines(t *testing.T) {
	const goroutines, each = 8, 5000
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				ids[g] = append(ids[g], New())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, goroutines*each)
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				t.Fatalf("duplicate ID %q", id)
			}
			seen[id] = true
		}
	}
}

// TestNewIsNotMonotonic checks that IDs of the same millisecond do not step
// by one (as ulid.Make's do), so one ID does not give away the next.
func TestNewIsNotMonotonic(t *testing.T) {
	ids := make([]ulid.ULID, 2000)
	for i := range ids {
		ids[i] = ulid.MustParse(New())
	}
	sameMs, steps := 0, 0
	one := big.NewInt(1)
	for i := 1; i < len(ids); i++ {
		if ids[i].Time() != ids[i-1].Time() {
			continue
		}
		sameMs++
		a := new(big.Int).SetBytes(ids[i-1][6:])
		b := new(big.Int).SetBytes(ids[i][6:])
		if new(big.Int).Sub(b, a).Cmp(one) == 0 {
			steps++
		}
	}
	if sameMs == 0 {
		t.Skip("no two IDs in the same millisecond: machine too slow to tell")
	}
	if steps != 0 {
		t.Errorf("%d of %d same-millisecond pairs step by one", steps, sameMs)
	}
}

func TestNewSortsByCreationTime(t *testing.T) {
	var ids []string
	for range 3 {
		ids = append(ids, New())
		time.Sleep(2 * time.Millisecond) // ULIDs order by millisecond
	}
	if !slices.IsSorted(ids) {
		t.Errorf("IDs made 2 ms apart are not sorted: %v", ids)
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name, id string
		want     bool
		msg      string // part of Validate's message
	}{
		{"ulid", "01JDQ3XK2V8Z6W4M9N7P5R3T1Y", true, ""},
		{"one byte", "a", true, ""},
		{"punctuation", "user:42/session-1_a.b~!", true, ""},
		{"max length", strings.Repeat("x", MaxLen), true, ""},
		{"empty", "", false, "empty"},
		{"too long", strings.Repeat("x", MaxLen+1), false, "129 bytes long"},
		{"space", "a b", false, "offset 1"},
		{"tab", "a\tb", false, "0x09"},
		{"newline", "id\n", false, "offset 2"},
		{"DEL", "a\x7f", false, "0x7f"},
		{"non-ASCII", "café", false, "offset 3"},
		{"NUL", "\x00", false, "0x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.id); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
			}
			err := Validate(tt.id)
			if tt.want {
				if err != nil {
					t.Errorf("Validate(%q) = %v, want nil", tt.id, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Validate(%q) = %v, want ErrInvalidID", tt.id, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Validate(%q) = %q, want it to contain %q", tt.id, err, tt.msg)
			}
		})
	}
}

func TestValidDoesNotAllocate(t *testing.T) {
	id := New()
	if n := testing.AllocsPerRun(100, func() { _ = Valid(id) }); n != 0 {
		t.Errorf("Valid allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Validate(id) }); n != 0 {
		t.Errorf("Validate of a valid ID allocates %v times", n)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("01JDQ3XK2V8Z6W4M9N7P5R3T1Y")
	f.Add("")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, id string) {
		err := Validate(id)
		if Valid(id) != (err == nil) {
			t.Fatalf("Valid(%q) = %v but Validate = %v", id, Valid(id), err)
		}
		if err != nil && !errors.Is(err, ErrInvalidID) {
			t.Fatalf("Validate(%q) = %v, not ErrInvalidID", id, err)
		}
		if err == nil && (len(id) == 0 || len(id) > MaxLen || strings.ContainsAny(id, " \t\r\n")) {
			t.Fatalf("Validate(%q) accepted a bad ID", id)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = New()
		}
	})
}

func BenchmarkValid(b *testing.B) {
	id := New()
	b.ReportAllocs()
	ok := true
	for b.Loop() {
		ok = ok && Valid(id)
	}
	if !ok {
		b.Fatal("Valid rejected a ULID")
	}
}
