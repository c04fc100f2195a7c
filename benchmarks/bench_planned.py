"""Benchmark: the in-pipeline policy's rollout budget: fixed rounds vs the budget planner.

The build's own policy samples its rollouts (`difficulty.scoring.score_with_policy`), so its
budget rule decides how many rollouts a band costs. Compared, on the same queries and seeds:

  fixed-16        16 rollouts per query, one round (`--no-adaptive --k 16`);
  rounds-16       the default: rounds of 16 up to 64 while the band is undecided;
  rounds-4        rounds of 4 up to 64;
  planned-16/-4   `--budget-rule planned`: a first round of 16 (or 4), then per query the budget
                  planner's next k (difficulty.planner), up to 64;
  planned-4+prior `--budget-rule planned --prior learned`: the same with a pass-rate prior fitted
                  on each batch's first round (difficulty.prior), batches of 256 as the build's.

Truth is approximated by a reference band from 512 rollouts per query drawn on another seed
(independent of every method's draws). Reported per input and policy: rollouts per query, the
share of rounds-16's rollouts, and band agreement with the reference; medians over --seeds seeds
with [min, max]. Inputs: the embedded default (features), the Yahoo sample's rank.train (skipped
with a note when absent), the synthetic text set.

Usage: python benchmarks/bench_planned.py [--seeds 3] [--out DIR]   (--smoke: tiny, for tests;
the Yahoo rows need ../shared)
"""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from difficulty.estimate import Budget  # noqa: E402
from difficulty.policy import PolicyScorer, PolicySpec  # noqa: E402
from difficulty.rewards import parse_reward  # noqa: E402
from difficulty.scoring import ScoringConfig, score_with_policy  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_out import add_arguments, machine, write  # noqa: E402

YAHOO = os.path.join(os.path.dirname(REPO), "shared", "data", "ltr-yahoo-sample", "rank.train")
METHODS = {
    "fixed-16": Budget(k=16, k_max=16, adaptive=False),
    "rounds-16": Budget(k=16, k_max=64),
    "rounds-4": Budget(k=4, k_max=64),
    "planned-16": Budget(k=16, k_max=64, rule="planned"),
    "planned-4": Budget(k=4, k_max=64, rule="planned"),
    "planned-4+prior": Budget(k=4, k_max=64, rule="planned", prior="learned"),
}
BASELINE = "rounds-16"
REFERENCE = Budget(k=512, k_max=512, adaptive=False)
BATCH = 256  # the build's default --batch-size: the learned prior is fitted per batch


def inputs(smoke: bool) -> dict:
    """name -> validated QUERY_SCHEMA table (the embedded default, Yahoo, synthetic text)."""
    from data_contracts.readers import read_queries
    from data_contracts.validate import ValidationState, validate_queries
    from data_contracts.synthetic import SyntheticConfig, generate_table
    from data_contracts.synthetic_text import SyntheticTextConfig, generate_text_table

    out = {"features": generate_table(SyntheticConfig(n_queries=60 if smoke else 800))}
    if os.path.exists(YAHOO):
        state = ValidationState()
        yahoo = pa.concat_tables([validate_queries(b, state)[0] for b in read_queries(YAHOO)])
        out["yahoo"] = yahoo.slice(0, 30) if smoke else yahoo
    out["text"] = generate_text_table(SyntheticTextConfig(n_queries=40 if smoke else 800))
    return out


def score(table: pa.Table, policy: str, budget: Budget, seed: int) -> tuple[np.ndarray, int]:
    """(band per query, rollouts spent), scored in batches of BATCH as the build does."""
    scorer = PolicyScorer(PolicySpec(policy))
    cfg = ScoringConfig(reward=parse_reward("ndcg@10>=0.7"), budget=budget, seed=seed)
    bands, spent = [], 0
    for start in range(0, table.num_rows, BATCH):
        scored, n = score_with_policy(table.slice(start, BATCH), scorer, cfg)
        bands += scored.column("band").to_pylist()
        spent += n
    return np.array(bands), spent


def measure(tables: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for name, table in tables.items():
        for policy in ("base", "teacher"):
            for seed in seeds:
                reference, _ = score(table, policy, REFERENCE, 10_000 + seed)
                spent = {}
                for method, budget in METHODS.items():
                    band, spent[method] = score(table, policy, budget, seed)
                    rows.append({"input": name, "policy": policy, "seed": seed,
                                 "method": method, "queries": table.num_rows,
                                 "rollouts": spent[method],
                                 "agreement": float((band == reference).mean())})
                for row in rows[-len(METHODS):]:
                    row["share"] = row["rollouts"] / spent[BASELINE]
    return rows


def _cell(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, float)
    med = float(np.median(v))
    return (f"{med:.{digits}f}" if len(v) == 1 else
            f"{med:.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]")


def table_markdown(rows: list[dict], seeds: int) -> list[str]:
    """results.md's lines (bench_out adds the machine line)."""
    lines = [f"In-pipeline budget rules ({seeds} seeds, medians [min, max]; reference: "
             f"{REFERENCE.k} rollouts per query on another seed; reward ndcg@10>=0.7, bands "
             "0.1 / 0.9 at confidence 0.9).", "",
             "| input | policy | method | rollouts / query | share of rounds-16 | "
             "agreement with reference |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["input"], r["policy"]) for r in rows}, key=lambda k: (
        ["features", "yahoo", "text"].index(k[0]), k[1]))
    for name, policy in keys:
        for method in METHODS:
            cell = [r for r in rows if (r["input"], r["policy"], r["method"])
                    == (name, policy, method)]
            per_query = [r["rollouts"] / r["queries"] for r in cell]
            lines.append(f"| {name} ({cell[0]['queries']} queries) | {policy} | {method} | "
                         f"{_cell(per_query, 1)} | {_cell([r['share'] for r in cell])} | "
                         f"{_cell([r['agreement'] for r in cell])} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    add_arguments(parser)  # --out, --smoke (tiny inputs, two seeds: the record's shape)
    args = parser.parse_args(argv)
    seeds = list(range(2 if args.smoke else args.seeds))
    facts = machine()
    rows = measure(inputs(args.smoke), seeds)
    lines = table_markdown(rows, len(seeds))
    print("\n".join(lines))
    write(args.out, "bench_planned.py", args, facts, lines, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
