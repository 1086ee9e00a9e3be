#!/usr/bin/env bash
# Builds conqueue's libFuzzer targets (tests/fuzz/*.fuzz.cpp) with clang and
# AddressSanitizer + UndefinedBehaviorSanitizer, and runs each for a while.
#
#   scripts/fuzz.sh              every target, CONQ_FUZZ_SECONDS each (default 60)
#   scripts/fuzz.sh log_recovery one target
#
# Build and corpus: build/fuzz/<target> and build/fuzz/corpus-<target> (the
# corpus grows from run to run). A finding leaves its input as
# build/fuzz/crash-* and makes this script fail. Scratch files go to
# CONQ_FUZZ_DIR (default /dev/shm, a tmpfs: fast and off the disk).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${CONQ_FUZZ_SECONDS:-60}"
clang="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$clang" ]; then
    echo "fuzz.sh: clang++ not found (Debian: apt-get install clang-14)" >&2
    exit 1
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    for f in tests/fuzz/*.fuzz.cpp; do
        targets+=("$(basename "$f" .fuzz.cpp)")
    done
fi

mkdir -p build/fuzz
status=0
for t in "${targets[@]}"; do
    src="tests/fuzz/$t.fuzz.cpp"
    [ -f "$src" ] || { echo "fuzz.sh: no $src" >&2; exit 2; }
    bin="build/fuzz/$t"
    echo "fuzz.sh: building $t"
    "$clang" -std=c++20 -O1 -g -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Iinclude -Iexamples "$src" -o "$bin"
    mkdir -p "build/fuzz/corpus-$t"
    echo "fuzz.sh: running $t for ${seconds} s"
    # The target keeps its scratch files in $CONQ_FUZZ_DIR/conq-fuzz-<its pid>.
    (cd build/fuzz && exec "./$t" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        "corpus-$t" 2>"$t.log") &
    pid=$!
    rc=0
    wait "$pid" || rc=$?
    rm -rf "${CONQ_FUZZ_DIR:-/dev/shm}/conq-fuzz-$pid"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz.sh: $t found a problem; see build/fuzz/$t.log and build/fuzz/crash-*" >&2
        tail -40 "build/fuzz/$t.log" >&2
        status=1
    else
        grep -E "^(Done|stat::number_of_executed_units)" "build/fuzz/$t.log" || true
    fi
done
exit "$status"
