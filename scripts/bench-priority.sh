#!/usr/bin/env bash
# Measures conq::priority_queue (strict, stable, relaxed) against
# tbb::concurrent_priority_queue and a mutex + std::priority_queue, and
# conq::delay_queue with its timer heap and its timer wheel, and writes the
# results:
#
#   build/bench/priority.json     every repetition of conq_priority_bench
#   build/bench/delay.json        every repetition of conq_delay_bench
#   build/bench/priority.md       the result tables of both
#   docs/benchmarks-priority.png  the chart
#   docs/benchmarks.md            its priority-results block is replaced by the tables
#
# Usage: scripts/bench-priority.sh [extra flags for both binaries]
#
# Extra flags (e.g. --benchmark_filter=pq_mixed/uniform) go to both
# benchmark binaries (a filter that matches nothing in one of them leaves its
# part out); the outputs then stay in build/bench (priority-partial.*,
# delay-partial.json) and docs/ is left alone. So does CONQ_BENCH_ONLY.
#
# Environment: CONQ_BENCH_REPETITIONS (default 5), CONQ_BENCH_PQ_OPS,
# CONQ_BENCH_PQ_PREFILL, CONQ_BENCH_PQ_RANK_OPS, CONQ_BENCH_PQ_RANK_PREFILL,
# CONQ_BENCH_MAX_THREADS (see benchmarks/priority.bench.cpp),
# CONQ_BENCH_DQ_STEPS, CONQ_BENCH_TIMERS_MAX (see benchmarks/delay.bench.cpp),
# CONQ_BENCH_CPUS, CONQ_BENCH_TIMEOUT_S, CONQ_BENCH_NOTE (a line printed with
# the results), CONQ_BENCH_ONLY (priority or delay: run that binary only),
# CONQ_BENCH_BUILD_DIR (default build/bench), CONQ_BENCH_JOBS (parallel
# compile jobs, default 2).
#
# Run it on a quiet machine: anything else running moves the numbers.
set -euo pipefail

cd "$(dirname "$0")/.."
build=${CONQ_BENCH_BUILD_DIR:-build/bench}
reps=${CONQ_BENCH_REPETITIONS:-5}
jobs=${CONQ_BENCH_JOBS:-2}
only=${CONQ_BENCH_ONLY:-}
python=/usr/bin/python3
started=$(date +%s)

case "$only" in
    "" | priority | delay) ;;
    *)
        echo "bench-priority.sh: CONQ_BENCH_ONLY must be priority or delay (got \"$only\")" >&2
        exit 2
        ;;
esac

if ! "$python" -c 'import matplotlib' 2>/dev/null; then
    echo "bench-priority.sh: $python cannot import matplotlib" \
        "(Debian: apt-get install python3-matplotlib)" >&2
    exit 1
fi

cmake -S . -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCONQ_BUILD_BENCHMARKS=ON \
    -DCONQ_BUILD_TESTS=OFF \
    -DCONQ_BUILD_EXAMPLES=OFF \
    -DCONQ_INSTALL=OFF
cmake --build "$build" --target conq_priority_bench conq_delay_bench -j "$jobs"

if [[ $# -gt 0 || -n $only ]]; then
    suffix=-partial
    png="$build/priority-partial.png"
    doc=()
else
    suffix=
    png=docs/benchmarks-priority.png
    doc=(--update-doc docs/benchmarks.md)
fi
pq_json="$build/priority$suffix.json"
dq_json="$build/delay$suffix.json"
md="$build/priority$suffix.md"

# The command line that reproduces this run, for the record.
command=""
for var in CONQ_BENCH_REPETITIONS CONQ_BENCH_PQ_OPS CONQ_BENCH_PQ_PREFILL CONQ_BENCH_PQ_RANK_OPS \
           CONQ_BENCH_PQ_RANK_PREFILL CONQ_BENCH_MAX_THREADS CONQ_BENCH_DQ_STEPS \
           CONQ_BENCH_TIMERS_MAX CONQ_BENCH_CPUS CONQ_BENCH_ONLY; do
    if [[ -n ${!var:-} ]]; then command+="$var=${!var} "; fi
done
command+="scripts/bench-priority.sh"
if [[ $# -gt 0 ]]; then command+=" $*"; fi

# A binary exits with 1 when a run failed its check; make the tables of what
# there is (they list the errors) and fail afterwards.
status=0
run() {
    local binary=$1 out=$2
    shift 2
    rm -f "$out"
    "$build/benchmarks/$binary" \
        --benchmark_repetitions="$reps" \
        --benchmark_enable_random_interleaving=true \
        --benchmark_display_aggregates_only=true \
        --benchmark_out="$out" \
        --benchmark_out_format=json \
        "$@" || status=$?
}
if [[ $only != delay ]]; then run conq_priority_bench "$pq_json" "$@"; else rm -f "$pq_json"; fi
if [[ $only != priority ]]; then run conq_delay_bench "$dq_json" "$@"; else rm -f "$dq_json"; fi

"$python" scripts/tables_priority.py \
    --priority "$pq_json" \
    --delay "$dq_json" \
    --png "$png" \
    --markdown "$md" \
    --command "$command" \
    --note "${CONQ_BENCH_NOTE:-}" \
    "${doc[@]}" || status=$((status ? status : $?))

echo "bench-priority.sh: results in $pq_json, $dq_json, $md and $png" \
    "($(($(date +%s) - started)) s)"
if [[ $status -ne 0 ]]; then
    echo "bench-priority.sh: some benchmarks failed (see above)" >&2
fi
exit "$status"
