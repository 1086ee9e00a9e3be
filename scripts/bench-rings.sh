#!/usr/bin/env bash
# Measures conqueue's rings against Boost.Lockfree, moodycamel, TBB and a
# mutex + condition-variable ring, and writes the results:
#
#   build/bench/rings.json      every repetition (Google Benchmark JSON)
#   build/bench/rings.md        the result tables
#   docs/benchmarks-rings.png   the chart
#   docs/benchmarks.md          its results block is replaced by the tables
#
# Usage: scripts/bench-rings.sh [extra conq_ring_bench flags]
#
# Extra flags (e.g. --benchmark_filter=rtt) go to the benchmark binary; the
# outputs then stay in build/bench (rings-partial.*) and docs/ is left alone.
#
# Environment: CONQ_BENCH_REPETITIONS (default 5), CONQ_BENCH_ITEMS,
# CONQ_BENCH_ROUNDS, CONQ_BENCH_MAX_THREADS, CONQ_BENCH_CPUS,
# CONQ_BENCH_TIMEOUT_S (see benchmarks/rings.bench.cpp), CONQ_BENCH_NOTE (a
# line printed with the results), CONQ_BENCH_BUILD_DIR (default build/bench),
# CONQ_BENCH_JOBS (parallel compile jobs, default 2).
#
# Run it on a quiet machine: anything else running moves the numbers.
set -euo pipefail

cd "$(dirname "$0")/.."
build=${CONQ_BENCH_BUILD_DIR:-build/bench}
reps=${CONQ_BENCH_REPETITIONS:-5}
jobs=${CONQ_BENCH_JOBS:-2}
python=/usr/bin/python3
started=$(date +%s)

if ! "$python" -c 'import matplotlib' 2>/dev/null; then
    echo "bench-rings.sh: $python cannot import matplotlib" \
        "(Debian: apt-get install python3-matplotlib)" >&2
    exit 1
fi

cmake -S . -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCONQ_BUILD_BENCHMARKS=ON \
    -DCONQ_BUILD_TESTS=OFF \
    -DCONQ_BUILD_EXAMPLES=OFF \
    -DCONQ_INSTALL=OFF
cmake --build "$build" --target conq_ring_bench -j "$jobs"
bench="$build/benchmarks/conq_ring_bench"

if [[ $# -gt 0 ]]; then
    out="$build/rings-partial"
    png="$out.png"
    doc=()
else
    out="$build/rings"
    png=docs/benchmarks-rings.png
    doc=(--update-doc docs/benchmarks.md)
fi

# The command line that reproduces this run, for the record.
command=""
for var in CONQ_BENCH_REPETITIONS CONQ_BENCH_ITEMS CONQ_BENCH_ROUNDS CONQ_BENCH_MAX_THREADS \
           CONQ_BENCH_CPUS; do
    if [[ -n ${!var:-} ]]; then command+="$var=${!var} "; fi
done
command+="scripts/bench-rings.sh"
if [[ $# -gt 0 ]]; then command+=" $*"; fi

# The binary exits with 1 when a run failed its check; plot what there is
# (the tables list the errors) and fail afterwards.
status=0
"$bench" \
    --benchmark_repetitions="$reps" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_display_aggregates_only=true \
    --benchmark_out="$out.json" \
    --benchmark_out_format=json \
    "$@" || status=$?

"$python" scripts/plot_benchmarks.py "$out.json" \
    --png "$png" \
    --markdown "$out.md" \
    --command "$command" \
    --note "${CONQ_BENCH_NOTE:-}" \
    "${doc[@]}" || status=$((status ? status : $?))

echo "bench-rings.sh: results in $out.json, $out.md and $png ($(($(date +%s) - started)) s)"
if [[ $status -ne 0 ]]; then
    echo "bench-rings.sh: some benchmarks failed (see above)" >&2
fi
exit "$status"
