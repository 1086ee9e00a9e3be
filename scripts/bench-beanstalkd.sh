#!/usr/bin/env bash
# Measures conq-beanstalkd against beanstalkd itself under the same loads
# (benchmarks/beanstalkd_load.cpp: cycle, many, pipeline), both servers
# started once with the same flags on free loopback ports, and writes:
#
#   build/bench/beanstalkd.json   every run of conq_beanstalkd_load
#   build/bench/beanstalkd.md     the result table and the ratios, also printed
#
# Usage: scripts/bench-beanstalkd.sh [cycle|many|pipeline]...
# (default all three; with a subset the outputs are named beanstalkd-partial.*).
#
# For each load, each repetition runs the load once against each server, the
# order swapped from one repetition to the next (A B, B A, ...), so slow drift
# of the machine falls on both. A server is restarted only if it died.
#
# Environment: CONQ_BENCH_REPETITIONS (default 5); CONQ_BENCH_BEANSTALKD (the
# reference server, default /usr/bin/beanstalkd; Debian: apt-get install
# beanstalkd); CONQ_BEANSTALKD_BIN (the server compared with it, default
# conq-beanstalkd built here; point it at another beanstalkd to check the
# pairing: two identical servers should give ratios near 1x) and
# CONQ_BEANSTALKD_LABEL (its name in the results, default conq-beanstalkd);
# CONQ_BEANSTALKD_FLAGS (flags for that server alone, e.g. "-S 0");
# CONQ_BENCH_SERVER_FLAGS (flags for both servers after -l and -p, default
# none: in memory, default max job size); CONQ_BENCH_BEANSTALKD_FLAGS (extra
# conq_beanstalkd_load flags for every run, e.g. "--size=1024" or
# "--seconds=3"); CONQ_BENCH_NOTE (a line printed with the results);
# CONQ_BENCH_BUILD_DIR (default build/bench); CONQ_BENCH_JOBS (parallel
# compile jobs, default 2).
#
# Client and servers share the machine: on 2 cores the load generator (one
# thread) and a server each get about one. Run it on a quiet machine; the
# load average at the start is recorded with the results, and each run
# reports the CPU that other processes took during it (runs above 10% of a
# CPU are flagged). With the defaults a full run takes about 2 minutes
# against conq-beanstalkd, 2.5 against a second beanstalkd, plus the build.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
bench_init bench-beanstalkd.sh 5
reference=${CONQ_BENCH_BEANSTALKD:-/usr/bin/beanstalkd}
reference_label=beanstalkd
contender=${CONQ_BEANSTALKD_BIN:-}
contender_label=${CONQ_BEANSTALKD_LABEL:-conq-beanstalkd}
read -r -a server_flags <<<"${CONQ_BENCH_SERVER_FLAGS:-}"
read -r -a contender_flags <<<"${CONQ_BEANSTALKD_FLAGS:-}"
read -r -a load_flags <<<"${CONQ_BENCH_BEANSTALKD_FLAGS:-}"

loads=("$@")
if [[ ${#loads[@]} -eq 0 ]]; then loads=(cycle many pipeline); fi
for load in "${loads[@]}"; do
    case "$load" in
        cycle|many|pipeline) ;;
        *) echo "bench-beanstalkd.sh: unknown load '$load' (use cycle, many or pipeline)" >&2; exit 2 ;;
    esac
done
bench_need_python
if ! [[ -x $reference ]]; then
    echo "bench-beanstalkd.sh: $reference not found (Debian: apt-get install beanstalkd," \
         "or set CONQ_BENCH_BEANSTALKD)" >&2
    exit 1
fi
if [[ $contender_label == "$reference_label" ]]; then
    echo "bench-beanstalkd.sh: CONQ_BEANSTALKD_LABEL must differ from '$reference_label'" >&2
    exit 2
fi

# conq-beanstalkd is built with the examples (or the tests) only.
targets=(conq_beanstalkd_load)
examples=OFF
if [[ -z $contender ]]; then
    targets+=(conq-beanstalkd)
    examples=ON
    contender="$build/examples/beanstalkd-server/conq-beanstalkd"
fi
bench_build -DCONQ_BUILD_EXAMPLES="$examples" "${targets[@]}"
load_bin="$build/benchmarks/conq_beanstalkd_load"

out="$build/beanstalkd"
if [[ $# -gt 0 ]]; then out="$build/beanstalkd-partial"; fi
json="$out.json"
md="$out.md"
runs="$out.runs.jsonl"
rm -f "$json" "$md" "$runs"

bench_command CONQ_BENCH_REPETITIONS CONQ_BENCH_BEANSTALKD CONQ_BEANSTALKD_BIN \
    CONQ_BEANSTALKD_LABEL CONQ_BEANSTALKD_FLAGS CONQ_BENCH_SERVER_FLAGS \
    CONQ_BENCH_BEANSTALKD_FLAGS -- "$@"

# ------------------------------------------------------------------ servers

declare -A server_bin=([$reference_label]=$reference [$contender_label]=$contender)
declare -A server_pid=() server_port=()
load_pid=""

stop_servers() {
    local label
    if [[ -n $load_pid ]]; then kill "$load_pid" 2>/dev/null || true; fi
    for label in "${!server_pid[@]}"; do
        kill "${server_pid[$label]}" 2>/dev/null || true
        wait "${server_pid[$label]}" 2>/dev/null || true
    done
    rm -f "$out.result" "$out.stderr" "$runs"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts server `label` on a free port and waits until it accepts connections.
start_server() {
    local label=$1 port pid i
    local flags=("${server_flags[@]}")
    if [[ $label == "$contender_label" ]]; then flags+=("${contender_flags[@]}"); fi
    port=$(free_port)
    "${server_bin[$label]}" -l 127.0.0.1 -p "$port" "${flags[@]}" \
        >>"$out.$label.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench-beanstalkd.sh: $label (${server_bin[$label]}) exited at start;" \
                 "see $out.$label.log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            server_pid[$label]=$pid
            server_port[$label]=$port
            echo "bench-beanstalkd.sh: $label listening on 127.0.0.1:$port (pid $pid)"
            return
        fi
        sleep 0.05
    done
    echo "bench-beanstalkd.sh: $label (${server_bin[$label]}) does not accept connections" \
         "on 127.0.0.1:$port after 5 s; see $out.$label.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
}

rm -f "$out.$reference_label.log" "$out.$contender_label.log"
start_server "$reference_label"
start_server "$contender_label"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)

# --------------------------------------------------------------------- runs

load_args() {
    case "$1" in
        cycle) echo "--load=cycle --conns=1" ;;
        many) echo "--load=many --producers=4 --workers=4" ;;
        pipeline) echo "--load=pipeline --conns=1 --depth=100" ;;
    esac
}

# One run of `load` against `label`; a failed run is recorded as an error
# (the tables list it) and a server that died is started again.
status=0
run_one() {
    local load=$1 label=$2 result rc=0 args
    read -r -a args <<<"$(load_args "$load")"
    # In the background and waited for, so that a signal stops the script
    # (and the servers) at once rather than after the run.
    "$load_bin" --json --host=127.0.0.1 --port="${server_port[$label]}" \
        --label="$label" --server-pid="${server_pid[$label]}" "${args[@]}" "${load_flags[@]}" \
        >"$out.result" 2>"$out.stderr" &
    load_pid=$!
    wait "$load_pid" || rc=$?
    load_pid=""
    result=$(<"$out.result")
    if [[ $rc -eq 0 ]]; then
        printf '%s\n' "$result" >>"$runs"
        "$python" -c 'import json, sys; print("  %(name)s: %(rate).0f %(rate_unit)s, "
            "%(latency)s p50 %(p50_us).0f us, p99 %(p99_us).0f us" % json.loads(sys.argv[1]))' \
            "$result"
        return
    fi
    status=1
    local message
    message=$(tail -n 3 "$out.stderr")
    echo "  $load/$label FAILED: $message" >&2
    "$python" -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "run_type": "iteration",
        "error_occurred": True, "error_message": sys.argv[2]}))' "$load/$label" "$message" >>"$runs"
    if ! kill -0 "${server_pid[$label]}" 2>/dev/null; then
        echo "bench-beanstalkd.sh: $label died; starting it again" >&2
        unset "server_pid[$label]"
        start_server "$label"
    fi
}

for load in "${loads[@]}"; do
    echo "== $load: $(load_args "$load") ${load_flags[*]}"
    for ((rep = 1; rep <= reps; rep++)); do
        if ((rep % 2)); then
            order=("$reference_label" "$contender_label")
        else
            order=("$contender_label" "$reference_label")
        fi
        for label in "${order[@]}"; do run_one "$load" "$label"; done
    done
done
rm -f "$out.stderr" "$out.result"
echo "bench-beanstalkd.sh: measured in $(($(date +%s) - started)) s"

# ------------------------------------------------------------------- tables

version() { timeout 5 "$1" -v 2>&1 | head -n 1 || true; }
CONQ_SCRIPTS_DIR="$PWD/scripts" "$python" - "$runs" "$json" "$md" "$command" \
    "${CONQ_BENCH_NOTE:-}" "$reference_label" "$contender_label" "$(version "$reference")" \
    "${server_bin[$contender_label]}" "$(version "${server_bin[$contender_label]}")" "$loadavg" \
    "${CONQ_BENCH_SERVER_FLAGS:-}" "${CONQ_BEANSTALKD_FLAGS:-}" "${loads[@]}" <<'PY' || status=$((status ? status : $?))
import datetime
import json
import os
import sys

sys.path.insert(0, os.environ["CONQ_SCRIPTS_DIR"])
from bench_series import load, median, si, spread  # noqa: E402

(runs_path, json_path, md_path, command, note, ref, con, ref_version, con_bin, con_version,
 loadavg, server_flags, con_flags) = sys.argv[1:14]
loads = sys.argv[14:]
servers = [ref, con]

# Google Benchmark's layout, so that bench_series reads it: a context and
# one row per run; registration order = load, then server.
rows = []
context = {}
with open(runs_path, encoding="utf-8") as f:
    for line in f:
        row = json.loads(line)
        context = context or row.pop("context", {})
        row.pop("context", None)
        ld, _, label = row["name"].partition("/")
        row["family_index"] = loads.index(ld) * 2 + servers.index(label)
        rows.append(row)
context.update({
    "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds"),
    "reference": f"{ref}: {ref_version}", "contender": f"{con}: {con_version} ({con_bin})",
    "server_flags": server_flags or "none", "contender_flags": con_flags or "none",
    "loadavg_before": loadavg, "command": command})
with open(json_path, "w", encoding="utf-8") as f:
    json.dump({"context": context, "benchmarks": rows}, f, indent=1)
context, series = load(json_path, "bench-beanstalkd.sh")


def num(v):
    return "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")


# Per load: (metric, key, format); the first is the rate.
metrics = {
    "cycle": [("cycles/s", "rate", si), ("cycle p50 µs", "p50_us", num),
              ("cycle p99 µs", "p99_us", num)],
    "many": [("jobs/s (deleted)", "rate", si), ("put p50 µs", "put_p50_us", num),
             ("put p99 µs", "put_p99_us", num), ("delete p50 µs", "delete_p50_us", num),
             ("delete p99 µs", "delete_p99_us", num), ("reserve p50 µs", "reserve_p50_us", num),
             ("reserve p99 µs", "reserve_p99_us", num)],
    "pipeline": [("puts/s", "rate", si), ("batch p50 µs", "p50_us", num),
                 ("batch p99 µs", "p99_us", num)],
}
cpu_rows = [("server CPU µs per op", "server_cpu_us_per_op", num),
            ("client CPU µs per op", "client_cpu_us_per_op", num),
            ("other processes' CPU %", "other_cpu_pct", lambda v: f"{v:.0f}")]


def describe(ld):
    for name in (f"{ld}/{ref}", f"{ld}/{con}"):
        s = series.get(name)
        if s and s.rows:
            r = s.rows[0]
            if ld == "cycle":
                return f"{r['conns']} conn, put-reserve-delete, {r['size']} B"
            if ld == "many":
                return f"{r['producers']} producers + {r['workers']} workers, {r['size']} B"
            return f"{r['conns']} conn, {r['depth']} puts per write, {r['size']} B"
    return ld


reps = max((len(s.rows) + len(s.errors) for s in series.values()), default=0)
lines = [f"Machine: {context.get('conq_cpu_model', '?')}, {context.get('num_cpus', '?')} CPUs, "
         f"kernel {context.get('conq_kernel', '?')}; load generator built with "
         f"{context.get('conq_compiler', '?')}, build type {context.get('conq_build_type', '?')}. "
         f"Run on {context['date']}, {reps} repetition(s) per load and server; load average "
         f"before the run {loadavg}.", "",
         f"Servers: {ref} = {ref_version}; {con} = {con_version} (`{con_bin}`); flags for both "
         f"`{' '.join(['-l 127.0.0.1 -p PORT', server_flags]).strip()}`"
         + (f", and `{con_flags}` for {con}" if con_flags else "") + ".", "",
         f"Command: `{command}`"]
if note:
    lines += ["", f"**{note}**"]
lines += ["", "Median [min - max] of the repetitions (runs alternate between the servers). "
          f"{con} / {ref}: ratio of the medians; above 1x means a higher rate, or a longer "
          "latency or more CPU. Latencies are client round trips; CPU is user + system "
          "time over the measured window, per cycle, job or put; other processes' CPU is the "
          "machine's busy time less the client's and the server's, in % of one CPU.", "",
          f"| load | metric | {ref} | {con} | {con} / {ref} |", "|---|---|---:|---:|---:|"]
for ld in loads:
    failed = [f"{name}: {'; '.join(s.errors)}" for name in (f"{ld}/{ref}", f"{ld}/{con}")
              if (s := series.get(name)) and s.errors]
    for i, (metric, key, fmt) in enumerate(metrics[ld] + cpu_rows):
        cells, meds = [], []
        for label in servers:
            s = series.get(f"{ld}/{label}")
            vals = s.values(key) if s else []
            cells.append(spread(vals, fmt) if vals else "-")
            meds.append(median(s, key) if s and vals else None)
        ratio = (f"{meds[1] / meds[0]:.2f}x" if meds[0] and meds[1] is not None
                 and key != "other_cpu_pct" else "-")
        head = f"**{ld}**: {describe(ld)}" if i == 0 else ""
        lines.append(f"| {head} | {metric} | {cells[0]} | {cells[1]} | {ratio} |")
    for f in failed:
        lines.append(f"| {ld} | FAILED | {f} | | |")
busy = [f"{r['name']} ({r['other_cpu_pct']:.0f}%)" for r in rows
        if r.get("other_cpu_pct", 0) > 10]
if busy:
    lines += ["", f"**Disturbed:** other processes took more than 10% of a CPU during "
              f"{len(busy)} of {len(rows)} runs: {', '.join(busy)}. On a VM an otherwise idle "
              "CPU wakes slowly, so a busy machine can make round trips faster as well as slower."]
text = "\n".join(lines) + "\n"
with open(md_path, "w", encoding="utf-8") as f:
    f.write(text)
print()
print(text)
PY
rm -f "$runs"
exit $status
