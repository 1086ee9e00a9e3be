#!/usr/bin/env bash
# Measures conq::shared_ring between two processes (a forked producer and
# the consumer) against Boost.Interprocess message_queue, POSIX message
# queues and a pipe, throughput and round-trip latency, all in one run, and
# writes the results:
#
#   build/bench/ipc.json   every repetition of conq_ipc_bench
#   build/bench/ipc.md     the result tables, also printed
#
# Usage: scripts/bench-ipc.sh [extra conq_ipc_bench flags]
#
# Extra flags (e.g. --benchmark_filter=16B or --conq_messages=N) go to the
# benchmark binary; the outputs are then named ipc-partial.* so that a full
# run's results stay. docs/ is never touched.
#
# Environment: CONQ_BENCH_REPETITIONS (default 5), CONQ_BENCH_IPC_MESSAGES,
# CONQ_BENCH_IPC_ROUND_TRIPS, CONQ_BENCH_IPC_CAPACITY,
# CONQ_BENCH_IPC_PEER_DEPTH, CONQ_BENCH_IPC_BATCH, CONQ_BENCH_IPC_SIZES (see
# benchmarks/ipc.bench.cpp), CONQ_BENCH_CPUS, CONQ_BENCH_TIMEOUT_S,
# CONQ_BENCH_NOTE (a line printed with the results), CONQ_BENCH_BUILD_DIR
# (default build/bench), CONQ_BENCH_JOBS (parallel compile jobs, default 2).
#
# POSIX queues deeper than fs.mqueue.msg_max (10 by default) need
# CAP_SYS_RESOURCE or a raised limit (sysctl fs.mqueue.msg_max=1024); without
# either, the deeper posix_mq cases are left out and the results say so.
# This script changes no system setting.
#
# Run it on a quiet machine: the producer and the consumer each want a CPU
# of their own (the first two of CONQ_BENCH_CPUS, or of the CPUs this
# process may use), and anything else running moves the numbers. With the
# defaults (5 repetitions of 5,000,000 messages, 16 B and 64 B) the
# measurement takes about 5 to 8 minutes on 2 cores, most of it in the
# depth-10 Boost and POSIX queues, plus the build.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-ipc.sh 5
bench_need_python
bench_build conq_ipc_bench

if [[ $# -gt 0 ]]; then
    out="$build/ipc-partial"
else
    out="$build/ipc"
fi
json="$out.json"
md="$out.md"

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_IPC_MESSAGES CONQ_BENCH_IPC_ROUND_TRIPS \
    CONQ_BENCH_IPC_CAPACITY CONQ_BENCH_IPC_PEER_DEPTH CONQ_BENCH_IPC_BATCH \
    CONQ_BENCH_IPC_SIZES CONQ_BENCH_CPUS -- "$@"

# A run that failed its check: make the tables of what there is (they list
# the errors) and fail afterwards.
status=0
bench_run "$build/benchmarks/conq_ipc_bench" "$json" "$@"

# The tables: median [min - max] over the repetitions of each benchmark.
CONQ_SCRIPTS_DIR="$PWD/scripts" "$python" - "$json" "$md" "$command" "${CONQ_BENCH_NOTE:-}" <<'PY' || status=$((status ? status : $?))
import os
import statistics
import sys

sys.path.insert(0, os.environ["CONQ_SCRIPTS_DIR"])
from bench_series import load, median, si, spread  # noqa: E402

json_path, md_path, command, note = sys.argv[1:5]
context, series = load(json_path, "bench-ipc.sh")


def num(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def is_latency(name):
    return name.startswith("rtt_")


lines = []
reps = max((len(s.rows) + len(s.errors) for s in series.values()), default=0)
lines.append(f"Machine: {context.get('conq_cpu_model', '?')}, {context.get('num_cpus', '?')} CPUs, "
             f"kernel {context.get('conq_kernel', '?')}; {context.get('conq_compiler', '?')}, "
             f"build type {context.get('conq_build_type', '?')}. Run on {context.get('date', '?')}, "
             f"{reps} repetition(s) per benchmark; peers: {context.get('conq_peers', 'none')}.")
lines.append("")
lines.append(f"Pinning: {context.get('conq_ipc_pinning', '?')}. conq ring capacity "
             f"{context.get('conq_ipc_capacity', '?')}, peer depths 10 and "
             f"{context.get('conq_ipc_peer_depth', '?')}, batch {context.get('conq_ipc_batch', '?')}; "
             f"{int(context.get('conq_ipc_messages', '0')):,} messages per throughput run, "
             f"{int(context.get('conq_ipc_round_trips', '0')):,} timed round trips per latency run "
             f"(after {context.get('conq_ipc_warmup_trips', '?')} untimed). fs.mqueue.msg_max "
             f"{context.get('conq_mq_msg_max', '?')}, RLIMIT_MSGQUEUE "
             f"{context.get('conq_rlimit_msgqueue', '?')} B.")
if context.get("conq_ipc_note", "none") != "none":
    lines += ["", f"Left out: {context['conq_ipc_note']}"]
lines += ["", f"Command: `{command}`"]
if note:
    lines += ["", f"**{note}**"]

lines += ["", "Throughput, one producer process -> one consumer process. Median [min - max] of the "
          "repetitions; MB = 10^6 bytes of messages; time is one run. vcsw: voluntary context "
          "switches per 1000 messages (producer / consumer); CPU s: user + system (producer / "
          "consumer), medians.", ""]
lines.append("| benchmark | messages | msg/s | MB/s | time ms | vcsw/1k | CPU s | setting |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
for name, s in series.items():
    if is_latency(name):
        continue
    if not s.rows:
        lines.append(f"| {name} | - | FAILED | - | - | - | - | {'; '.join(s.errors)} |")
        continue
    rate = spread(s.values("items_per_second"), si)
    mbs = spread([v / 1e6 for v in s.values("bytes_per_second")],
                 lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
    ms = spread(s.values("real_time"), lambda v: f"{v:.4g}")
    vcsw = f"{num(median(s, 'vcsw_per_1k_prod'))} / {num(median(s, 'vcsw_per_1k_cons'))}"
    cpu = f"{num(median(s, 'cpu_s_prod'))} / {num(median(s, 'cpu_s_cons'))}"
    label = s.label
    if s.errors:
        label += f"; {len(s.errors)} FAILED: {'; '.join(s.errors)}"
    lines.append(f"| {name} | {median(s, 'messages'):,.0f} | {rate} | {mbs} | {ms} | {vcsw} | {cpu} | "
                 f"{label} |")

latency = [(n, s) for n, s in series.items() if is_latency(n)]
if latency:
    lines += ["", "Round trips (16-byte message there and back), ns per round trip. Median [min - max] "
              "over the repetitions of each percentile.", ""]
    lines.append("| benchmark | round trips | p50 ns | p90 ns | p99 ns | p99.9 ns | max ns | setting |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    ns_fmt = lambda v: f"{v:,.0f}"
    for name, s in latency:
        if not s.rows:
            lines.append(f"| {name} | - | FAILED | - | - | - | - | {'; '.join(s.errors)} |")
            continue
        cells = [spread(s.values(k), ns_fmt) for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns")]
        label = s.label
        if s.errors:
            label += f"; {len(s.errors)} FAILED: {'; '.join(s.errors)}"
        lines.append(f"| {name} | {median(s, 'round_trips'):,.0f} | {' | '.join(cells)} | {label} |")


# Same-run ratios of median msg/s: each conq case against each peer, per size.
def rate_of(name):
    s = series.get(name)
    return median(s, "items_per_second") if s and s.rows else None


def split(name):
    family, size, variant = (name.split("/") + ["", ""])[:3]
    return family, size, variant


throughput = [n for n in series if not is_latency(n)]
sizes = []
for n in throughput:
    size = split(n)[1]
    if size not in sizes:
        sizes.append(size)
conq_cases = []
peer_cases = []
for n in throughput:
    family, size, variant = split(n)
    key = f"{family}/<size>/{variant}"
    target = conq_cases if family.startswith("conq_") else peer_cases
    if key not in target:
        target.append(key)
ratio_rows = []
for a in conq_cases:
    for b in peer_cases:
        cells = []
        for size in sizes:
            ra = rate_of(a.replace("<size>", size))
            rb = rate_of(b.replace("<size>", size))
            cells.append(f"{ra / rb:.2f}x" if ra and rb else "-")
        if any(c != "-" for c in cells):
            ratio_rows.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
if ratio_rows:
    lines += ["", "Ratios of median msg/s (same run; above 1: conq is faster):", "",
              "| ratio | " + " | ".join(sizes) + " |",
              "|---|" + "---:|" * len(sizes)] + ratio_rows

# Same-run ratios of median p50 and p99 round trips: each peer against each conq case.
def pct_of(name, key):
    s = series.get(name)
    return median(s, key) if s and s.rows else None


conq_rtt = [n for n, _ in latency if n.startswith("rtt_conq_")]
peer_rtt = [n for n, _ in latency if not n.startswith("rtt_conq_")]
rtt_rows = []
for a in conq_rtt:
    for b in peer_rtt:
        cells = []
        for key in ("p50_ns", "p99_ns"):
            va, vb = pct_of(a, key), pct_of(b, key)
            cells.append(f"{vb / va:.1f}x" if va and vb else "-")
        if any(c != "-" for c in cells):
            rtt_rows.append(f"| {b} / {a} | {cells[0]} | {cells[1]} |")
if rtt_rows:
    lines += ["", "Ratios of median round-trip time (same run; above 1: conq is quicker):", "",
              "| ratio | p50 | p99 |", "|---|---:|---:|"] + rtt_rows

text = "\n".join(lines) + "\n"
with open(md_path, "w", encoding="utf-8") as f:
    f.write(text)
print()
print(text, end="")
PY

echo "bench-ipc.sh: results in $json and $md ($(($(date +%s) - started)) s)"
if [[ $status -ne 0 ]]; then
    echo "bench-ipc.sh: some benchmarks failed (see above)" >&2
fi
exit "$status"
