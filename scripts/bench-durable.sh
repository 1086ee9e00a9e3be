#!/usr/bin/env bash
# Measures conq::durable_log against the raw limits of this machine (a
# pre-faulted file mapping, framed write() calls, msync, fdatasync) and
# against LMDB, SQLite and RocksDB, all in one run, and writes the results:
#
#   build/bench/durable.json   every repetition of conq_durable_bench
#   build/bench/durable.md     the result tables, also printed
#
# Usage: scripts/bench-durable.sh [extra conq_durable_bench flags]
#
# Extra flags (e.g. --benchmark_filter=log_append or --conq_records_64=N)
# go to the benchmark binary; the outputs are then named durable-partial.*
# so that a full run's results stay.
#
# Environment: CONQ_BENCH_REPETITIONS (default 3), CONQ_BENCH_DIR (scratch
# directory on the file system to measure, default /tmp; it needs about
# 2 GB free), CONQ_BENCH_DURABLE_RECORDS_64, CONQ_BENCH_DURABLE_RECORDS_1K,
# CONQ_BENCH_DURABLE_RECORDS_ALWAYS, CONQ_BENCH_DURABLE_FSYNC_SAMPLES,
# CONQ_BENCH_DURABLE_RECOVERY_MIB, CONQ_BENCH_DURABLE_TAIL_RECORDS,
# CONQ_BENCH_DURABLE_TAIL_GAP_NS, CONQ_BENCH_DURABLE_SETTLE_MS (see
# benchmarks/durable.bench.cpp), CONQ_BENCH_CPUS, CONQ_BENCH_TIMEOUT_S,
# CONQ_BENCH_NOTE (a line printed with the results), CONQ_BENCH_BUILD_DIR
# (default build/bench), CONQ_BENCH_JOBS (parallel compile jobs, default 2).
#
# The peers are compiled in when CMake finds them (Debian: liblmdb-dev,
# libsqlite3-dev, librocksdb-dev; scripts/install-deps.sh bench).
#
# Run it on a quiet machine, with nothing else writing to the scratch
# file system: anything else running moves the numbers, write-back most of
# all. With the defaults (3 repetitions) the measurement takes about 1 to
# 1.5 minutes on 2 cores, plus the build.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-durable.sh 3
bench_need_python
bench_build conq_durable_bench

if [[ $# -gt 0 ]]; then
    out="$build/durable-partial"
else
    out="$build/durable"
fi
json="$out.json"
md="$out.md"

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_DIR CONQ_BENCH_DURABLE_RECORDS_64 \
    CONQ_BENCH_DURABLE_RECORDS_1K CONQ_BENCH_DURABLE_RECORDS_ALWAYS \
    CONQ_BENCH_DURABLE_FSYNC_SAMPLES CONQ_BENCH_DURABLE_RECOVERY_MIB \
    CONQ_BENCH_DURABLE_TAIL_RECORDS CONQ_BENCH_DURABLE_TAIL_GAP_NS \
    CONQ_BENCH_DURABLE_SETTLE_MS CONQ_BENCH_CPUS -- "$@"

# A run that failed its check: make the tables of what there is (they list
# the errors) and fail afterwards.
status=0
bench_run "$build/benchmarks/conq_durable_bench" "$json" "$@"

# The tables: median [min - max] over the repetitions of each benchmark.
CONQ_SCRIPTS_DIR="$PWD/scripts" "$python" - "$json" "$md" "$command" "${CONQ_BENCH_NOTE:-}" <<'PY' || status=$((status ? status : $?))
import os
import statistics
import sys

sys.path.insert(0, os.environ["CONQ_SCRIPTS_DIR"])
from bench_series import load, median, si, spread  # noqa: E402

json_path, md_path, command, note = sys.argv[1:5]
context, series = load(json_path, "bench-durable.sh")


# Extra counters shown per benchmark: (counter, heading, scale).
EXTRA = [
    ("final_sync_ms", "final sync ms", 1),
    ("p50_us", "p50 us", 1), ("p90_us", "p90 us", 1), ("p99_us", "p99 us", 1),
    ("p50_ns", "p50 ns", 1), ("p90_ns", "p90 ns", 1), ("p99_ns", "p99 ns", 1),
    ("p999_ns", "p99.9 ns", 1),
    ("open_s", "s per open", 1),
    ("ns_per_page", "ns per page", 1),
]

lines = []
reps = max((len(s.rows) + len(s.errors) for s in series.values()), default=0)
lines.append(f"Machine: {context.get('conq_cpu_model', '?')}, {context.get('num_cpus', '?')} CPUs, "
             f"kernel {context.get('conq_kernel', '?')}; scratch {context.get('conq_scratch_dir', '?')} "
             f"({context.get('conq_scratch_fs', '?')}); {context.get('conq_compiler', '?')}, "
             f"build type {context.get('conq_build_type', '?')}; CRC-32C "
             f"{context.get('conq_crc32c', '?')}. Run on {context.get('date', '?')}, "
             f"{reps} repetition(s) per benchmark; peers: {context.get('conq_peers', 'none')}.")
lines += ["", f"Command: `{command}`"]
if note:
    lines += ["", f"**{note}**"]
lines += ["", "Median [min - max] of the repetitions. Rates count records and payload bytes "
          "(MB = 10^6 bytes); time is one run.", ""]
lines.append("| benchmark | records | records/s | payload MB/s | time ms | other (median) |")
lines.append("|---|---:|---:|---:|---:|---|")
for name, s in series.items():
    if not s.rows:
        lines.append(f"| {name} | - | FAILED | - | - | {'; '.join(s.errors)} |")
        continue
    records = median(s, "records")
    rate = spread(s.values("items_per_second"), si)
    mbs = spread([v / 1e6 for v in s.values("bytes_per_second")],
                 lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
    ms = spread(s.values("real_time"), lambda v: f"{v:.4g}")
    other = []
    for key, heading, scale in EXTRA:
        v = median(s, key)
        if v is not None:
            v *= scale
            other.append(f"{heading} {v:,.0f}" if v >= 1000 else f"{heading} {v:.4g}")
    if s.errors:
        other.append(f"{len(s.errors)} FAILED: {'; '.join(s.errors)}")
    lines.append(f"| {name} | {records:,.0f} | {rate} | {mbs} | {ms} | {', '.join(other)} |")

# Same-run ratios of median records/s: conq against the raw limits and the peers.
def rate_of(name):
    s = series.get(name)
    return median(s, "items_per_second") if s and s.rows else None

pairs = [
    ("log_append/{}/none", "raw_mmap_copy/{}"),
    ("log_append/{}/none_prefaulted", "raw_mmap_copy/{}"),
    ("log_append/{}/none", "raw_write_crc/{}"),
    ("log_append/{}/every_1MiB", "raw_mmap_msync_1MiB/{}"),
    ("log_append/{}/every_1MiB_prefaulted", "raw_mmap_msync_1MiB/{}"),
    ("log_append/{}/none", "lmdb_append/{}"),
    ("log_append/{}/none", "sqlite_wal_append/{}"),
    ("log_append/{}/none", "rocksdb_put/{}"),
]
ratio_rows = []
for a, b in pairs:
    cells = []
    for size in ("64B", "1KiB"):
        ra, rb = rate_of(a.format(size)), rate_of(b.format(size))
        cells.append(f"{ra / rb:.2f}x" if ra and rb else "-")
    if any(c != "-" for c in cells):
        ratio_rows.append(f"| {a.format('<size>')} / {b.format('<size>')} | {cells[0]} | {cells[1]} |")
if ratio_rows:
    lines += ["", "Ratios of median records/s (same run):", "",
              "| ratio | 64B | 1KiB |", "|---|---:|---:|"] + ratio_rows

text = "\n".join(lines) + "\n"
with open(md_path, "w", encoding="utf-8") as f:
    f.write(text)
print()
print(text, end="")
PY

echo "bench-durable.sh: results in $json and $md ($(($(date +%s) - started)) s)"
if [[ $status -ne 0 ]]; then
    echo "bench-durable.sh: some benchmarks failed (see above)" >&2
fi
exit "$status"
