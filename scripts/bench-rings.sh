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
# Peers that Debian does not package join the run when their checkouts are
# named: CONQ_BENCH_ATOMIC_QUEUE_INCLUDE (the include/ directory of an
# atomic_queue checkout) and CONQ_BENCH_RIGTORP_INCLUDE (the include/
# directories of SPSCQueue and MPMCQueue checkouts, separated by `;`). Unset,
# they are left out (and a build that had them drops them).
#
# Run it on a quiet machine: anything else running moves the numbers.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-rings.sh 5
bench_need_python matplotlib
bench_build -DCONQ_BENCH_ATOMIC_QUEUE_INCLUDE="${CONQ_BENCH_ATOMIC_QUEUE_INCLUDE:-}" \
    -DCONQ_BENCH_RIGTORP_INCLUDE="${CONQ_BENCH_RIGTORP_INCLUDE:-}" conq_ring_bench

if [[ $# -gt 0 ]]; then
    out="$build/rings-partial"
    png="$out.png"
    doc=()
else
    out="$build/rings"
    png=docs/benchmarks-rings.png
    doc=(--update-doc docs/benchmarks.md)
fi

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_ITEMS CONQ_BENCH_ROUNDS CONQ_BENCH_MAX_THREADS \
    CONQ_BENCH_CPUS CONQ_BENCH_ATOMIC_QUEUE_INCLUDE CONQ_BENCH_RIGTORP_INCLUDE -- "$@"

# A run that failed its check: plot what there is and fail afterwards.
status=0
bench_run "$build/benchmarks/conq_ring_bench" "$out.json" "$@"

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
