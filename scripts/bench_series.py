"""Google Benchmark JSON as series of repetitions, for the table scripts.

scripts/bench-durable.sh, scripts/bench-ipc.sh and scripts/bench-broker.sh
read their results with this, and scripts/bench-beanstalkd.sh writes the
runs of conq_beanstalkd_load in the same layout to read them back: one
Series per benchmark (every repetition's row, any error messages,
its label, its registration order), and the formatting of a median with
its min-max spread.
"""
import collections
import json
import os
import statistics
import sys


class Series:
    def __init__(self):
        self.rows = []
        self.errors = []
        self.label = ""
        self.order = 0

    def values(self, key):
        return [r[key] for r in self.rows if key in r]


def load(json_path, who):
    """(context, OrderedDict name -> Series in registration order)."""
    if not os.path.exists(json_path) or os.path.getsize(json_path) == 0:
        sys.exit(f"{who}: no results in {json_path}")
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    series = collections.OrderedDict()
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates are recomputed from the repetitions
        name = "/".join(p for p in b.get("run_name", b["name"]).split("/")
                        if not p.startswith("iterations:") and p != "manual_time")
        s = series.setdefault(name, Series())
        s.order = b.get("family_index", s.order)
        s.label = b.get("label", s.label)
        if b.get("error_occurred"):
            s.errors.append(b.get("error_message", "error"))
        else:
            s.rows.append(b)
    # Registration order (the run order is shuffled by random interleaving).
    ordered = collections.OrderedDict(sorted(series.items(), key=lambda kv: kv[1].order))
    return data.get("context", {}), ordered


def si(v):
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def spread(vals, fmt):
    if not vals:
        return "-"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} [{fmt(min(vals))} - {fmt(max(vals))}]"


def median(s, key):
    vals = s.values(key)
    return statistics.median(vals) if vals else None
