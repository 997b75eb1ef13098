#!/usr/bin/env python3
"""The measured TT planner's guarantee, from criterion's medians.

Run `cargo bench --bench tt_contraction -- plans_` first. For every bench shape (case, bond,
rows) this prints the measured planner's forward time, the dense `Linear`'s, the best other
plan's and the ratio of the measured one to the cheaper of those two; the guarantee is a
ratio of at most 1.10. Exits 1 if any shape breaks it.

Usage: python3 tools/plan_guarantee.py [target/criterion]
"""
import json
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def median(path):
    with open(os.path.join(path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"] / 1e3  # µs


rows_out = []
for group in sorted(os.listdir(root)):
    if not group.startswith("plans_"):
        continue
    gdir = os.path.join(root, group)
    times = {}  # (bench, rows) -> µs
    for bench in os.listdir(gdir):
        bdir = os.path.join(gdir, bench)
        if not os.path.isdir(bdir) or bench == "report":
            continue
        for rows in os.listdir(bdir):
            if rows.isdigit() and os.path.exists(os.path.join(bdir, rows, "new")):
                times[(bench, int(rows))] = median(os.path.join(bdir, rows))
    bonds = sorted({int(m.group(1)) for (b, _) in times for m in [re.match(r"r(\d+)_", b)] if m})
    for rows in sorted({r for (_, r) in times}):
        dense = times.get(("dense", rows))
        for bond in bonds:
            measured = times.get((f"r{bond}_measured", rows))
            plans = {b: t for (b, r), t in times.items()
                     if r == rows and b.startswith(f"r{bond}_") and b != f"r{bond}_measured"}
            if measured is None or not plans or dense is None:
                continue
            best_name, best = min(plans.items(), key=lambda kv: kv[1])
            ref = min(dense, best)
            rows_out.append((group[6:], bond, rows, measured, dense, best_name[len(f"r{bond}_"):],
                             best, len(plans), measured / ref))

print(f"{'case':10s} {'bond':>4s} {'rows':>5s} {'measured':>10s} {'dense':>10s} "
      f"{'best plan (of n)':>26s} {'best':>10s} {'ratio':>6s}")
worst = 0.0
for case, bond, rows, m, d, bn, b, n, ratio in rows_out:
    worst = max(worst, ratio)
    print(f"{case:10s} {bond:4d} {rows:5d} {m:9.2f}µ {d:9.2f}µ {bn + f' ({n})':>26s} {b:9.2f}µ "
          f"{ratio:6.3f}")
print(f"worst ratio {worst:.3f} over {len(rows_out)} shapes (guarantee: ≤ 1.10)")
sys.exit(0 if rows_out and worst <= 1.10 else 1)
