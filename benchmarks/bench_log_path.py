"""Benchmark: the log path (a `--rollouts` build scoring logged LLM generations) against a raw
pyarrow + numpy script doing the same parsing and scoring, and its peak RSS at 1x and 10x.

Input (made once per size, seeded): N generations = Q queries x S samples, 20 candidates each.
  - features: Q queries x 20 documents x --features features in QUERY_SCHEMA as Parquet
    (`bench_scoring.make_data`, graded labels 0-4: the features are precomputed);
  - the rollout log: JSONL rows `{"query_id", "rollout_id", "generation"}` (the product's rollout
    log format, `--rollout-format permutation`), one row per generation, queries interleaved as
    a sampler writes them (sample s of every query, then sample s + 1). A generation is a
    RankGPT-style permutation `[3] > [1] > ... > [20]` of the prompt's candidates, drawn by a
    simulated policy (Plackett-Luce over labels x a per-query skill in [0, 2], so pass rates
    spread from 0 to 1); 3% name only 19 candidates (`missing_id`) and 1% are prose
    (`no_ranking`): both failed rollouts under `--malformed fail`.

Measured:
  1. time: `python -m pipelines.build_curriculum --input FEATURES --rollouts LOG
     --rollout-format permutation` in a fresh process (interpreter, imports and all; FnApiRunner
     in memory) against `raw_log_path` in this process: read the log with pyarrow's JSON reader,
     parse every generation under the build's rules (`generations.permutation_id_lists`: numpy
     over the UTF-8 bytes for the common shape, the scalar reader for prose;
     `check_permutations`: the malformed reasons), NDCG@10 and pass at tau 0.7 of the
     well-formed ones (`difficulty.rewards.evaluate`, vectorized over all generations),
     per-query tallies (malformed per reason too), Beta interval and band
     (`difficulty.estimate.summarize`), one Parquet write. In alternating pairs (build, raw),
     median ratio build / raw. The raw script's per-query successes and malformed counts must
     equal the build's (checked on every pair).
  2. peak RSS of the build process (its VmHWM, polled: `bench_build.child_build`) at each size;
     target: a larger run's peak within 1.3x of the smallest run's. The default sizes cover two
     shapes from 100k to 1M generations: queries fixed while the log grows (5,000 x 20 ->
     5,000 x 200, the issue's own: 800 BEIR queries, 20k -> 200k generations), and queries
     growing with the log (-> 50,000 x 20), where pass 1 also reads and pass 2 also writes 10x
     the queries' features; each larger size's ratios are reported against the smallest.
Targets (issue 28): build within 2x of the raw script; peak RSS flat (<= 1.3x) from 100k to 1M.

The machine may be shared: every ratio is taken within a pair run back to back, and results.md
records the core count and the load average before and after.

Usage:
  python benchmarks/bench_log_path.py --out runs/bench/log_path   # 100k (3 pairs); 1M twice:
      # 5,000 x 200 (the log grows, queries fixed: the issue's shape) and 50,000 x 20 (3 pairs each)
  python benchmarks/bench_log_path.py --smoke --out /tmp/lp      # tiny sizes, seconds
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.json as pj  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench_build import child_build, gib  # noqa: E402
from bench_out import add_arguments, load_now, machine, spread, write  # noqa: E402
from bench_scoring import make_data, write_parquet  # noqa: E402
from difficulty.estimate import BandConfig, summarize  # noqa: E402
from difficulty.generations import (CHECK_REASONS, check_permutations,  # noqa: E402
                                    permutation_id_lists)
from difficulty.rewards import evaluate, parse_reward  # noqa: E402

DOCS = 20  # candidates per prompt
REWARD = "ndcg@10>=0.7"
MISSING_SHARE, PROSE_SHARE = 0.03, 0.01  # malformed generations of the simulated policy
TIME_TARGET, RSS_TARGET = 2.0, 1.3


# --- input ------------------------------------------------------------------------------------
def write_log(labels: np.ndarray, query_ids: list[str], samples: int, path: str, seed: int,
              chunk: int = 2000) -> None:
    """Writes the rollout log (JSONL) of `samples` generations per query (module docstring).

    Lines are formatted by pyarrow's string kernels, `chunk` queries at a time (no row loop).
    """
    rng = np.random.default_rng(seed + 1)
    q, d = labels.shape
    skill = rng.uniform(0.0, 2.0, size=q)
    brackets = np.array([f"[{j + 1}]" for j in range(d)], dtype=object)
    with open(path, "w", encoding="ascii") as out:
        for s in range(samples):
            for start in range(0, q, chunk):
                stop = min(q, start + chunk)
                gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=(stop - start, d))))
                order = np.argsort(-(labels[start:stop] * skill[start:stop, None] + gumbel),
                                   axis=1, kind="stable")
                columns = [pa.array(brackets[order[:, j]], pa.string()) for j in range(d)]
                text = pc.binary_join_element_wise(*columns, " > ")
                missing = pc.binary_join_element_wise(*columns[:-1], " > ")
                kind = rng.uniform(size=stop - start)
                text = pc.if_else(pa.array(kind < MISSING_SHARE), missing, text)
                text = pc.if_else(pa.array(kind > 1.0 - PROSE_SHARE),
                                  pa.scalar("I cannot rank these passages."), text)
                qids = pa.array(query_ids[start:stop], pa.string())
                lines = pc.binary_join_element_wise(
                    '{"query_id": "', qids, '", "rollout_id": "', qids, f"-{s:03d}",
                    '", "generation": "', text, '"}', "")
                out.write("\n".join(lines.to_pylist()) + "\n")


def make_inputs(folder: str, queries: int, samples: int, features: int, seed: int
                ) -> tuple[str, str]:
    """(features Parquet, rollout log JSONL) of `queries` x `samples` generations."""
    data = make_data(queries, DOCS, features, seed)
    features_path = os.path.join(folder, f"queries-{queries}.parquet")
    write_parquet(data, features_path)
    log_path = os.path.join(folder, f"log-{queries}x{samples}.jsonl")
    write_log(data["labels"], data["query_ids"], samples, log_path, seed)
    return features_path, log_path


# --- the raw script ---------------------------------------------------------------------------
def raw_log_path(features_path: str, log_path: str, out_path: str, reward: str = REWARD
                 ) -> dict[str, tuple[int, int]]:
    """The log path's work in one process, with pyarrow kernels and numpy (no per-row Python
    but for the generations outside the common shape).

    Reads the queries' ids and labels and the whole log (pyarrow's JSON reader); parses every
    generation under the build's rules (`generations.permutation_id_lists`: the ids of the
    common `[k] > [j] > ...` shape from the UTF-8 bytes with numpy, the scalar reader for the
    rest, e.g. prose; `check_permutations`: the malformed reasons `parse_generation` gives); a
    malformed generation is a failed rollout (reward 0, not passed: `--malformed fail`); NDCG@10
    and pass at tau of the well-formed ones with `difficulty.rewards.evaluate`; per-query
    tallies (successes, trials, reward sums, malformed per reason) with np.bincount; Beta
    interval and band with `difficulty.estimate.summarize`; one Parquet file of query_id +
    difficulty and malformed columns. Every query lists DOCS candidates (the benchmark's input).

    Returns:
      query id -> (successes, malformed rollouts), for the check against the build.
    """
    spec = parse_reward(reward)
    queries = pq.read_table(features_path, columns=["query_id", "labels"])
    lengths = pc.list_value_length(queries.column("labels")).to_numpy(zero_copy_only=False)
    width = int(lengths.max())
    if np.any(lengths != width):
        raise ValueError("raw_log_path expects every query to list the same candidates")
    n_q = queries.num_rows
    labels = pc.list_flatten(queries.column("labels")).to_numpy(
        zero_copy_only=False).reshape(n_q, width).astype(np.float32)
    mask = np.ones((n_q, width), bool)

    log = pj.read_json(log_path)
    row_query = pc.index_in(log.column("query_id"), value_set=queries.column("query_id"))
    row_query = row_query.to_numpy(zero_copy_only=False)
    counts, ids = permutation_id_lists(log.column("generation"))
    reason, ranking = check_permutations(counts, ids, width)
    ok = np.flatnonzero(reason == 0)
    at = row_query[ok]
    rewards, passes = evaluate(spec, ranking[ok][:, None, :], labels[at], mask[at],
                               np.ones((ok.size, 1, width), bool))
    reward = np.zeros(log.num_rows)
    passed = np.zeros(log.num_rows, bool)
    reward[ok], passed[ok] = rewards[:, 0], passes[:, 0]
    tallies = [np.bincount(row_query, weights=w, minlength=n_q)
               for w in (passed.astype(float), np.ones(log.num_rows), reward, reward ** 2)]
    columns = summarize(*tallies, BandConfig())
    per_reason = {f"malformed_{name}": np.bincount(row_query[reason == code + 1],
                                                   minlength=n_q)
                  for code, name in enumerate(CHECK_REASONS)}
    malformed = np.bincount(row_query[reason > 0], minlength=n_q)
    table = pa.table({"query_id": queries.column("query_id"),
                      **{name: pa.array(value) for name, value in columns.items()},
                      "malformed_rollouts": malformed, **per_reason})
    pq.write_table(table, out_path, compression="zstd")
    return dict(zip(queries.column("query_id").to_pylist(),
                    zip(columns["successes"].astype(int).tolist(), malformed.tolist())))


def build_successes(run: str) -> dict[str, tuple[int, int]]:
    """query id -> (successes, malformed rollouts) from a build's difficulty shards."""
    table = pq.read_table(os.path.join(run, "difficulty"),
                          columns=["query_id", "successes", "malformed_rollouts"])
    return dict(zip(table.column("query_id").to_pylist(),
                    zip([int(x) for x in table.column("successes").to_pylist()],
                        table.column("malformed_rollouts").to_pylist())))


# --- measuring --------------------------------------------------------------------------------
def measure(folder: str, queries: int, samples: int, pairs: int, args) -> dict:
    """Alternating (build, raw) pairs at one size: seconds, ratios, the build's peak RSS."""
    features_path, log_path = make_inputs(folder, queries, samples, args.features, args.seed)
    child_args = SimpleNamespace(k=16, batch_size=args.batch_size, seed=args.seed)
    extra = ["--rollouts", log_path, "--rollout-format", "permutation",
             "--direct_running_mode=in_memory"]
    builds, raws, peaks = [], [], []
    for r in range(pairs):  # alternating, so a slow spell hits both alike
        run = os.path.join(folder, f"build-{queries}-{r}")
        seconds, peak = child_build(features_path, run, child_args, extra)
        builds.append(seconds)
        peaks.append(peak)
        started = time.perf_counter()
        raw = raw_log_path(features_path, log_path, os.path.join(folder, f"raw-{r}.parquet"))
        raws.append(time.perf_counter() - started)
        built = build_successes(run)
        if built != raw:
            wrong = sorted(q for q in raw if built.get(q) != raw[q])
            raise RuntimeError(f"build and raw script disagree on {len(wrong)} queries' "
                               f"successes or malformed rollouts, e.g. {wrong[:3]}")
        shutil.rmtree(run, ignore_errors=True)
    ratios = [b / r for b, r in zip(builds, raws)]
    return {"generations": queries * samples, "queries": queries, "samples": samples,
            "pairs": pairs, "build_s": builds, "raw_s": raws, "ratio": ratios,
            "peak_rss_bytes": peaks}


def render(sizes: list[dict], features: int) -> list[str]:
    """results.md's lines (bench_out adds the machine line): one row per size, medians with
    (min-max) over the pairs, then each larger size's ratios against the first size
    (`ratio_line`)."""
    lines = [
        f"Log path: `--rollouts` build vs raw pyarrow+numpy script ({DOCS} candidates per "
        f"generation, {features} features precomputed, reward {REWARD}).",
        "",
        "| generations | queries x samples | pairs | build s | raw s | build/raw | build peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        lines.append(
            f"| {size['generations']:,} | {size['queries']:,} x {size['samples']} | "
            f"{size['pairs']} | {spread(size['build_s'], '.1f')} | "
            f"{spread(size['raw_s'], '.1f')} | {spread(size['ratio'], '.2f')}x | "
            f"{gib(max(size['peak_rss_bytes']))} |")
    base = sizes[0]
    lines += ["", f"Medians (min-max) over alternating pairs. Against "
                  f"{base['generations']:,} generations ({base['queries']:,} x "
                  f"{base['samples']}), targets build/raw <= {TIME_TARGET:g}x and peak RSS "
                  f"<= {RSS_TARGET:g}x:"]
    if len(sizes) == 1:
        lines.append(f"- {base['generations']:,}: build/raw "
                     f"{float(np.median(base['ratio'])):.2f}x.")
    return lines + [ratio_line(base, size) for size in sizes[1:]]


def ratio_line(base: dict, size: dict) -> str:
    """One larger size against the smallest: its shape (queries fixed while the log grows, the
    issue's own; or queries growing with the log, where pass 1 reads and pass 2 writes that many
    more queries' features), its median build/raw and its peak RSS over the smallest's."""
    grow_q, grow_s = size["queries"] / base["queries"], size["samples"] / base["samples"]
    if grow_q == 1:
        shape = (f"queries fixed, log x{grow_s:g}, the issue's target shape; its evidence: 800 "
                 "BEIR queries, 20,000 -> 200,000 generations")
    elif grow_s == 1:
        shape = (f"queries x{grow_q:g} with the log: pass 1 reads and pass 2 writes "
                 f"{grow_q:g}x the queries' features too")
    else:
        shape = f"queries x{grow_q:g}, samples x{grow_s:g}"
    time_ratio = float(np.median(size["ratio"]))
    rss_ratio = max(size["peak_rss_bytes"]) / max(base["peak_rss_bytes"])
    return (f"- {size['generations']:,} ({shape}): build/raw {time_ratio:.2f}x "
            f"({'met' if time_ratio <= TIME_TARGET else 'NOT met'}); peak RSS "
            f"{rss_ratio:.2f}x ({'met' if rss_ratio <= RSS_TARGET else 'NOT met'}).")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5000x20,5000x200,50000x20",
                        help="comma-separated QUERIESxSAMPLES, smallest first (every ratio is "
                             "against the first); the default covers both shapes: the log "
                             "grows 10x at fixed queries, and the queries grow with it")
    parser.add_argument("--pairs", default="3,3,3",
                        help="alternating build/raw pairs per size (one number, or one per size)")
    parser.add_argument("--features", type=int, default=46)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    add_arguments(parser)  # --out, --smoke (tiny sizes 100x4, 100x16, 400x4; 2 pairs each, as the records have spreads)
    parser.add_argument("--workdir", default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.sizes, args.pairs, args.features = "100x4,100x16,400x4", "2,2,2", 8  # both shapes
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.sizes.split(",")]
    pairs = [int(p) for p in args.pairs.split(",")]
    pairs = pairs * len(sizes) if len(pairs) == 1 else pairs
    if len(pairs) != len(sizes) or len(sizes) < 2:
        print("error: --sizes needs two sizes or more and --pairs one count or one per size",
              file=sys.stderr)
        return 2
    facts = machine()
    print(f"log path: sizes {args.sizes}, pairs {args.pairs}; {facts['cores']} cores, load "
          f"{facts['load_average'][:1]}")
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="bench_log_path-", dir=args.workdir)
    results = []
    try:
        for (queries, samples), n in zip(sizes, pairs):
            size = measure(workdir, queries, samples, n, args)
            results.append(size)
            print(f"{size['generations']:,} generations ({queries} x {samples}): build "
                  f"{spread(size['build_s'], '.1f')}s, raw {spread(size['raw_s'], '.1f')}s, "
                  f"ratio build/raw {spread(size['ratio'], '.2f')}x, peak RSS "
                  f"{gib(max(size['peak_rss_bytes']))}", flush=True)
            if len(results) < len(sizes):  # what is measured so far, should a later size fail
                write(args.out, "bench_log_path.py", args, facts, render(results, args.features),
                      {"sizes": results, "load_after": load_now()})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = render(results, args.features)
    print("\n".join(lines))
    write(args.out, "bench_log_path.py", args, facts, lines,
          {"sizes": results, "load_after": load_now()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
