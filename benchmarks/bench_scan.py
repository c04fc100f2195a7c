"""Benchmark: the SVMlight feature-space scan (`scan_svmlight`: numpy over ASCII blocks) against
the per-line rule it replaced (decode each line, `_FID` regex on the part before `#`), on the
same file in this process.

Usage:
  python benchmarks/bench_scan.py                      # 1,000 queries x 100 docs x 136 features
  python benchmarks/bench_scan.py --queries 200 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402

from bench_build import write_svmlight  # noqa: E402
from bench_scoring import make_data  # noqa: E402
from data_contracts import fs  # noqa: E402
from data_contracts.readers import svmlight_scan  # noqa: E402
from data_contracts.readers.space import SpaceStats  # noqa: E402


def per_line_scan(path: str, max_feature_id: int) -> tuple:
    """The rule line by line over the whole file (what `scan_svmlight` did before)."""
    stats = SpaceStats()
    with fs.open_input(path) as stream:
        data = stream.read()
    return svmlight_scan._line_ids(data, 0, max_feature_id, stats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--features", type=int, default=136)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="bench_scan-")
    try:
        path = os.path.join(folder, "rank.txt")
        write_svmlight(make_data(args.queries, args.docs, args.features, 0), path)
        size = os.path.getsize(path)
        fast, slow = [], []
        for _ in range(args.repeats):  # alternating
            started = time.perf_counter()
            stats = svmlight_scan.scan_svmlight(path, 100_000)
            fast.append(time.perf_counter() - started)
            started = time.perf_counter()
            reference = per_line_scan(path, 100_000)
            slow.append(time.perf_counter() - started)
        assert (stats.low, stats.high) == reference, (stats.low, stats.high, reference)
        f, s = float(np.median(fast)), float(np.median(slow))
        print(f"scan of {size / 1e6:.0f} MB SVMlight ({args.queries} x {args.docs} x "
              f"{args.features}; {os.cpu_count()} cores): vectorized {f:.2f}s "
              f"({size / f / 1e6:.0f} MB/s), per-line rule {s:.2f}s ({size / s / 1e6:.0f} MB/s); "
              f"ratio {s / f:.1f}x (medians of {args.repeats})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
