#!/usr/bin/env bash
# Builds conqueue's examples (Release) and runs them in order:
# examples/01-*.cpp, examples/02-*.cpp, ... Each example is a target named
# after its file (examples/01-spsc.cpp -> 01-spsc). Build tree: build/demo.
# Missing Debian packages are installed first when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh demo

dir=build/demo
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release \
    -DCONQ_BUILD_EXAMPLES=ON -DCONQ_BUILD_TESTS=OFF -DCONQ_BUILD_BENCHMARKS=OFF -DCONQ_INSTALL=OFF
cmake --build "$dir" -j"$(nproc)"

shopt -s nullglob
sources=(examples/[0-9][0-9]-*.cpp)
if [ "${#sources[@]}" -eq 0 ]; then
    echo "demo.sh: no examples/NN-*.cpp to run" >&2
    exit 1
fi
for source in "${sources[@]}"; do
    name="$(basename "$source" .cpp)"
    exe="$dir/examples/$name"
    if [ ! -x "$exe" ]; then
        echo "demo.sh: $source was not built ($exe missing)" >&2
        exit 1
    fi
    echo
    echo "==================== $source"
    "$exe"
done
echo
echo "demo.sh: ran ${#sources[@]} examples"
