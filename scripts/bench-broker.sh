#!/usr/bin/env bash
# Measures conq::broker's three parts (work queues, pub/sub beside ZeroMQ
# inproc sockets, streams in memory and durable) in one run, and writes:
#
#   build/bench/broker.json   every repetition of conq_broker_bench
#   build/bench/broker.md     the result table and the same-run ratios, also printed
#
# Usage: scripts/bench-broker.sh [extra conq_broker_bench flags]
# (with extra flags the outputs are named broker-partial.*).
#
# Environment: CONQ_BENCH_REPETITIONS (default 5), CONQ_BENCH_BROKER_MESSAGES
# (default 2000000), CONQ_BENCH_DIR (scratch directory for the durable cases,
# default /tmp), CONQ_BENCH_TIMEOUT_S, CONQ_BENCH_NOTE (a line printed with
# the results), CONQ_BENCH_BUILD_DIR (default build/bench), CONQ_BENCH_JOBS
# (parallel compile jobs, default 2). ZeroMQ is compiled in when found
# (Debian: libzmq3-dev; scripts/install-deps.sh bench).
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-broker.sh 5

scripts/install-deps.sh bench
bench_need_python
bench_build conq_broker_bench

out="$build/broker"
if [[ $# -gt 0 ]]; then out="$build/broker-partial"; fi
json="$out.json"
md="$out.md"

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_BROKER_MESSAGES -- "$@"

status=0
bench_run "$build/benchmarks/conq_broker_bench" "$json" "$@"

CONQ_SCRIPTS_DIR="$PWD/scripts" "$python" - "$json" "$md" "$command" "${CONQ_BENCH_NOTE:-}" <<'PY' || status=$((status ? status : $?))
import os
import sys

sys.path.insert(0, os.environ["CONQ_SCRIPTS_DIR"])
from bench_series import load, median, si, spread  # noqa: E402

json_path, md_path, command, note = sys.argv[1:5]
context, series = load(json_path, "bench-broker.sh")
reps = max((len(s.rows) + len(s.errors) for s in series.values()), default=0)
lines = [f"Machine: {context.get('conq_cpu_model', '?')}, {context.get('num_cpus', '?')} CPUs; "
         f"{context.get('conq_compiler', '?')}, build type {context.get('conq_build_type', '?')}; "
         f"ZeroMQ {context.get('conq_zmq_version', 'not built in')}. Run on {context.get('date', '?')}, "
         f"{reps} repetition(s), {int(context.get('conq_broker_messages', '0')):,} messages per run.",
         "", f"Command: `{command}`"]
if note:
    lines += ["", f"**{note}**"]
lines += ["", "Median [min - max] of the repetitions; items are cycles (work), messages delivered "
          "(pub/sub: N x subscribers) or records (streams).", "",
          "| benchmark | items/s | time ms |", "|---|---:|---:|"]
for name, s in series.items():
    if not s.rows:
        lines.append(f"| {name} | FAILED: {'; '.join(s.errors)} | - |")
        continue
    lines.append(f"| {name} | {spread(s.values('items_per_second'), si)} | "
                 f"{spread(s.values('real_time'), lambda v: f'{v:.4g}')} |")


def rate(name):
    s = series.get(name)
    return median(s, "items_per_second") if s and s.rows else None


def best(name):
    s = series.get(name)
    return max(s.values("items_per_second")) if s and s.rows else None


pairs = [("pubsub/conq/subs:1", "pubsub/zmq_pubsub/subs:1"),
         ("pubsub/conq/subs:4", "pubsub/zmq_pubsub/subs:4"),
         ("pubsub/conq/subs:1", "pubsub/zmq_pushpull/pulls:1"),
         ("stream/append/durable", "stream/log_append/durable"),
         ("work/cycle/workers:2", "work/cycle/workers:1")]
rows = [(a, b, rate(a) / rate(b), best(a) / best(b)) for a, b in pairs if rate(a) and rate(b)]
if rows:
    lines += ["", "Same-run ratios: of the medians, and of the best repetitions (on a VM whose "
              "speed jumps between runs, best against best compares both sides at their fastest):",
              "", "| this | over | median ratio | best ratio |", "|---|---|---:|---:|"]
    lines += [f"| {a} | {b} | {r:.2f}x | {q:.2f}x |" for a, b, r, q in rows]
text = "\n".join(lines) + "\n"
with open(md_path, "w", encoding="utf-8") as f:
    f.write(text)
print()
print(text)
PY
exit $status
