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

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-priority.sh 5
only=${CONQ_BENCH_ONLY:-}

case "$only" in
    "" | priority | delay) ;;
    *)
        echo "bench-priority.sh: CONQ_BENCH_ONLY must be priority or delay (got \"$only\")" >&2
        exit 2
        ;;
esac

bench_need_python matplotlib
bench_build conq_priority_bench conq_delay_bench

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

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_PQ_OPS CONQ_BENCH_PQ_PREFILL CONQ_BENCH_PQ_RANK_OPS \
    CONQ_BENCH_PQ_RANK_PREFILL CONQ_BENCH_MAX_THREADS CONQ_BENCH_DQ_STEPS \
    CONQ_BENCH_TIMERS_MAX CONQ_BENCH_CPUS CONQ_BENCH_ONLY -- "$@"

# A run that failed its check: make the tables of what there is (they list
# the errors) and fail afterwards.
status=0
if [[ $only != delay ]]; then
    bench_run "$build/benchmarks/conq_priority_bench" "$pq_json" "$@"
else
    rm -f "$pq_json"
fi
if [[ $only != priority ]]; then
    bench_run "$build/benchmarks/conq_delay_bench" "$dq_json" "$@"
else
    rm -f "$dq_json"
fi

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
