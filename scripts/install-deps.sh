#!/usr/bin/env bash
# Installs the Debian packages that conqueue's scripts need, if any is missing.
#
#   scripts/install-deps.sh [test|demo|bench]...
#
# Always: a C++20 compiler (g++), cmake, make and pkg-config.
#   test   Catch2 and clang (clang checks the headers and the compile errors);
#          beanstalkd, and Node.js with npm unless a node is installed (the
#          tests of conq-beanstalkd compare it with beanstalkd and run npm
#          clients against it)
#   demo   nothing more
#   bench  Google Benchmark and the queues and stores it is compared with
#
# As root, missing packages are installed with apt-get (after an apt-get
# update). Otherwise the apt-get command is printed and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake make pkg-config)
for set in "$@"; do
    case "$set" in
        test) packages+=(catch2 clang-14 beanstalkd)
              # Node.js and npm run published beanstalkd clients against
              # conq-beanstalkd (tests/server); a Node.js already installed
              # (from any source) will do.
              command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm) ;;
        demo) ;;
        bench) packages+=(libbenchmark-dev libboost-dev libtbb-dev libconcurrentqueue-dev
                          libreaderwriterqueue-dev python3-matplotlib
                          liblmdb-dev librocksdb-dev libsqlite3-dev libzmq3-dev) ;;
        *) echo "install-deps.sh: unknown set '$set' (use test, demo or bench)" >&2; exit 2 ;;
    esac
done

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q "^Status: install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

command=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then
    echo "install-deps.sh: installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive "${command[@]}"
else
    echo "install-deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${command[*]}" >&2
    exit 1
fi
