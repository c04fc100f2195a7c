"""Cost of verifying a run's hashes: sha256 throughput of `data_contracts.fs.sha256` on this
machine, extrapolated to a 1 GB run (what `load_manifest` and the inspector do by default).

  python benchmarks/bench_verify.py [--mib 256] [--repeats 3] [--out runs/bench/verify]

Writes one file of random bytes into a temporary folder, reads it once (so the page cache holds
it, as it does right after a build), then times `fs.sha256` over it `--repeats` times (median)
and, as the baseline, `hashlib.sha256` over the same bytes already in memory. A cold read from
disk adds the disk's read time on top; that is not measured here.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_out  # noqa: E402
from data_contracts import fs  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB (default: 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (default: 3)")
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.mib, args.repeats = 4, 2
    facts = bench_out.machine()
    data = os.urandom(args.mib << 20)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "shard.bin")
        fs.write_bytes(path, data)
        fs.sha256(path)  # warm the page cache
        file_times, memory_times = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            fs.sha256(path)
            file_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            hashlib.sha256(data).hexdigest()
            memory_times.append(time.perf_counter() - started)
    size_gb = len(data) / 1e9
    file_s, memory_s = statistics.median(file_times), statistics.median(memory_times)
    print(f"fs.sha256 of {args.mib} MiB (page cache): {file_s:.3f} s median of {args.repeats} "
          f"= {size_gb / file_s * 1000:.0f} MB/s; hashlib over memory: {memory_s:.3f} s "
          f"= {size_gb / memory_s * 1000:.0f} MB/s (ratio {file_s / memory_s:.2f}x)")
    print(f"extrapolated to a 1 GB run: {file_s / size_gb:.2f} s of hashing on one core")

    def row(name: str, times: list[float]) -> list[str]:
        return [name, f"{statistics.median(times):.3f}", f"{min(times):.3f}..{max(times):.3f}",
                f"{size_gb / statistics.median(times) * 1000:.0f}"]

    bench_out.write(args.out, "bench_verify.py", args, facts, [
        f"sha256 of one {args.mib} MiB file, {args.repeats} alternating runs:",
        "",
        *bench_out.table(["hashing", "median s", "range s", "MB/s"], [
            row("`fs.sha256` of the file (page cache)", file_times),
            row("`hashlib.sha256` of the bytes in memory", memory_times)]),
        "",
        f"Extrapolated to a 1 GB run: {file_s / size_gb:.2f} s of hashing on one core.",
    ], {"bytes": len(data), "file_seconds": file_times, "memory_seconds": memory_times})
    return 0


if __name__ == "__main__":
    sys.exit(main())
