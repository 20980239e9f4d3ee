#!/usr/bin/python3
"""Draws bench/flows.png from bench/results/memif-fnat-flows.csv (written by bench/memif.sh):
lbd's full-NAT capacity in Mpps (what its busy cycles per packet allow one core) and the
cycles per packet, against the number of concurrent flows, with the perf.md bar.

    /usr/bin/python3 bench/plot.py      (Debian's python3-matplotlib: scripts/install-deps.sh --bench)
"""

import csv
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = pathlib.Path(__file__).resolve().parent
src = here / "results" / "memif-fnat-flows.csv"
out = here / "flows.png"

rows = list(csv.DictReader(src.open()))
if not rows:
    sys.exit(f"{src}: no rows (run bench/memif.sh first)")
flows = [int(r["flows"]) for r in rows]
capacity = [float(r["capacity_mpps"]) for r in rows]
forwarded = [float(r["forwarded_mpps"]) for r in rows]
cycles = [float(r["cycles_per_packet"]) for r in rows]

fig, left = plt.subplots(figsize=(8, 4.5))
left.set_xscale("log")
left.plot(flows, capacity, "o-", color="tab:blue", label="capacity (TSC Hz / busy cycles per packet)")
left.plot(flows, forwarded, "s--", color="tab:cyan", label="forwarded (generator-limited when below)")
left.axhline(10, color="tab:red", linestyle=":", label="bar: 10 Mpps per core at 1M flows")
left.set_xlabel("concurrent flows (TCP, full-NAT, 64 B)")
left.set_ylabel("Mpps, one worker core")
left.set_ylim(bottom=0)
right = left.twinx()
right.plot(flows, cycles, "^-", color="tab:orange", label="cycles per packet")
right.set_ylabel("busy cycles per packet")
right.set_ylim(bottom=0)
lines = left.get_legend_handles_labels()
more = right.get_legend_handles_labels()
left.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize=8)
left.set_title("lbd over net_memif (bench/memif.sh): one worker, full-NAT, against flows")
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
