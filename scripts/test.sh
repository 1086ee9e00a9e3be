#!/usr/bin/env bash
# Builds conqueue and runs every test, in three stages:
#
#   release  Release build with -Wall -Wextra -Werror: unit and stress tests,
#            examples, compile-failure, standalone-header and packaging tests
#            (and the benchmarks are built when Google Benchmark is installed)
#   tsan     ThreadSanitizer build of the unit, stress and server tests
#            (tests/server: conq-beanstalkd, built with the sanitizer too)
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer build of those and
#            of the crash tests (which fork, so they stay out of tsan)
#   fuzz     the libFuzzer targets (tests/fuzz/) for CONQ_FUZZ_SECONDS each
#            (default here 30), built by clang with ASan + UBSan
#
#   scripts/test.sh              all four stages
#   scripts/test.sh tsan asan    only those
#
# Build trees: build/ci-<stage>. Environment: CONQ_STRESS_SCALE (integer,
# default 1) makes the stress tests larger; CONQ_TEST_BENCHMARKS=ON/OFF
# forces the benchmark build in the release stage on or off; TSAN_OPTIONS,
# ASAN_OPTIONS and UBSAN_OPTIONS are appended to the defaults below.
# Missing Debian packages are installed first when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
if [ "${#stages[@]}" -eq 0 ]; then
    stages=(release tsan asan fuzz)
fi
for stage in "${stages[@]}"; do
    case "$stage" in
        release | tsan | asan | fuzz) ;;
        *) echo "test.sh: unknown stage '$stage' (use release, tsan, asan, fuzz)" >&2; exit 2 ;;
    esac
done

scripts/install-deps.sh test

jobs="$(nproc)"
ctest_jobs=2
if [ -n "${CONQ_STRESS_SCALE:-}" ]; then
    export CONQ_STRESS_SCALE
    echo "test.sh: CONQ_STRESS_SCALE=${CONQ_STRESS_SCALE}"
fi

installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }

benchmarks="${CONQ_TEST_BENCHMARKS:-}"
if [ -z "$benchmarks" ]; then
    benchmarks=OFF
    if [ -f benchmarks/CMakeLists.txt ] && installed libbenchmark-dev; then
        benchmarks=ON
    fi
fi

# Recent kernels randomise mmap more than ThreadSanitizer's fixed shadow
# layout allows ("unexpected memory mapping"); run it without ASLR there.
tsan_prefix=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] &&
    command -v setarch >/dev/null; then
    tsan_prefix=(setarch "$(uname -m)" -R)
fi

configure() { # build dir, cmake options...
    local dir="$1"
    shift
    cmake -S . -B "$dir" -DCONQ_BUILD_TESTS=ON -DCONQ_WERROR=ON "$@"
}

stage_release() {
    local dir=build/ci-release
    configure "$dir" -DCMAKE_BUILD_TYPE=Release -DCONQ_SANITIZE= \
        -DCONQ_BUILD_EXAMPLES=ON -DCONQ_BUILD_BENCHMARKS="$benchmarks" \
        -DCONQ_BUILD_CHECKS=ON -DCONQ_INSTALL=ON
    cmake --build "$dir" -j"$jobs"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$ctest_jobs"
}

# -O1 -g: what the sanitizers recommend; UBSan compiles a third faster than
# at -O2 (-g1 would save more, but loses the inlined frames in reports).
# No NDEBUG: assertions stay on.
sanitizer_build() { # build dir, sanitizers
    configure "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
        -DCONQ_SANITIZE="$2" \
        -DCONQ_BUILD_EXAMPLES=OFF -DCONQ_BUILD_BENCHMARKS=OFF \
        -DCONQ_BUILD_CHECKS=OFF -DCONQ_INSTALL=OFF
    cmake --build "$1" -j"$jobs"
}

stage_tsan() {
    local dir=build/ci-tsan
    sanitizer_build "$dir" thread
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
        "${tsan_prefix[@]}" ctest --test-dir "$dir" --output-on-failure --no-tests=error \
        -j"$ctest_jobs" -L 'concurrency|unit|server'
}

stage_asan() {
    local dir=build/ci-asan
    sanitizer_build "$dir" "address,undefined"
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
        ctest --test-dir "$dir" --output-on-failure --no-tests=error \
        -j"$ctest_jobs" -L 'concurrency|unit|crash|server'
}

stage_fuzz() {
    CONQ_FUZZ_SECONDS="${CONQ_FUZZ_SECONDS:-30}" scripts/fuzz.sh
}

# Every requested stage runs, even after one fails, so that one run reports
# everything; the exit status is non-zero if any stage failed.
timings=()
failed=0
total_start=$SECONDS
for stage in "${stages[@]}"; do
    echo
    echo "==================== test.sh: stage ${stage}"
    start=$SECONDS
    set +e
    (set -e; "stage_${stage}")
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        line="stage ${stage}: passed in $((SECONDS - start)) s"
    else
        line="stage ${stage}: FAILED (status ${rc}) after $((SECONDS - start)) s"
        failed=1
    fi
    timings+=("$line")
    echo "==================== test.sh: ${line}"
done

echo
echo "==================== test.sh summary"
for line in "${timings[@]}"; do
    echo "$line"
done
if [ "$failed" -ne 0 ]; then
    echo "FAILED after $((SECONDS - total_start)) s"
    exit 1
fi
echo "all stages passed in $((SECONDS - total_start)) s"
