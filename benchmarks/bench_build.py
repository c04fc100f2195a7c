"""Benchmark: the whole build_curriculum against a raw pyarrow + torch script, memory at 1x and
10x the input, and 2 workers against 1.

Generates synthetic reranking data (queries x documents x features, graded labels 0-4) as
Parquet in QUERY_SCHEMA (`bench_scoring.make_data`), then measures:

  1. time: `pipelines.build_curriculum.run` (read, validate, score with the base policy at k,
     route, diversify, stage, write every shard; both passes; FnApiRunner in memory) against
     `raw_build`, the same work with the same plain functions (pyarrow reads, torch scores,
     numpy routes), everything held in memory, no Beam. Both in this process. Target: the build
     within 2.5x of the raw script. In --repeat alternating pairs (median ratio).
  2. peak RSS of a fresh build process on the input and on --scale x as many queries (same
     shape), from the child's VmHWM. Target: the larger run's peak within 1.5x of the smaller's.
  3. wall time of a build with --direct_num_workers 2 against 1 (multi_processing, one worker
     per core at most), in --repeat alternating pairs (median ratio), each split into its parts
     (start-up, scan, pass 1, between the passes, pass 2, merge, finish) by
     `benchmarks/stage_times.py`. Target: at least 1.6x faster with two.

Numbers from a shared or small machine are rough: the script prints the core count and load
(here the same CPU-bound loop has been seen to take 2.2 s and, an hour later, 4.3 s: compare
only numbers taken in alternation).

Usage:
  python benchmarks/bench_build.py                                  # 20,000 x 100 x 136, k=16
  python benchmarks/bench_build.py --queries 200 --docs 20 --features 16 --scale 3   # smoke
  python benchmarks/bench_build.py --only time|rss|workers
  python benchmarks/bench_build.py --format svmlight --only workers   # LETOR text input
  python benchmarks/bench_build.py --only time --out runs/bench/build-time   # + results.md/.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import bench_out  # noqa: E402
from bench_scoring import make_data, write_parquet  # noqa: E402
from curricula import diversity as div  # noqa: E402
from curricula import ordering  # noqa: E402
from curricula.hashing import shard_of, stable_hash  # noqa: E402
from curricula.routing import route  # noqa: E402
from data_contracts.arrays import pad_queries  # noqa: E402
from data_contracts.readers import read_queries  # noqa: E402
from data_contracts.schema import DIFFICULTY_SCHEMA, conform  # noqa: E402
from data_contracts.validate import ValidationState, validate_queries  # noqa: E402
from difficulty.policy import PolicyScorer  # noqa: E402
from difficulty.scoring import score_with_policy  # noqa: E402
from pipelines.build_curriculum import run  # noqa: E402
from pipelines.config import CurriculumConfig  # noqa: E402


def raw_build(path: str, config: CurriculumConfig, out: str) -> dict:
    """The build's work without Beam: read, validate, score, route, diversify, stage, write.

    Holds everything in memory (the raw script's advantage); writes one Parquet file per phase
    and shard with pyarrow. Returns the fate counts.
    """
    scorer = PolicyScorer(config.policy_spec())
    state = ValidationState(label_min=config.label_min, label_max=config.label_max,
                            require_labels=True)
    scored = []
    for batch in read_queries(path, batch_size=config.batch_size):
        ok, _ = validate_queries(batch, state)
        table, _ = score_with_policy(ok, scorer, config.scoring())
        scored.append(table)
    scored = pa.concat_tables(scored)
    routed = route(scored, dataclasses.replace(config.routing, teacher_mode=config.teacher))
    imitation = routed.imitation
    kept = imitation
    if imitation.num_rows:
        desc, signatures = div.descriptors(pad_queries(imitation), routed.imitation_teacher,
                                           config.diversity.max_dims)
        qids = imitation.column("query_id").to_pylist()
        order = np.argsort([stable_hash(q, f"{config.seed}:fit") for q in qids], kind="stable")
        centers = div.fit_centers(desc[order[:config.diversity.fit_sample]],
                                  config.diversity.n_clusters, config.seed)
        clusters = div.assign(desc, centers)
        counts = np.bincount(clusters, minlength=len(centers))
        keep = div.select(qids, clusters, div.keep_probabilities(counts, config.diversity),
                          config.seed)
        kept = (imitation.append_column("diversity_cluster", pa.array(clusters, pa.int32()))
                .append_column("signature", pa.array(signatures))
                .append_column("weight", pa.array(routed.imitation_weight))
                .filter(pa.array(keep)))
    rl = routed.rl
    keys = ordering.order_keys(rl.column("pass_rate").to_numpy(), config.order)
    stages = ordering.assign_stages(keys, ordering.stage_table(ordering.key_histogram(keys),
                                                               config.order.stages))
    copies = ordering.replay_copies(rl.column("query_id").to_pylist(), stages, config.order,
                                    config.seed)
    rows = np.concatenate([np.arange(rl.num_rows), [r for r, _ in copies]]).astype(int)
    rl = (rl.take(pa.array(rows))
          .append_column("stage", pa.array(np.concatenate([stages, [s for _, s in copies]])
                                           .astype(np.int32)))
          .append_column("order_key", pa.array(keys[rows])))
    phases = {"difficulty": conform(scored, DIFFICULTY_SCHEMA), "imitation": kept, "rl": rl,
              "dropped": routed.dropped}
    for phase, table in phases.items():
        shard = shard_of(table.column("query_id").to_pylist(), config.shards)
        for s in range(config.shards):
            part = table.filter(pa.array(shard == s)).sort_by("query_id")
            os.makedirs(os.path.join(out, phase), exist_ok=True)
            pq.write_table(part, os.path.join(out, phase, f"part-{s:05d}.parquet"),
                           compression="zstd")
    return {"scored": scored.num_rows, "imitation": kept.num_rows, "rl": len(stages),
            "dropped": routed.dropped.num_rows + imitation.num_rows - kept.num_rows}


def _config(path: str, out: str, args) -> CurriculumConfig:
    return CurriculumConfig(inputs=[path], out=out, k=args.k, k_max=args.k, adaptive=False,
                            batch_size=args.batch_size, seed=args.seed)


def _hwm(pid: int) -> int:
    """VmHWM (peak RSS of the process's current image) in bytes, or 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def child_build(path: str, out: str, args, beam_args: list[str], parts: dict | None = None
                ) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of a build in a fresh process.

    The peak is the child's VmHWM, polled until it exits (monotonic, so the last reading is the
    peak but for the final 20 ms). Not ru_maxrss: Linux folds the RSS a forked child inherited
    from this (large) process into it at exec.

    Args:
      parts: when given, the child runs under `stage_times.py` and this dict receives its
        seconds per part of the build (start, scan, pass1, between, pass2, merge, finish).
    """
    entry = ([os.path.join(REPO, "benchmarks", "stage_times.py")] if parts is not None
             else ["-m", "pipelines.build_curriculum"])
    command = [sys.executable, *entry, "--input", path, "--out", out,
               "--k", str(args.k), "--k-max", str(args.k), "--no-adaptive", "--batch-size",
               str(args.batch_size), "--seed", str(args.seed), *beam_args]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _hwm(proc.pid))
        time.sleep(0.02)
    seconds = time.monotonic() - started
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"build failed ({proc.returncode}): {err[-1500:]}")
    if parts is not None:
        parts.update(json.loads(err.strip().splitlines()[-1]))
    return seconds, peak or usage.ru_maxrss * 1024


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB"


def make_input(folder: str, queries: int, args) -> str:
    data = make_data(queries, args.docs, args.features, args.seed)
    if args.format == "svmlight":
        path = os.path.join(folder, f"queries-{queries}.txt")
        write_svmlight(data, path)
    else:
        path = os.path.join(folder, f"queries-{queries}.parquet")
        write_parquet(data, path)
    return path


def write_svmlight(data: dict, path: str, chunk: int = 128) -> None:
    """Writes the data as LETOR/SVMlight text (`label qid:N 1:v ... F:v`, MSLR-WEB30K's layout),
    values to 3 decimals; lines are formatted by pyarrow's string kernels, `chunk` queries at a
    time."""
    import pyarrow.compute as pc

    features, labels = data["features"], data["labels"]
    q, d, f = features.shape
    with open(path, "w", encoding="ascii") as out:
        for start in range(0, q, chunk):
            stop = min(q, start + chunk)
            values = np.round(features[start:stop].reshape(-1, f), 3)
            columns = [pc.cast(pa.array(labels[start:stop].reshape(-1).astype(np.int64)),
                               pa.string()),
                       pc.binary_join_element_wise(
                           "qid:", pc.cast(pa.array(np.repeat(np.arange(start, stop), d)),
                                           pa.string()), "")]
            for j in range(f):
                columns.append(pc.binary_join_element_wise(
                    f"{j + 1}:", pc.cast(pa.array(values[:, j]), pa.string()), ""))
            lines = pc.binary_join_element_wise(*columns, " ")
            out.write("\n".join(lines.to_pylist()) + "\n")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--features", type=int, default=136)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=10, help="queries x this for the RSS run")
    parser.add_argument("--rss-base", type=int, default=None,
                        help="queries of the smaller RSS run (default: --queries)")
    parser.add_argument("--worker-queries", type=int, default=None,
                        help="queries of the 1-vs-2-workers runs (default: --queries)")
    parser.add_argument("--format", choices=("parquet", "svmlight"), default="parquet",
                        help="the input's layout: canonical Parquet (row-group splits) or "
                             "LETOR/SVMlight text (byte-range splits, parsed line by line)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternating build/raw and 1-worker/2-worker pairs (medians are "
                             "quoted)")
    parser.add_argument("--only", choices=("time", "rss", "workers"), action="append")
    parser.add_argument("--workdir", default=None)
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.queries, args.docs, args.features, args.scale, args.repeat = 60, 8, 6, 2, 1
        args.rss_base = args.worker_queries = None
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = set(args.only or ("time", "rss", "workers"))
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="bench_build-", dir=args.workdir)
    facts = bench_out.machine()
    markdown: list[str] = [f"`build_curriculum` on synthetic {args.format} input ("
                           f"documents x features {args.docs} x {args.features}, k={args.k}, "
                           f"batch {args.batch_size}):"]
    raw_numbers: dict = {}
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"data ({args.format}): {args.queries} queries x {args.docs} docs x {args.features} "
          f"features, k={args.k} (fixed), batch {args.batch_size}; {cores} cores, load {load:.1f} "
          "(a shared machine makes every number rough)")
    try:
        inputs: dict[int, str] = {}

        def input_of(n: int) -> str:
            if n not in inputs:
                inputs[n] = make_input(workdir, n, args)
            return inputs[n]

        if "time" in parts:
            path = input_of(args.queries)
            builds, raws, ratios = [], [], []
            for r in range(args.repeat):  # alternating, so a slow spell hits both alike
                config = _config(path, os.path.join(workdir, f"run-build-{r}"), args)
                started = time.perf_counter()
                result = run(config, ["--direct_running_mode=in_memory"])
                builds.append(time.perf_counter() - started)
                started = time.perf_counter()
                raw = raw_build(path, config, os.path.join(workdir, f"run-raw-{r}"))
                raws.append(time.perf_counter() - started)
                ratios.append(builds[-1] / raws[-1])
                shutil.rmtree(os.path.join(workdir, f"run-build-{r}"), ignore_errors=True)
                shutil.rmtree(os.path.join(workdir, f"run-raw-{r}"), ignore_errors=True)
            build_s, raw_s, ratio = (float(np.median(builds)), float(np.median(raws)),
                                     float(np.median(ratios)))
            counts = result.manifest["counts"]
            print(f"build: {build_s:.1f}s; raw pyarrow+torch script: {raw_s:.1f}s (medians of "
                  f"{args.repeat} alternating pairs); ratio build/raw median {ratio:.2f}x, "
                  f"range {min(ratios):.2f}-{max(ratios):.2f}x (target <= 2.5x: "
                  f"{'met' if ratio <= 2.5 else 'NOT met'})")
            print(f"  fates build: imitation {counts['imitation']}, rl {counts['rl']}, dropped "
                  f"{counts['dropped']}; raw: {raw}")
            markdown += ["", f"Whole build against the raw in-memory script, {args.queries} "
                         f"queries, {args.repeat} alternating pairs:", "", *bench_out.table(
                             ["run", "median s", "range s"],
                             [["`build_curriculum` (both passes, FnApiRunner)", f"{build_s:.1f}",
                               f"{min(builds):.1f}..{max(builds):.1f}"],
                              ["`raw_build` (same functions, in memory, no Beam)", f"{raw_s:.1f}",
                               f"{min(raws):.1f}..{max(raws):.1f}"]]),
                         "", f"Ratio build/raw {ratio:.2f}x (pairs {min(ratios):.2f}x.."
                         f"{max(ratios):.2f}x; target at most 2.5x: "
                         f"{'met' if ratio <= 2.5 else 'not met'})."]
            raw_numbers["time"] = {"queries": args.queries, "build_seconds": builds,
                                   "raw_seconds": raws, "ratios": ratios}
        if "rss" in parts:
            small_n = args.rss_base or args.queries
            large_n = small_n * args.scale
            small_s, small = child_build(input_of(small_n), os.path.join(workdir, "rss-1"),
                                         args, ["--direct_running_mode=in_memory"])
            large_s, large = child_build(input_of(large_n), os.path.join(workdir, "rss-n"),
                                         args, ["--direct_running_mode=in_memory"])
            print(f"peak RSS: {small_n} queries {gib(small)} ({small_s:.0f}s), {large_n} queries "
                  f"{gib(large)} ({large_s:.0f}s); ratio {large / small:.2f}x for {args.scale}x "
                  f"the input (target <= 1.5x: {'met' if large / small <= 1.5 else 'NOT met'})")
            markdown += ["", f"Peak RSS of a fresh build process (VmHWM), at {args.scale}x the "
                         "queries, same shape:", "", *bench_out.table(
                             ["queries", "peak RSS", "seconds"],
                             [[f"{small_n:,}", gib(small), f"{small_s:.0f}"],
                              [f"{large_n:,}", gib(large), f"{large_s:.0f}"]]),
                         "", f"Ratio {large / small:.2f}x for {args.scale}x the input (target "
                         f"at most 1.5x: {'met' if large / small <= 1.5 else 'not met'})."]
            raw_numbers["rss"] = {"queries": [small_n, large_n], "peak_bytes": [small, large],
                                  "seconds": [small_s, large_s]}
        if "workers" in parts:
            n = args.worker_queries or args.queries
            path = input_of(n)
            mp = "--direct_running_mode=multi_processing"
            walls: dict[int, list[float]] = {1: [], 2: []}
            split: dict[int, list[dict]] = {1: [], 2: []}
            for r in range(args.repeat):  # alternating, so a slow spell hits both alike
                for workers in (1, 2):
                    seconds: dict = {}
                    wall, _ = child_build(path, os.path.join(workdir, f"w{workers}-{r}"), args,
                                          [mp, f"--direct_num_workers={workers}"], seconds)
                    shutil.rmtree(os.path.join(workdir, f"w{workers}-{r}"), ignore_errors=True)
                    walls[workers].append(wall)
                    split[workers].append(seconds)
            ratios = [a / b for a, b in zip(walls[1], walls[2])]
            one_s, two_s, ratio = (float(np.median(walls[1])), float(np.median(walls[2])),
                                   float(np.median(ratios)))
            print(f"workers ({n} queries, {args.repeat} alternating pairs): 1 worker "
                  f"{one_s:.1f}s, 2 workers {two_s:.1f}s (medians); speed-up median "
                  f"{ratio:.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x (target >= 1.6x: "
                  f"{'met' if ratio >= 1.6 else 'NOT met'}; {cores} cores)")
            print("  where the time goes (medians, s): part, 1 worker, 2 workers, ratio")
            rows = [["whole build", f"{one_s:.1f}", f"{two_s:.1f}", f"{ratio:.2f}x"]]
            for name in ("start", "scan", "pass1", "between", "pass2", "merge", "finish"):
                a = float(np.median([p.get(name, 0.0) for p in split[1]]))
                b = float(np.median([p.get(name, 0.0) for p in split[2]]))
                print(f"  {name:8s} {a:6.1f} {b:6.1f}  {a / b if b else float('nan'):.2f}x")
                rows.append([name, f"{a:.1f}", f"{b:.1f}",
                             f"{a / b:.2f}x" if b >= 0.05 else "-"])
            markdown += ["", f"Two multi-processing workers against one, {n:,} queries, "
                         f"{args.repeat} alternating pairs (medians, s; parts from "
                         "`benchmarks/stage_times.py`):", "",
                         *bench_out.table(["part", "1 worker", "2 workers", "ratio"], rows),
                         "", f"Speed-up {ratio:.2f}x (pairs {min(ratios):.2f}x.."
                         f"{max(ratios):.2f}x; target at least 1.6x: "
                         f"{'met' if ratio >= 1.6 else 'not met'})."]
            raw_numbers["workers"] = {"queries": n, "walls": walls, "ratios": ratios,
                                      "parts": split}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bench_out.write(args.out, "bench_build.py", args, facts, markdown, raw_numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
