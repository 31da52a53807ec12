// Command targets reads the output of roster's comparison benchmarks (see
// bench/run.sh) and checks the targets of issues 4, 9 and 12, each as a
// ratio of medians taken from the same run.
//
// Usage:
//
//	go run ./cmd/targets results/latest.txt
//
// It prints one line per target and exits with status 1 if one is missed,
// 2 if the input cannot be read. A target whose figures are missing from
// the input (a workload that was not run) is reported as skipped.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: targets results.txt")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	res, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if missed := report(os.Stdout, res); missed > 0 {
		os.Exit(1)
	}
}

// key identifies one figure: a benchmark (its name without the impl part,
// with the GOMAXPROCS suffix), a contender and a unit.
type key struct{ bench, impl, unit string }

// results holds every sample of every figure.
type results map[key][]float64

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// parse reads benchmark result lines ("BenchmarkX/impl=y-2  N  v unit ...").
func parse(r io.Reader) (results, error) {
	res := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name, procs := f[0], "1"
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			name, procs = strings.TrimSuffix(name, m[0]), m[1]
		}
		var parts []string
		impl := ""
		for p := range strings.SplitSeq(name, "/") {
			if v, ok := strings.CutPrefix(p, "impl="); ok {
				impl = v
				continue
			}
			parts = append(parts, p)
		}
		bench := strings.Join(parts, "/") + "-" + procs
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("bad value %q in %q", f[i], sc.Text())
			}
			k := key{bench, impl, f[i+1]}
			res[k] = append(res[k], v)
		}
	}
	return res, sc.Err()
}

// median returns the median of a figure's samples and whether there are any.
func (r results) median(bench, impl, unit string) (float64, bool) {
	s := slices.Clone(r[key{bench, impl, unit}])
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2, true
	}
	return s[len(s)/2], true
}

// best returns the smallest median of unit among impls, and whose it is.
func (r results) best(bench, unit string, impls ...string) (float64, string, bool) {
	v, who, ok := 0.0, "", false
	for _, impl := range impls {
		if m, has := r.median(bench, impl, unit); has && (!ok || m < v) {
			v, who, ok = m, impl, true
		}
	}
	return v, who, ok
}

// procs lists the GOMAXPROCS values a benchmark ran at, ascending.
func (r results) procs(bench string) []string {
	var out []string
	for k := range r {
		if p, ok := strings.CutPrefix(k.bench, bench+"-"); ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return out
}

// check is one target: got is roster's figure, ref the one it is compared
// with (0 for an absolute bound), and the target holds when got/ref (or
// got) is below (or, with atLeast, at least) limit.
type check struct {
	name      string
	got       float64
	ref       float64
	refName   string
	limit     float64
	atLeast   bool
	inclusive bool
	unit      string
	skipped   bool
}

func (c check) value() float64 {
	if c.ref != 0 {
		return c.got / c.ref
	}
	return c.got
}

func (c check) ok() bool {
	v := c.value()
	switch {
	case c.atLeast:
		return v >= c.limit
	case c.inclusive:
		return v <= c.limit
	}
	return v < c.limit
}

// report prints the checks and returns how many targets were missed.
func report(w io.Writer, r results) int {
	var checks []check
	add := func(c check, ok bool) {
		c.skipped = !ok
		checks = append(checks, c)
	}
	ratio := func(name, bench, unit, impl, refImpl string, limit float64, atLeast bool) {
		got, ok1 := r.median(bench, impl, unit)
		ref, ok2 := r.median(bench, refImpl, unit)
		add(check{name: name, got: got, ref: ref, refName: refImpl, limit: limit, atLeast: atLeast, unit: unit}, ok1 && ok2 && ref != 0)
	}

	// The Get and churn targets are the Manager's (impl=roster); the
	// registry core's figures follow as "core".
	for _, p := range r.procs("BenchmarkGet") {
		b := "BenchmarkGet-" + p
		for _, impl := range []string{"roster", "roster-core"} {
			what := "GetSession"
			if impl == "roster-core" {
				what = "core Get"
			}
			ratio(what+" -cpu="+p+": faster than hand-rolled", b, "ns/op", impl, "handrolled", 1, false)
			got, ok1 := r.median(b, impl, "ns/op")
			ref, who, ok2 := r.best(b, "ns/op", "xsync", "otter")
			add(check{name: what + " -cpu=" + p + ": within 1.25x of the faster of xsync, otter", got: got, ref: ref, refName: who,
				limit: 1.25, inclusive: true, unit: "ns/op"}, ok1 && ok2)
			allocs, ok := r.median(b, impl, "allocs/op")
			add(check{name: what + " -cpu=" + p + ": 0 allocs", got: allocs, limit: 0, inclusive: true, unit: "allocs/op"}, ok)
		}
	}

	// Issue 12: the registry core against bare xsync.MapOf; then its rule
	// for replacing the core's table by an xsync.MapOf (impl=
	// roster-core-xsync, skipped when the run has no such contender): hits
	// within 1.05x of the table and misses faster.
	within := func(name, bench, impl, refImpl string, limit float64) {
		got, ok1 := r.median(bench, impl, "ns/op")
		ref, ok2 := r.median(bench, refImpl, "ns/op")
		add(check{name: name, got: got, ref: ref, refName: refImpl, limit: limit, inclusive: true, unit: "ns/op"}, ok1 && ok2 && ref != 0)
	}
	for _, p := range r.procs("BenchmarkGet") {
		b := "BenchmarkGet-" + p
		within("core Get -cpu="+p+": within 1.05x of bare xsync.MapOf", b, "roster-core", "xsync", 1.05)
		within("xsync core Get -cpu="+p+": within 1.05x of the table (issue-12 rule)", b, "roster-core-xsync", "roster-core", 1.05)
	}
	for _, p := range r.procs("BenchmarkGetMiss") {
		b := "BenchmarkGetMiss-" + p
		within("core Get miss -cpu="+p+": no slower than bare xsync.MapOf", b, "roster-core", "xsync", 1)
		ratio("xsync core Get miss -cpu="+p+": faster than the table (issue-12 rule)", b, "ns/op", "roster-core-xsync", "roster-core", 1, false)
	}

	const lat = "BenchmarkGetLatency"
	for _, p := range r.procs(lat) {
		b := lat + "-" + p
		got, ok1 := r.median(b, "roster-core", "p99.9-ns")
		ref, who, ok2 := r.best(b, "p99.9-ns", "xsync", "otter")
		add(check{name: "Get p99.9, sweeps+writers, -cpu=" + p + ": within 2x of lock-free peers", got: got, ref: ref, refName: who,
			limit: 2, inclusive: true, unit: "ns"}, ok1 && ok2)
		ratio("Get max latency, -cpu="+p+": under 1/5 of hand-rolled", b, "max-ns", "roster-core", "handrolled", 0.2, false)
		ratio("reader time in Gets over 100us, -cpu="+p+": under 1/5 of hand-rolled", b, "slow-%", "roster-core", "handrolled", 0.2, false)
	}

	for _, p := range r.procs("BenchmarkSweep/case=0pct") {
		ratio("sweep of 1M, 0% expired: under 1/1000 of hand-rolled", "BenchmarkSweep/case=0pct-"+p, "ns/op", "roster-core", "handrolled", 0.001, false)
		ratio("sweep of 1M, 1% expired: under 1/10 of hand-rolled", "BenchmarkSweep/case=1pct-"+p, "ns/op", "roster-core", "handrolled", 0.1, false)
		got, ok1 := r.median("BenchmarkSweep/case=touched-"+p, "roster-core", "ns/op")
		ref, ok2 := r.median("BenchmarkSweep/case=0pct-"+p, "handrolled", "ns/op")
		add(check{name: "sweep of 1M, all touched: at most hand-rolled's full scan", got: got, ref: ref, refName: "handrolled",
			limit: 1, inclusive: true, unit: "ns/op"}, ok1 && ok2)
	}

	for _, p := range r.procs("BenchmarkBytesPerEntry") {
		v, ok := r.median("BenchmarkBytesPerEntry-"+p, "roster-core", "B/entry")
		add(check{name: "registry bytes per entry at 1M: at most 100", got: v, limit: 100, inclusive: true, unit: "B/entry"}, ok)
	}
	for _, p := range r.procs("BenchmarkBytesPerSession") {
		v, ok := r.median("BenchmarkBytesPerSession-"+p, "roster", "B/session")
		add(check{name: "idle never-used *session.Session (fingerprinted preset): under 4 KiB", got: v, limit: 4096, unit: "B/session"}, ok)
	}

	for _, p := range r.procs("BenchmarkChurn") {
		ratio("create+close churn -cpu="+p+": at least hand-rolled's pairs/s", "BenchmarkChurn-"+p, "pairs/s", "roster", "handrolled", 1, true)
		ratio("core create+delete churn -cpu="+p+": at least hand-rolled's pairs/s", "BenchmarkChurn-"+p, "pairs/s", "roster-core", "handrolled", 1, true)
	}

	for _, p := range r.procs("BenchmarkNewID") {
		b := "BenchmarkNewID-" + p
		if p == "1" {
			v, ok := r.median(b, "roster", "ns/op")
			add(check{name: "ID generation -cpu=1: under 100 ns", got: v, limit: 100, unit: "ns/op"}, ok)
		} else {
			ratio("ID generation -cpu="+p+": faster than ulid.Make", b, "ns/op", "roster", "ulid.Make", 1, false)
		}
	}

	for _, p := range r.procs("BenchmarkRequest") {
		b := "BenchmarkRequest-" + p
		ratio("request via Session.Get -cpu="+p+": under 10% slower than plain+headers", b, "ns/op", "roster", "plain+headers", 1.10, false)
		got, ok1 := r.median(b, "roster", "allocs/op")
		ref, ok2 := r.median(b, "plain+headers", "allocs/op")
		add(check{name: "request via Session.Get -cpu=" + p + ": at most 10 extra allocs", got: got - ref, limit: 10, inclusive: true, unit: "allocs"}, ok1 && ok2)
	}

	// Issue 9: the fingerprinted stack's cost. roster's fingerprinted
	// session against tls-client, the library on the same uTLS and fhttp,
	// by wall-clock time and by the process's CPU time per op (steadier
	// on a shared machine).
	for _, p := range r.procs("BenchmarkFingerprintedGet") {
		b := "BenchmarkFingerprintedGet-" + p
		for _, u := range []struct{ unit, what string }{{"ns/op", ""}, {"cpu-ns/op", " (CPU time)"}} {
			got, ok1 := r.median(b, "roster", u.unit)
			ref, ok2 := r.median(b, "tls-client", u.unit)
			add(check{name: "fingerprinted Get -cpu=" + p + ": not slower than tls-client" + u.what, got: got, ref: ref, refName: "tls-client",
				limit: 1, inclusive: true, unit: u.unit}, ok1 && ok2 && ref != 0)
		}
	}

	fmt.Fprintln(w, "issue-4, issue-9 and issue-12 targets (medians of the same run; ratio = roster / reference)")
	fmt.Fprintln(w)
	missed := 0
	for _, c := range checks {
		status := "ok"
		switch {
		case c.skipped:
			status = "skipped"
		case !c.ok():
			status = "MISSED"
			missed++
		}
		op := "<"
		switch {
		case c.atLeast:
			op = ">="
		case c.inclusive:
			op = "<="
		}
		var fig string
		if c.ref != 0 {
			fig = fmt.Sprintf("%s / %s (%s) = %.4g, goal %s %g", num(c.got), num(c.ref), c.refName, c.value(), op, c.limit)
		} else {
			fig = fmt.Sprintf("%s %s, goal %s %g", num(c.got), c.unit, op, c.limit)
		}
		if c.skipped {
			fig = ""
		}
		fmt.Fprintf(w, "%-8s %-68s %s\n", status, c.name, fig)
	}
	return missed
}

// num formats a figure with 4 significant digits, without an exponent for
// the magnitudes that occur here.
func num(v float64) string {
	if v >= 1e4 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
