# scripts/bench-lib.sh: what the scripts/bench-*.sh scripts share. Each one
# sources it after `set -euo pipefail`:
#
#   source "$(dirname "$0")/bench-lib.sh"
#   bench_init bench-durable.sh 3          # cd to the repository; settings
#   bench_need_python [matplotlib]         # or exit with the Debian package to install
#   bench_build [-DNAME=VALUE...] TARGET... # configure $build (Release, benchmarks
#                                          # only) and build the targets
#   bench_command VAR... -- "$@"           # $command: the line that reproduces the run
#   status=0
#   bench_run BINARY JSON "$@"             # the standard flags; a failed run sets $status
#
# Settings from the environment: CONQ_BENCH_BUILD_DIR (default build/bench),
# CONQ_BENCH_REPETITIONS (default: the script's), CONQ_BENCH_JOBS (parallel
# compile jobs, default 2). bench_init sets build, reps, jobs, python and
# started (for the elapsed time the scripts print).

# shellcheck shell=bash
# The variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

bench_init() {
    bench_script=$1
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
    build=${CONQ_BENCH_BUILD_DIR:-build/bench}
    reps=${CONQ_BENCH_REPETITIONS:-$2}
    jobs=${CONQ_BENCH_JOBS:-2}
    python=/usr/bin/python3
    started=$(date +%s)
}

bench_need_python() {
    if ! [[ -x $python ]]; then
        echo "$bench_script: $python not found (Debian: apt-get install python3)" >&2
        exit 1
    fi
    if [[ ${1:-} == matplotlib ]] && ! "$python" -c 'import matplotlib' 2>/dev/null; then
        echo "$bench_script: $python cannot import matplotlib" \
            "(Debian: apt-get install python3-matplotlib)" >&2
        exit 1
    fi
}

# Release, benchmarks on, tests, examples and install rules off; -D
# arguments before the targets are added (and win over these).
bench_build() {
    local defs=()
    while [[ $# -gt 0 && $1 == -D* ]]; do
        defs+=("$1")
        shift
    done
    cmake -S . -B "$build" \
        -DCMAKE_BUILD_TYPE=Release \
        -DCONQ_BUILD_BENCHMARKS=ON \
        -DCONQ_BUILD_TESTS=OFF \
        -DCONQ_BUILD_EXAMPLES=OFF \
        -DCONQ_INSTALL=OFF \
        "${defs[@]}"
    cmake --build "$build" --target "$@" -j "$jobs"
}

# The environment variables named before `--` that are set (quoted when
# they hold anything a shell would read specially: spaces, `;`, ...), the
# script, and the arguments after `--`.
bench_command() {
    command=""
    while [[ $# -gt 0 && $1 != -- ]]; do
        local var=$1
        shift
        if [[ -n ${!var:-} && ${!var} =~ [^A-Za-z0-9_./,:=+-] ]]; then
            command+="$var=\"${!var}\" "
        elif [[ -n ${!var:-} ]]; then
            command+="$var=${!var} "
        fi
    done
    if [[ $# -gt 0 ]]; then shift; fi
    command+="scripts/$bench_script"
    if [[ $# -gt 0 ]]; then command+=" $*"; fi
}

# Runs a Google Benchmark binary with $reps repetitions in random
# interleaved order, aggregates only on the console, every repetition into
# JSON. The binaries exit with 1 when a run failed its check: that sets
# $status, so the script can still make its tables (they list the errors)
# and fail afterwards.
bench_run() {
    local binary=$1 json=$2
    shift 2
    rm -f "$json"
    "$binary" \
        --benchmark_repetitions="$reps" \
        --benchmark_enable_random_interleaving=true \
        --benchmark_display_aggregates_only=true \
        --benchmark_out="$json" \
        --benchmark_out_format=json \
        "$@" || status=$?
}
