#!/usr/bin/env python3
# scripts/cpu_breakdown_summary.py OUTDIR: one line per run of scripts/cpu_breakdown.sh (its
# OUTDIR/NN-BIN.json files), in run order: the relay binary, the cluster's CPU per row of each
# side and the per-round ratio gre/peer, the CPU per row by process (ms, median over rounds),
# end to end p50 / p99 of the gre rounds, and the load average before and after.
# Issue 12, part 4 (docs/performance.md, "Issue 12, part 4: where the cluster's CPU goes").
import glob
import json
import os
import statistics
import sys

SHOWN = ["writers", "relay_pool", "relay_listen", "tool_listen", "tool_read_back"]


def f(x, d=3):
    return "n/a" if x is None else f"{x:.{d}f}"


for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    try:
        j = json.load(open(path))
    except (OSError, ValueError):
        print(f"{os.path.basename(path)}: no JSON")
        continue
    m = j["medians"]["pg_cpu_ms_per_row"]
    name = os.path.basename(path)[:-5]
    line = [f"{name:<22}", f"cpu/row peer {f(m['peer'])} gre {f(m['gre'])} ratio/round {f(m['ratio_per_round_median'], 2)}"]
    if "peer_hint" in m:
        line.append(
            f"peer_hint {f(m['peer_hint'])} hint/peer {f(m['peer_hint_over_peer_per_round_median'], 2)}"
            f" gre/hint {f(m['gre_over_peer_hint_per_round_median'], 2)}"
        )
    print("  ".join(line))
    for side, parts in j.get("pg_cpu_ms_per_row_by_process", {}).items():
        shown = ", ".join(f"{k} {parts.get(k, 0):.3f}" for k in SHOWN if parts.get(k, 0) >= 0.0005)
        rest = sum(v for k, v in parts.items() if k not in SHOWN)
        print(f"    {side:<9} {shown}, rest {rest:.3f}")
    e2e = j.get("e2e", [])
    if e2e:
        p50 = statistics.median(r["e2e"].get("p50_ms", 0) for r in e2e)
        p99 = statistics.median(r["e2e"].get("p99_ms", 0) for r in e2e)
        lost = sum(r["lost"] for r in e2e)
        print(f"    e2e p50 {f(p50)} p99 {f(p99)} ms, lost {lost}; rows/s gre {f(j['medians']['rows_per_s']['gre'], 0)} peer {f(j['medians']['rows_per_s']['peer'], 0)}; load {j['load_average']}")
