"""Summarizes docs/reqrep-ab.sh output: per variant, the runs whose steal was at most MAX_STEAL ticks (default 30),
their median p50, median p99 and median broker CPU, and the sorted p99s.

usage: python3 docs/reqrep-summary.py OUTPUT [MAX_STEAL]
"""
import collections
import statistics
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 30
runs = collections.defaultdict(list)
skipped = collections.Counter()
for line in open(sys.argv[1]):
    fields = line.split()
    if len(fields) < 10 or not fields[1].startswith("steal="):
        continue
    if int(fields[1].split("=")[1]) > limit:
        skipped[fields[0]] += 1
        continue
    runs[fields[0]].append((float(fields[3]), float(fields[5]), float(fields[9])))
for name, values in runs.items():
    print(
        f"{name}: {len(values)} runs (steal ≤ {limit}; {skipped[name]} noisier left out), "
        f"p50 median {statistics.median(v[0] for v in values):.1f} µs, "
        f"p99 median {statistics.median(v[1] for v in values):.1f} µs, "
        f"CPU median {statistics.median(v[2] for v in values):.2f} s; "
        f"p99s {sorted(round(v[1]) for v in values)}"
    )
