"""Benchmark: the policy's inference scores one batch at a time against a few queries at a time.

`difficulty.policy.score_in_chunks` runs the model on `SCORE_CHUNK_VALUES` feature values
(about 1 MiB of float32) per call, so every intermediate [B, D, F] tensor of the forward pass
stays in a core's L2 cache; the baseline is one `model(features, mask)` call per batch, what
`PolicyScorer.scores` did before. Both run in this process, alternating, on one torch thread (as
a pipeline worker does), on the same random batch; the script also checks that both give the
same scores to float32 rounding.

Usage:
  python benchmarks/bench_forward.py                      # 256 queries x 100 docs x 136 features
  python benchmarks/bench_forward.py --docs 300 --repeat 9
  python benchmarks/bench_forward.py --out runs/bench/forward   # + results.md / results.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import bench_out  # noqa: E402
from difficulty.policy import SCORE_CHUNK_VALUES, base_policy, score_in_chunks  # noqa: E402


def one_call(model, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(features), torch.from_numpy(mask)).numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--features", type=int, default=136)
    parser.add_argument("--repeat", type=int, default=7)
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.queries, args.docs, args.features, args.repeat = 16, 20, 8, 2
    facts = bench_out.machine()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((args.queries, args.docs, args.features), dtype=np.float32)
    mask = np.arange(args.docs)[None, :] < rng.integers(1, args.docs + 1, args.queries)[:, None]
    model = base_policy(args.features, seed=0).eval()
    whole = one_call(model, features, mask)
    chunked = score_in_chunks(model, features, mask)
    np.testing.assert_allclose(chunked[mask], whole[mask], rtol=1e-5, atol=1e-6)
    times: dict[str, list[float]] = {"one call": [], "chunked": []}
    for _ in range(args.repeat):
        for name, fn in (("one call", one_call), ("chunked", score_in_chunks)):
            began = time.perf_counter()
            fn(model, features, mask)
            times[name].append(time.perf_counter() - began)
    base, new = (float(np.median(times[n])) for n in ("one call", "chunked"))
    ratios = [a / b for a, b in zip(times["one call"], times["chunked"])]
    step = max(1, SCORE_CHUNK_VALUES // (args.docs * args.features))
    print(f"forward, {args.queries} x {args.docs} x {args.features}, 1 torch thread, medians of "
          f"{args.repeat} ({os.cpu_count()} cores): one call {base * 1e3:.1f} ms, chunked "
          f"({step} queries a call) {new * 1e3:.1f} ms: {base / new:.2f}x")
    shape = f"{args.queries} queries x {args.docs} documents x {args.features} features"
    bench_out.write(args.out, "bench_forward.py", args, facts, [
        f"Policy forward pass over {shape}, one torch thread, {args.repeat} alternating pairs:",
        "",
        *bench_out.table(["scoring", "median ms", "range ms"], [
            ["one call per batch", f"{base * 1e3:.1f}",
             f"{min(times['one call']) * 1e3:.1f}..{max(times['one call']) * 1e3:.1f}"],
            [f"{step} queries a call", f"{new * 1e3:.1f}",
             f"{min(times['chunked']) * 1e3:.1f}..{max(times['chunked']) * 1e3:.1f}"]]),
        "",
        f"Speed-up {float(np.median(ratios)):.2f}x (median of the pairs' ratios; range "
        f"{min(ratios):.2f}x..{max(ratios):.2f}x).",
    ], {"shape": [args.queries, args.docs, args.features], "queries_per_call": step,
        "seconds": times, "pair_ratios": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
