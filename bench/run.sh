#!/usr/bin/env bash
# run.sh runs roster's comparison benchmarks and prints one benchstat table.
#
# The machine this was written on has 2 cores and swings between two speed
# levels over tens of seconds, so contenders are interleaved: the test binary
# is built once and run COUNT times (rounds); each round runs every
# contender of every workload once, starting at a different contender, and
# benchstat reports the median of the rounds. (go test -count=N would run
# each contender N times back to back instead.)
#
# Environment:
#   COUNT        rounds of the light workloads (Get, Churn, NewID, Request,
#                FingerprintedGet, FingerprintedGetHTTP1, FingerprintedHandshake); default 6
#   HEAVY_COUNT  rounds of the 1M-entry workloads (GetLatency, Sweep,
#                BytesPer*); default COUNT/2, rounded up
#   BENCHTIME    -benchtime of the light workloads; default 1s
#   CPU          -cpu list of the light workloads; default 1,2
#   BENCH        regexp of the workloads to run; default all
#   OUT          where the raw results go; default results/latest.txt
#   STRICT       if set, exit with status 1 when an issue-4 or issue-9 target
#                is missed
#
# The default full run takes about 12 minutes on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-6}
HEAVY_COUNT=${HEAVY_COUNT:-$(((COUNT + 1) / 2))}
BENCHTIME=${BENCHTIME:-1s}
CPU=${CPU:-1,2}
BENCH=${BENCH:-.}
OUT=${OUT:-results/latest.txt}

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -r /proc/loadavg ]]; then
	read -r load _ </proc/loadavg
	cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
	if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > c / 2) }'; then
		echo "warning: load average $load on $cores cores: other work will skew the figures" >&2
	fi
fi

echo "building the test binary" >&2
go test -c -o "$tmp/bench.test" .

# run NAME ARGS... runs the benchmarks matching NAME (and BENCH) once,
# appending to OUT and showing progress on stderr.
run() {
	local name=$1
	shift
	local list
	list=$("$tmp/bench.test" -test.list="$name" | grep -E -- "$BENCH" || true)
	[[ -n $list ]] || return 0
	"$tmp/bench.test" -test.run='^$' -test.bench="^($(paste -sd'|' <<<"$list"))\$" "$@" |
		tee -a "$OUT" | grep -E '^(Benchmark|--- FAIL|FAIL|panic)' >&2 || failed=1
}

failed=0

start=$SECONDS
for ((i = 1; i <= COUNT || i <= HEAVY_COUNT; i++)); do
	echo "round $i (light $COUNT, heavy $HEAVY_COUNT)" >&2
	if ((i <= COUNT)); then
		run '^Benchmark(Get|GetMiss|Churn|NewID|Request|FingerprintedGet|FingerprintedGetHTTP1|FingerprintedHandshake)$' -test.cpu="$CPU" -test.benchtime="$BENCHTIME" -test.benchmem -round="$i"
	fi
	if ((i <= HEAVY_COUNT)); then
		# One op is one 50 ms tick, one sweep, one 1M build.
		run '^BenchmarkGetLatency$' -test.benchtime=40x -round="$i"
		run '^BenchmarkSweep$' -test.benchtime=10x -test.benchmem -round="$i"
		run '^BenchmarkBytesPer(Entry|Session)$' -test.benchtime=1x -round="$i"
	fi
done
echo "done in $((SECONDS - start))s; raw results in $(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")" >&2
if ((failed)); then
	echo "WARNING: some benchmarks failed; see $OUT" >&2
fi
echo

# Columns are the contenders, hand-rolled first: the percentages are to it
# (to tls-client in the fingerprinted workloads, which have no hand-rolled).
go tool benchstat \
	-col '/impl@(handrolled syncmap xsync otter ttlcache gocache plain plain+headers tls-client nethttp roster-core-xsync roster-core roster roster-go ulid.Make randhex)' \
	"$OUT"
echo
# The targets of issues 4 and 9, as ratios of the medians above. A missed target
# does not fail the run unless STRICT is set: one round on a busy machine
# can miss.
go run ./cmd/targets "$OUT" || { rc=$?; [[ -z ${STRICT:-} ]] || exit "$rc"; }
exit "$failed"
