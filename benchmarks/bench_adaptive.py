"""Benchmark: rollouts spent by adaptive sampling versus a fixed k, for the same band decisions.

Two settings, each run with the adaptive budget (rounds of --k up to --k-max, a query stops once
its band is decided) and with a fixed k = --k-max:

  (a) simulation: true pass rates drawn from the prior (uniform), Bernoulli outcomes;
      reports rollouts per query, how often the two budgets give the same band, and each one's
      error rate against the known true band among decided queries;
  (b) the real scorer on the embedded default input (`difficulty.scoring.score_with_policy`,
      base and teacher policies): rollouts spent and band agreement.

Usage: python benchmarks/bench_adaptive.py [--queries 20000] [--k 16] [--k-max 64]
         [--out runs/bench/adaptive]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import bench_out  # noqa: E402
from data_contracts.synthetic import SyntheticConfig, generate_table  # noqa: E402
from difficulty.estimate import BandConfig, Budget, band_of_rate, decide  # noqa: E402
from difficulty.policy import PolicyScorer, PolicySpec  # noqa: E402
from difficulty.rewards import parse_reward  # noqa: E402
from difficulty.scoring import ScoringConfig, score_with_policy  # noqa: E402


def simulate(n: int, budget: Budget, cfg: BandConfig, seed: int) -> dict:
    """Adaptive rounds over Bernoulli(p) outcomes; returns decisions and rollouts spent."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    outcomes = rng.uniform(size=(n, budget.k_max)) < p[:, None]  # the same draws for both
    successes = np.zeros(n)
    trials = np.zeros(n)
    open_rows = np.arange(n)
    for size in budget.round_sizes():
        if open_rows.size == 0:
            break
        start = trials[open_rows].astype(int)
        for j, row in enumerate(open_rows):
            successes[row] += outcomes[row, start[j]:start[j] + size].sum()
        trials[open_rows] += size
        if not budget.adaptive:
            continue
        _, _, decided = decide(successes[open_rows], trials[open_rows], cfg)
        open_rows = open_rows[~decided]
    band, _, decided = decide(successes, trials, cfg)
    return {"band": band, "decided": decided, "trials": trials, "truth": band_of_rate(p, cfg)}


def report(name: str, adaptive: dict, fixed: dict, truth: np.ndarray | None) -> dict:
    """Prints one line comparing the two budgets and returns its numbers."""
    same = float((adaptive["band"] == fixed["band"]).mean())
    spent_a, spent_f = adaptive["trials"].sum(), fixed["trials"].sum()
    n = len(adaptive["trials"])
    line = (f"{name}: rollouts/query adaptive {spent_a / n:.1f} vs fixed {spent_f / n:.1f} "
            f"({100 * (1 - spent_a / spent_f):.1f}% fewer); "
            f"same band {100 * same:.1f}%")
    numbers = {"setting": name, "adaptive_per_query": spent_a / n, "fixed_per_query": spent_f / n,
               "same_band": same}
    if truth is not None:
        for label, res in (("adaptive", adaptive), ("fixed", fixed)):
            d = res["decided"]
            wrong = float((res["band"][d] != truth[d]).mean()) if d.any() else 0.0
            line += f"; {label}: decided {100 * d.mean():.1f}%, wrong among decided {wrong:.4f}"
            numbers[f"{label}_decided"] = float(d.mean())
            numbers[f"{label}_wrong_among_decided"] = wrong
    print(line)
    return numbers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--k-max", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-queries", type=int, default=SyntheticConfig().n_queries,
                        help="queries of the embedded default input scored in (b)")
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.queries, args.default_queries = 300, 40
    facts = bench_out.machine()
    cfg = BandConfig()
    adaptive = Budget(k=args.k, k_max=args.k_max, adaptive=True)
    fixed = Budget(k=args.k_max, k_max=args.k_max, adaptive=False)
    print(f"cores {os.cpu_count()}, bands: {cfg.rule()}, k={args.k}..{args.k_max}")

    started = time.time()
    a = simulate(args.queries, adaptive, cfg, args.seed)
    f = simulate(args.queries, fixed, cfg, args.seed)
    rows = [report(f"simulation ({args.queries} queries, p ~ U(0,1))", a, f, a["truth"])]

    table = generate_table(SyntheticConfig(n_queries=args.default_queries))
    reward = parse_reward("ndcg@10>=0.7")
    for policy in ("base", "teacher"):
        results = {}
        for label, budget in (("adaptive", adaptive), ("fixed", fixed)):
            scored, spent = score_with_policy(table, PolicyScorer(PolicySpec(policy)),
                                              ScoringConfig(reward=reward, budget=budget))
            results[label] = {"band": np.array(scored.column("band").to_pylist()),
                              "decided": scored.column("decided").to_numpy(zero_copy_only=False),
                              "trials": scored.column("trials").to_numpy().astype(float)}
        rows.append(report(f"embedded default, {policy} policy ({table.num_rows} queries)",
                           results["adaptive"], results["fixed"], None))
    print(f"({time.time() - started:.1f}s)")

    def pct(row, key):
        return f"{100 * row[key]:.1f}%" if key in row else "-"

    bench_out.write(args.out, "bench_adaptive.py", args, facts, [
        f"Rollouts per query, adaptive rounds of {args.k} up to {args.k_max} against a fixed "
        f"k={args.k_max} ({cfg.rule()}):",
        "",
        *bench_out.table(["setting", "adaptive", "fixed", "same band", "decided (adaptive)",
                          "wrong among decided (adaptive / fixed)"],
                         [[r["setting"], f"{r['adaptive_per_query']:.1f}",
                           f"{r['fixed_per_query']:.1f}", pct(r, "same_band"),
                           pct(r, "adaptive_decided"),
                           (f"{r['adaptive_wrong_among_decided']:.4f} / "
                            f"{r['fixed_wrong_among_decided']:.4f}")
                           if "adaptive_wrong_among_decided" in r else "-"] for r in rows]),
    ], {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
