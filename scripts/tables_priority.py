#!/usr/bin/python3
"""Turn conq_priority_bench and conq_delay_bench JSON output into Markdown tables.

Usage:
    tables_priority.py [--priority build/bench/priority.json]
                       [--delay build/bench/delay.json]
                       [--markdown OUT.md] [--update-doc docs/benchmarks.md]
                       [--png OUT.png] [--note TEXT] [--command TEXT]

Reads every repetition of every benchmark and reports the median and the
min-max over the repetitions:

- pq_mixed/<keys>/<queue>/threads:<T>: million operations (push or pop) per
  second, one table per key distribution and thread count. For a peer,
  "vs conqueue" is conq_strict's median divided by the peer's (both are
  exact queues; above 1x conqueue is faster).
- pq_rank_error/<keys>/<queue>/threads:1: the mean rank error (median and
  min-max over the repetitions) and the largest rank seen in any repetition.
- delay/<scenario>/<storage>/pending:<n>: million pairs, fired timers or
  schedules per second, one table per scenario; "wheel / heap" is
  timer_wheel's median divided by timer_heap's at the same pending count.

With --update-doc the Markdown replaces the block between the
`<!-- BEGIN priority-results -->` and `<!-- END priority-results -->`
markers; with --png it also draws a chart (needs matplotlib). A missing or
empty JSON file (a filter that matched nothing) leaves its part out.

Exits with status 1 if any benchmark reported an error (after writing the
outputs, where the errors are listed).
"""

import argparse
import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_benchmarks import Result, fmt, machine, run_date, update_doc  # noqa: E402  (shared helpers)

BEGIN_MARK = "<!-- BEGIN priority-results -->"
END_MARK = "<!-- END priority-results -->"

PQ_REFERENCE = "conq_strict"
PQ_COLOURS = {
    "conq_strict": "#1f77b4",
    "conq_stable": "#6baed6",
    "conq_relaxed": "#08306b",
    "tbb_cpq": "#d62728",
    "mutex_std_pq": "#7f7f7f",
}
KEYS_ORDER = ["uniform", "ascending", "u8"]
KEYS_TITLE = {
    "uniform": "uniform 32-bit keys",
    "ascending": "ascending keys (Dijkstra-like: last popped + [0, 1024))",
    "u8": "keys in [0, 256) (many equal keys)",
}
DELAY_SCENARIOS = collections.OrderedDict([
    ("schedule_cancel_fifo", ("Schedule one timer and cancel the oldest, n pending",
                              "M pairs/s")),
    ("schedule_cancel_random", ("Schedule one timer and cancel a random one, n pending",
                                "M pairs/s")),
    ("fire", ("Fire n timers: 10,000 clock steps of 1 ms, drain_due after each",
              "M timers/s")),
    ("schedule", ("Schedule n timers into an empty queue", "M schedules/s")),
])
STORAGE_COLOURS = {"timer_heap": "#1f77b4", "timer_wheel": "#ff7f0e"}


class Series(Result):
    """The repetitions of one benchmark, plus their extra counters."""

    def __init__(self):
        super().__init__()
        self.extra = collections.defaultdict(list)


def load(path):
    """(context, {run_name parts tuple: Series}) from a Google Benchmark JSON file."""
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}, collections.OrderedDict()
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    series = collections.OrderedDict()
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates are recomputed from the repetitions
        name = b.get("run_name", b["name"])
        parts = tuple(p for p in name.split("/")
                      if not p.startswith("iterations:") and p != "manual_time")
        s = series.setdefault(parts, Series())
        s.order = b.get("family_index", s.order)
        s.label = b.get("label", s.label)
        if b.get("error_occurred"):
            s.errors.append(b.get("error_message", "error"))
            continue
        if parts[0] == "pq_rank_error":
            mean = b.get("rank_error_mean")
            if mean is not None:
                s.values.append(mean)
            for key in ("rank_error_max", "shards"):
                if key in b:
                    s.extra[key].append(b[key])
        else:
            ips = b.get("items_per_second")
            if ips is not None:
                s.values.append(ips / 1e6)
    return data.get("context", {}), series


def number_after(part):
    m = re.search(r":(\d+)$", part)
    return int(m.group(1)) if m else 0


def keys_rank(keys):
    return KEYS_ORDER.index(keys) if keys in KEYS_ORDER else len(KEYS_ORDER)


def header(context, note, command, reps):
    lines = [f"Machine: {machine(context)}; {context.get('conq_compiler', 'compiler unknown')}, "
             f"build type {context.get('conq_build_type', '?')}. "
             f"Run on {context.get('date', '?')}, {reps} repetition(s) per benchmark; "
             f"peers: {context.get('conq_peers', 'none')}."]
    if command:
        lines += ["", f"Command: `{command}`"]
    if note:
        lines += ["", f"**{note}**"]
    return lines


def count(context, key):
    """A count from the context, with thousands separators."""
    value = context.get(key, "?")
    return f"{int(value):,}" if str(value).isdigit() else value


def repetitions(series):
    return max((len(s.values) for s in series.values()), default=0)


def collect_errors(series, errors):
    for parts, s in series.items():
        for e in dict.fromkeys(s.errors):  # once per distinct message
            errors.append(f"{'/'.join(parts)}: {e}")


def priority_markdown(context, series):
    cpus = context.get("conq_cpus", "?")
    lines = ["", f"**Priority queues.** Prefill {count(context, 'conq_pq_prefill')} keys, then "
              f"{count(context, 'conq_pq_ops')} operations split over T threads, each "
              f"alternating push and try_pop; threads pinned to CPUs {cpus}; "
              f"hardware threads seen by the relaxed queue: "
              f"{context.get('conq_hardware_concurrency', '?')}. Median over the repetitions, "
              f"then min-max. \"vs conqueue\" is {PQ_REFERENCE} divided by the peer; above 1x "
              f"conqueue is faster."]
    mixed = collections.defaultdict(collections.OrderedDict)
    for parts, s in series.items():
        if parts[0] == "pq_mixed" and len(parts) >= 4:
            mixed[(parts[1], number_after(parts[3]))][parts[2]] = s
    for keys, threads in sorted(mixed, key=lambda k: (keys_rank(k[0]), k[1])):
        rows = mixed[(keys, threads)]
        plural = "thread" if threads == 1 else "threads"
        lines += ["", f"#### Mixed push/pop, {KEYS_TITLE.get(keys, keys)}, {threads} {plural} "
                  f"(M ops/s, higher is better)", "",
                  "| queue | calls | M ops/s | min-max | vs conqueue |",
                  "|---|---|---:|---:|---|"]
        ref = rows.get(PQ_REFERENCE)
        for queue in sorted(rows, key=lambda q: rows[q].order):
            s = rows[queue]
            if not s.values:
                lines.append(f"| {queue} | {s.label} | error | | |")
                continue
            vs = ""
            if not queue.startswith("conq") and ref is not None and ref.values:
                vs = f"{PQ_REFERENCE} / {queue} = {ref.median / s.median:.2f}x"
            name = f"**{queue}**" if queue.startswith("conq") else queue
            lines.append(f"| {name} | {s.label} | {fmt(s.median, False)} | "
                         f"{fmt(s.low, False)}-{fmt(s.high, False)} | {vs} |")

    ranks = [(parts, s) for parts, s in series.items() if parts[0] == "pq_rank_error"]
    if ranks:
        lines += ["", "#### Rank error, one thread (lower is better)", "",
                  f"Prefill {count(context, 'conq_pq_rank_prefill')} keys, then "
                  f"{count(context, 'conq_pq_rank_ops')} alternating push/pop operations; the "
                  "rank of a popped key is the number of keys in the queue that were strictly "
                  "smaller. The strict queue must always pop rank 0.", "",
                  "| keys | queue | shards | mean rank | min-max of the mean | largest rank |",
                  "|---|---|---:|---:|---:|---:|"]
        ranks.sort(key=lambda ps: (ps[0][2] != "conq_relaxed", keys_rank(ps[0][1])))
        for parts, s in ranks:
            if not s.values:
                lines.append(f"| {parts[1]} | {parts[2]} | | error | | |")
                continue
            shards = s.extra.get("shards", [])
            worst = s.extra.get("rank_error_max", [])
            lines.append(f"| {parts[1]} | {parts[2]} | {int(max(shards)) if shards else '?'} | "
                         f"{s.median:.2f} | {s.low:.2f}-{s.high:.2f} | "
                         f"{int(max(worst)) if worst else '?'} |")
    return lines


def delay_markdown(context, series):
    cpus = context.get("conq_cpus", "?")
    lines = ["", f"**Delay queue.** One thread pinned to the first of CPUs {cpus}; "
              f"manual clock; delays {context.get('conq_dq_delays', '?')}; "
              f"{count(context, 'conq_dq_steps')} steps for the schedule + cancel scenarios. "
              "Median over the repetitions, then min-max. \"wheel / heap\" is timer_wheel "
              "divided by timer_heap at the same pending count; above 1x the wheel is faster."]
    table = collections.defaultdict(collections.OrderedDict)
    for parts, s in series.items():
        if parts[0] == "delay" and len(parts) >= 4:
            table[parts[1]][(number_after(parts[3]), parts[2])] = s
    order = list(DELAY_SCENARIOS) + sorted(set(table) - set(DELAY_SCENARIOS))
    for scenario in [sc for sc in order if sc in table]:
        title, unit = DELAY_SCENARIOS.get(scenario, (scenario, "M/s"))
        rows = table[scenario]
        lines += ["", f"#### {title} ({unit}, higher is better)", "",
                  f"| pending | storage | {unit} | min-max | wheel / heap |",
                  "|---:|---|---:|---:|---|"]
        for pending, storage in sorted(rows, key=lambda k: (k[0], rows[k].order)):
            s = rows[(pending, storage)]
            if not s.values:
                lines.append(f"| {pending:,} | {storage} | error | | |")
                continue
            vs = ""
            heap = rows.get((pending, "timer_heap"))
            if storage == "timer_wheel" and heap is not None and heap.values:
                vs = f"{s.median / heap.median:.2f}x"
            lines.append(f"| {pending:,} | {storage} | {fmt(s.median, False)} | "
                         f"{fmt(s.low, False)}-{fmt(s.high, False)} | {vs} |")
    return lines


def plot(pq_context, pq, dq_context, dq, png, note):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    mixed = collections.defaultdict(lambda: collections.defaultdict(dict))
    for parts, s in pq.items():
        if parts[0] == "pq_mixed" and len(parts) >= 4 and s.values:
            mixed[parts[1]][parts[2]][number_after(parts[3])] = s
    for keys in sorted(mixed, key=keys_rank):
        panels.append(("pq", keys, mixed[keys]))
    delays = collections.defaultdict(lambda: collections.defaultdict(dict))
    for parts, s in dq.items():
        # handles_only (the benchmark loop without a queue) runs 10-100x
        # faster than any queue; drawn, it would flatten the bars that matter.
        if parts[0] == "delay" and len(parts) >= 4 and s.values and parts[2] != "handles_only":
            delays[parts[1]][parts[2]][number_after(parts[3])] = s
    for scenario in [sc for sc in DELAY_SCENARIOS if sc in delays]:
        panels.append(("delay", scenario, delays[scenario]))
    if not panels:
        print("tables_priority: nothing to plot", file=sys.stderr)
        return

    cols = 3
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(15, 3.8 * nrows + 1.0), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (kind, what, groups) in zip(axes.flat, panels):
        known = list(PQ_COLOURS if kind == "pq" else STORAGE_COLOURS)
        names = sorted(groups, key=lambda n: (known.index(n) if n in known else len(known), n))
        xs = sorted({x for g in groups.values() for x in g})
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            pts = [(j, groups[name][x]) for j, x in enumerate(xs) if x in groups[name]]
            pos = [j - 0.4 + width * (i + 0.5) for j, _ in pts]
            med = [s.median for _, s in pts]
            err = [[s.median - s.low for _, s in pts], [s.high - s.median for _, s in pts]]
            colour = (PQ_COLOURS if kind == "pq" else STORAGE_COLOURS).get(name, "#9467bd")
            ax.bar(pos, med, width, yerr=err, color=colour, label=name, capsize=2,
                   error_kw={"elinewidth": 1, "ecolor": "black"})
        ax.set_xticks(range(len(xs)))
        if kind == "pq":
            ax.set_xticklabels([f"{x} thr" for x in xs], fontsize=8)
            ax.set_title(f"pq_mixed, {what} keys (M ops/s)", fontsize=9, loc="left")
        else:
            ax.set_xticklabels([f"{x:,} pending" for x in xs], fontsize=8)
            title, unit = DELAY_SCENARIOS[what]
            ax.set_title(f"delay {what} ({unit})", fontsize=9, loc="left")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    context = pq_context or dq_context
    title = f"conqueue priority and delay queues: {machine(context)}, {run_date(context)}"
    sub = "median of repetitions, bars min-max; higher is better"
    if note:
        sub += f"\n{note}"
    fig.suptitle(title + "\n" + sub, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priority", help="conq_priority_bench --benchmark_out JSON file")
    ap.add_argument("--delay", help="conq_delay_bench --benchmark_out JSON file")
    ap.add_argument("--markdown", help="write the result tables here")
    ap.add_argument("--update-doc", help="replace the priority-results block of this file")
    ap.add_argument("--png", help="write a chart here (needs matplotlib)")
    ap.add_argument("--note", default="", help="a line printed above the tables")
    ap.add_argument("--command", default="", help="the command that produced the JSON")
    args = ap.parse_args()

    pq_context, pq = load(args.priority)
    dq_context, dq = load(args.delay)
    if not pq and not dq:
        raise SystemExit("tables_priority: no benchmark results in "
                         f"{args.priority or '(no --priority)'} or {args.delay or '(no --delay)'}")
    lines = header(pq_context or dq_context, args.note, args.command,
                   max(repetitions(pq), repetitions(dq)))
    errors = []
    if pq:
        lines += priority_markdown(pq_context, pq)
        collect_errors(pq, errors)
    if dq:
        lines += delay_markdown(dq_context, dq)
        collect_errors(dq, errors)
    if errors:
        lines += ["", "Errors reported by the run:", ""]
        lines += [f"- {e}" for e in errors]
    block = "\n".join(lines) + "\n"

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(block)
    if args.update_doc:
        update_doc(args.update_doc, block, BEGIN_MARK, END_MARK, "tables_priority")
    if args.png:
        plot(pq_context, pq, dq_context, dq, args.png, args.note)
    if not args.markdown and not args.update_doc:
        sys.stdout.write(block)
    if errors:
        print("tables_priority: the run reported errors:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
