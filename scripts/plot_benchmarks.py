#!/usr/bin/python3
"""Turn conq_ring_bench JSON output into a chart and a Markdown table.

Usage:
    plot_benchmarks.py RESULTS.json [--png OUT.png] [--markdown OUT.md]
                       [--update-doc docs/benchmarks.md] [--note TEXT]
                       [--command TEXT]

Reads every repetition of every benchmark (names are <scenario>/<queue>/...)
and reports, per scenario and queue, the median and the min-max over the
repetitions: items/s for the throughput scenarios, ns per round trip for
`rtt`; throughput rows that sampled how full the queue was (the fill_pct
counter) also list each repetition's rate with its fill. The chart has one panel per scenario (grouped horizontal bars, min-max
error bars, log scale for round trips). The table adds, for each peer, the
ratio of its conqueue counterpart to it (a speed-up: above 1 means conqueue
is faster). With --update-doc the Markdown replaces the block between the
`<!-- BEGIN rings-results -->` and `<!-- END rings-results -->` markers.

Exits with status 1 if any benchmark reported an error (after writing the
outputs, where the errors are listed).
"""

import argparse
import collections
import json
import re
import statistics
import subprocess
import sys

# The conqueue queue each peer is compared with (same concurrency and same
# kind of waiting).
COUNTERPART = {
    "boost_spsc": "conq_spsc",
    "moodycamel_rwq": "conq_spsc",
    "boost_queue": "conq_mpmc",
    "moodycamel_cq": "conq_mpmc",
    "tbb_bounded": "conq_mpmc",
    "moodycamel_brwcb_blocking": "conq_spsc_blocking",
    "moodycamel_bcq_blocking": "conq_mpmc_blocking",
    "tbb_bounded_blocking": "conq_mpmc_blocking",
    "mutex_cv_ring": "conq_mpmc_blocking",
    "atomic_queue_spsc": "conq_spsc",
    "atomic_queue2_spsc": "conq_spsc",
    "atomic_queue_mpmc": "conq_mpmc",
    "rigtorp_spsc": "conq_spsc",
    "rigtorp_mpmc": "conq_mpmc",
}

LIBRARY_COLOURS = [
    ("conq", "#1f77b4", "conqueue"),
    ("boost", "#ff7f0e", "Boost.Lockfree 1.74"),
    ("moodycamel", "#2ca02c", "moodycamel"),
    ("tbb", "#d62728", "oneTBB"),
    ("mutex", "#7f7f7f", "std::mutex + condvars"),
    ("atomic_queue", "#8c564b", "atomic_queue"),
    ("rigtorp", "#e377c2", "rigtorp"),
]

BEGIN_MARK = "<!-- BEGIN rings-results -->"
END_MARK = "<!-- END rings-results -->"


def library_of(queue):
    for prefix, colour, label in LIBRARY_COLOURS:
        if queue.startswith(prefix):
            return prefix, colour, label
    return "other", "#9467bd", "other"


def is_blocking(queue):
    return queue.endswith("_blocking") or queue == "mutex_cv_ring"


def scenario_key(scenario):
    """1p1c first, then the multi-producer scenarios by thread count, rtt last."""
    if scenario == "throughput_1p1c":
        return (0, 0)
    m = re.fullmatch(r"throughput_(\d+)p(\d+)c", scenario)
    if m:
        return (1, int(m.group(1)) + int(m.group(2)))
    return (2, 0)


def is_rtt(scenario):
    return scenario.startswith("rtt")


class Result:
    def __init__(self):
        self.values = []
        self.fills = []  # fill_pct of each repetition in values (None: not sampled)
        self.label = ""
        self.errors = []
        self.count = None
        self.order = 0

    @property
    def median(self):
        return statistics.median(self.values)

    @property
    def low(self):
        return min(self.values)

    @property
    def high(self):
        return max(self.values)


def load(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    results = collections.defaultdict(lambda: collections.OrderedDict())
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates are recomputed from the repetitions
        parts = b.get("run_name", b["name"]).split("/")
        if len(parts) < 2:
            continue
        scenario, queue = parts[0], parts[1]
        r = results[scenario].setdefault(queue, Result())
        r.order = b.get("family_index", r.order)  # registration order: conqueue first
        if b.get("error_occurred"):
            r.errors.append(b.get("error_message", "error"))
            continue
        r.label = b.get("label", r.label)
        if is_rtt(scenario):
            value = b.get("rtt_ns")
            r.count = b.get("rounds", r.count)
        else:
            ips = b.get("items_per_second")
            value = ips / 1e6 if ips is not None else None
            r.count = b.get("items", r.count)
        if value is not None:
            r.values.append(value)
            r.fills.append(b.get("fill_pct"))
    ordered = collections.OrderedDict()
    for s in sorted(results, key=scenario_key):
        rows = results[s]
        ordered[s] = collections.OrderedDict(
            (q, rows[q]) for q in sorted(rows, key=lambda q: rows[q].order))
    return data.get("context", {}), ordered


def machine(context):
    model = context.get("conq_cpu_model")
    if not model or model == "unknown":
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
            m = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
            model = m.group(1).strip() if m else "unknown CPU"
        except OSError:
            model = "unknown CPU"
    cpus = context.get("num_cpus", "?")
    return f"{model}, {cpus} CPUs"


def run_date(context):
    return str(context.get("date", "unknown date"))[:10]


def fmt(value, rtt):
    if rtt:
        if value >= 10000:
            return f"{value:,.0f}"
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def scenario_title(scenario):
    if scenario == "throughput_1p1c":
        return "Throughput, 1 producer / 1 consumer (M items/s, higher is better)"
    m = re.fullmatch(r"throughput_(\d+)p(\d+)c", scenario)
    if m:
        return (f"Throughput, {m.group(1)} producers / {m.group(2)} consumers "
                f"(M items/s, higher is better)")
    if is_rtt(scenario):
        return "Ping-pong round trip (ns, lower is better)"
    return scenario


def speedup(results, scenario, queue):
    """(counterpart, ratio) for a peer, where ratio > 1 means conqueue is faster."""
    conq = COUNTERPART.get(queue)
    rows = results[scenario]
    if conq is None or conq not in rows or not rows[conq].values or not rows[queue].values:
        return None
    a, b = rows[conq].median, rows[queue].median
    ratio = b / a if is_rtt(scenario) else a / b
    return conq, ratio


def markdown(context, results, note, command):
    lines = []
    reps = max((len(r.values) for rows in results.values() for r in rows.values()), default=0)
    lines.append(f"Machine: {machine(context)}; {context.get('conq_compiler', 'compiler unknown')}, "
                 f"build type {context.get('conq_build_type', '?')}. "
                 f"Run on {context.get('date', '?')}, {reps} repetition(s) per benchmark; "
                 f"peers: {context.get('conq_peers', '?')}.")
    if command:
        lines.append("")
        lines.append(f"Command: `{command}`")
    if note:
        lines.append("")
        lines.append(f"**{note}**")
    lines.append("")
    lines.append("Median over the repetitions, then min-max. \"vs conqueue\" is the "
                 "conqueue queue of the same kind divided by the peer: throughput ratio, or "
                 "peer RTT / conqueue RTT; above 1x conqueue is faster.")
    errors = []
    for scenario, rows in results.items():
        rtt = is_rtt(scenario)
        lines.append("")
        lines.append(f"#### {scenario_title(scenario)}")
        lines.append("")
        unit = "ns per round trip" if rtt else "M items/s"
        fills = any(f is not None for r in rows.values() for f in r.fills)
        if fills:
            lines.append(f"| queue | calls | {unit} | min-max | vs conqueue | "
                         f"each repetition: M items/s @ fill % |")
            lines.append("|---|---|---:|---:|---|---|")
        else:
            lines.append(f"| queue | calls | {unit} | min-max | vs conqueue |")
            lines.append("|---|---|---:|---:|---|")
        for queue, r in rows.items():
            for e in dict.fromkeys(r.errors):  # once per distinct message
                errors.append(f"{scenario}/{queue}: {e}")
            if not r.values:
                lines.append(f"| {queue} | {r.label} | error | | |" + (" |" if fills else ""))
                continue
            s = speedup(results, scenario, queue)
            vs = f"{s[0]} / {queue} = {s[1]:.2f}x" if s else ""
            name = f"**{queue}**" if queue.startswith("conq") else queue
            row = (f"| {name} | {r.label} | {fmt(r.median, rtt)} | "
                   f"{fmt(r.low, rtt)}-{fmt(r.high, rtt)} | {vs} |")
            if fills:
                pairs = sorted((v, f) for v, f in zip(r.values, r.fills) if f is not None)
                row += " " + ", ".join(f"{fmt(v, rtt)} @ {f:.0f}" for v, f in pairs) + " |"
            lines.append(row)
    if errors:
        lines.append("")
        lines.append("Errors reported by the run:")
        lines.append("")
        lines.extend(f"- {e}" for e in errors)
    return "\n".join(lines) + "\n", errors


def plot(context, results, png, note):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    scenarios = [s for s, rows in results.items() if any(r.values for r in rows.values())]
    if not scenarios:
        print("plot_benchmarks: nothing to plot", file=sys.stderr)
        return
    heights = [max(2.0, 0.32 * len(results[s]) + 1.0) for s in scenarios]
    fig_height = sum(heights) + 1.2
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(11, fig_height),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios):
        rtt = is_rtt(scenario)
        rows = [(q, r) for q, r in results[scenario].items() if r.values]
        names = [q for q, _ in rows]
        med = [r.median for _, r in rows]
        err = [[r.median - r.low for _, r in rows], [r.high - r.median for _, r in rows]]
        colours = [library_of(q)[1] for q in names]
        ys = list(range(len(rows)))
        bars = ax.barh(ys, med, xerr=err, color=colours, capsize=3,
                       error_kw={"elinewidth": 1, "ecolor": "black"})
        for bar, q in zip(bars, names):
            if is_blocking(q):
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        ax.set_yticks(ys)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        if rtt:
            ax.set_xscale("log")
        top = max(r.high for _, r in rows)
        for y, (_, r) in zip(ys, rows):
            x = r.high * (1.08 if rtt else 1.0) + (0 if rtt else top * 0.01)
            ax.text(x, y, fmt(r.median, rtt), va="center", fontsize=7)
        ax.set_xlim(right=top * (3.0 if rtt else 1.15))
        ax.set_title(scenario_title(scenario), fontsize=10, loc="left")
        ax.set_xlabel("ns per round trip (log scale)" if rtt else "million items per second",
                      fontsize=8)
        ax.grid(axis="x", alpha=0.3, which="both" if rtt else "major")
    handles = [Patch(color=c, label=l) for p, c, l in LIBRARY_COLOURS
               if any(library_of(q)[0] == p for rows in results.values() for q in rows)]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                         label="sleeps in the kernel when idle"))
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower right")
    title = f"conqueue rings vs peers: {machine(context)}, {run_date(context)}"
    sub = ("u64 items, capacity 65536, threads pinned; median of repetitions, bars min-max")
    if note:
        sub += f"\n{note}"
    fig.suptitle(title + "\n" + sub, fontsize=10, y=1 - 0.1 / fig_height, va="top")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def update_doc(path, block, begin=BEGIN_MARK, end_mark=END_MARK, who="plot_benchmarks"):
    """Replaces what lies between the begin and end markers of a Markdown file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(begin), text.find(end_mark)
    if start < 0 or end < start:
        raise SystemExit(f"{who}: {path} lacks the {begin} ... {end_mark} markers")
    text = text[:start + len(begin)] + "\n" + block + text[end:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="conq_ring_bench --benchmark_out JSON file")
    ap.add_argument("--png", help="write the chart here")
    ap.add_argument("--markdown", help="write the result tables here")
    ap.add_argument("--update-doc", help="replace the results block of this Markdown file")
    ap.add_argument("--note", default="", help="a line printed above the tables and in the chart")
    ap.add_argument("--command", default="", help="the command that produced the JSON")
    args = ap.parse_args()

    context, results = load(args.json)
    if not results:
        raise SystemExit(f"plot_benchmarks: no benchmark results in {args.json}")
    block, errors = markdown(context, results, args.note, args.command)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(block)
    if args.update_doc:
        update_doc(args.update_doc, block)
    if args.png:
        plot(context, results, args.png, args.note)
    if not args.markdown and not args.update_doc:
        sys.stdout.write(block)
    if errors:
        print("plot_benchmarks: the run reported errors:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
