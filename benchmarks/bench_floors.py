"""Benchmark: the whole feature build against the sum of its stages' floors on this machine.

Input: `bench_build.make_input` (queries x documents x features in QUERY_SCHEMA as Parquet,
graded labels 0-4; default 20,000 x 100 x 136), built with k=16 fixed rollouts per query
(`bench_build.child_build`: a fresh `build_curriculum` process, FnApiRunner in memory, split
into its parts by `benchmarks/stage_times.py`).

Floors, each a tight loop in this process over the same data (no validation, no Beam, nothing
the stage does not need):
  read     `pyarrow.parquet.read_table` of the whole input, then its features, labels and
           document counts as padded numpy arrays (views of the flat buffers where possible);
  forward  the base policy (`difficulty.policy.base_policy`, the build's model and seed) over
           every query, --batch-size queries per `score_in_chunks` call (the build's inference
           function), torch's default threads;
  sample   Gumbel top-k of k rankings per query: one numpy generator draws [B, k, D] float32
           Gumbel noise, `torch.topk` keeps the top 10 of scores + noise (all NDCG@10 reads);
  ndcg     NDCG@10 of those rankings (linear gain, as `ndcg@10>=0.7`) with numpy gathers, and
           the per-query pass counts at 0.7;
  write    `pyarrow.parquet.write_table` of every Parquet file the build wrote (read back into
           memory first, untimed) with each file's own compression: the same output bytes.
Reported: the build's wall time against the sum of the floors, median of alternating (build,
floors) pairs, each floor's median, and the build's parts. Target (issue 28): the build within 2x
of the sum of the floors.

Usage:
  python benchmarks/bench_floors.py --repeat 2 --out runs/bench/floors   # 20,000 x 100 x 136, k=16
  python benchmarks/bench_floors.py --smoke --out /tmp/floors   # tiny, seconds
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
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import bench_build  # noqa: E402
from bench_build import child_build, make_input  # noqa: E402
from bench_out import add_arguments, load_now, machine, spread, write  # noqa: E402
from difficulty.policy import base_policy, score_in_chunks  # noqa: E402
from stage_times import PARTS  # noqa: E402

FLOORS = ("read", "forward", "sample", "ndcg", "write")
CUT, TAU = 10, 0.7  # the build's default reward, ndcg@10>=0.7
TARGET = 2.0


def _padded(column, lengths: np.ndarray, width: int, inner: int | None = None) -> np.ndarray:
    """A list<...> column as a padded [Q, width(, inner)] array (a reshape when every query has
    `width` items)."""
    flat = column
    for _ in range(2 if inner else 1):
        flat = pc.list_flatten(flat)
    values = flat.to_numpy()
    if not values.flags.writeable:  # torch.from_numpy wants a writable buffer
        values = values.copy()
    shape = (len(lengths), width) + ((inner,) if inner else ())
    if np.all(lengths == width):
        return values.reshape(shape)
    out = np.zeros(shape, values.dtype)
    out[np.arange(width)[None, :] < lengths[:, None]] = values.reshape((-1,) + shape[2:])
    return out


def floors(path: str, run: str, scratch: str, args) -> dict[str, float]:
    """Seconds of each floor (module docstring) on the input at `path` and the build's output
    files under `run` (rewritten under `scratch`)."""
    seconds = {}
    started = time.perf_counter()
    table = pq.read_table(path)
    lengths = pc.list_value_length(table.column("labels")).to_numpy(zero_copy_only=False)
    width = int(lengths.max())
    n_features = len(table.column("features")[0][0])
    features = _padded(table.column("features"), lengths, width, n_features)
    labels = _padded(table.column("labels"), lengths, width).astype(np.float64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    model = base_policy(n_features, args.seed).eval()
    scores = np.concatenate([
        score_in_chunks(model, features[s:s + args.batch_size], mask[s:s + args.batch_size])
        for s in range(0, len(lengths), args.batch_size)])
    seconds["forward"] = time.perf_counter() - started

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    cut = min(CUT, width)
    top = np.empty((len(lengths), args.k, cut), np.int64)
    for s in range(0, len(lengths), args.batch_size):
        block = scores[s:s + args.batch_size]
        noise = rng.gumbel(size=(len(block), args.k, width)).astype(np.float32)
        perturbed = torch.from_numpy(block[:, None, :] + noise)
        perturbed.masked_fill_(~torch.from_numpy(mask[s:s + args.batch_size, None, :]),
                               float("-inf"))
        top[s:s + len(block)] = torch.topk(perturbed, cut, dim=-1).indices.numpy()
    seconds["sample"] = time.perf_counter() - started

    started = time.perf_counter()
    discount = 1.0 / np.log2(np.arange(2, cut + 2))
    gains = np.where(mask, labels, 0.0)
    dcg = (np.take_along_axis(gains[:, None, :], top, axis=-1) * discount).sum(-1)
    idcg = (-np.sort(-gains, axis=-1)[:, :cut] * discount).sum(-1)[:, None]
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    passes = ((ndcg >= TAU - 1e-12) & (idcg > 0)).sum(-1)
    seconds["ndcg"] = time.perf_counter() - started

    outputs = []  # (relative path, table, compression), read before the clock starts
    for folder, _, names in os.walk(run):
        for name in sorted(names):
            if name.endswith(".parquet"):
                file = os.path.join(folder, name)
                meta = pq.ParquetFile(file).metadata
                codec = (meta.row_group(0).column(0).compression.lower()
                         if meta.num_row_groups else "none")
                outputs.append((os.path.relpath(file, run), pq.read_table(file), codec))
    started = time.perf_counter()
    for rel, out, codec in outputs:
        target = os.path.join(scratch, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        pq.write_table(out, target, compression=codec)
    seconds["write"] = time.perf_counter() - started
    seconds["passes_mean"] = float(passes.mean())  # a use of the result (not a time)
    return seconds


def render(result: dict, args: argparse.Namespace) -> list[str]:
    """results.md's lines (bench_out adds the machine line): the build, each floor and their
    sum, medians (min-max) over the pairs."""
    ratio = float(np.median(result["ratio"]))
    lines = [
        f"Feature build vs the sum of its stages' floors ({args.queries:,} queries x "
        f"{args.docs} documents x {args.features} features, Parquet, k={args.k}; torch "
        f"{torch.get_num_threads()} threads).",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| build (fresh process) | {spread(result['build_s'], '.1f')} |",
    ]
    for name in FLOORS:
        lines.append(f"| floor: {name} | {spread(result['floors'][name], '.2f')} |")
    lines += [
        f"| sum of the floors | {spread(result['floor_sum_s'], '.1f')} |",
        f"| build / sum | {spread(result['ratio'], '.2f')}x |",
        "",
        "Build parts (stage_times.py, s): " + ", ".join(
            f"{name} {float(np.median([p.get(name, 0.0) for p in result['parts']])):.1f}"
            for name in PARTS) + ".",
        "",
        f"Medians (min-max) over {result['pairs']} alternating pairs. Build / sum of floors: "
        f"{ratio:.2f}x (target <= {TARGET:g}x: {'met' if ratio <= TARGET else 'NOT met'}).",
    ]
    return lines


def parse_args(argv):
    """bench_build's arguments (--queries, --docs, --features, --k, --batch-size, --seed,
    --repeat: the alternating build/floors pairs, --workdir) plus --smoke and --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)  # --out, --smoke (200 x 20 x 16, two pairs)
    ours, rest = parser.parse_known_args(argv)
    args = bench_build.parse_args(rest)
    args.smoke, args.out, args.pairs = ours.smoke, ours.out, args.repeat
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.queries, args.docs, args.features, args.pairs = 200, 20, 16, 2  # spreads, as measured
    args.format = "parquet"  # make_input's layout
    facts = machine()
    print(f"floors: {args.queries} x {args.docs} x {args.features}, k={args.k}, {args.pairs} "
          f"pairs; {facts['cores']} cores, load {facts['load_average'][:1]}", flush=True)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="bench_floors-", dir=args.workdir)
    result: dict = {"pairs": args.pairs, "build_s": [], "parts": [], "floor_sum_s": [],
                    "ratio": [], "floors": {name: [] for name in FLOORS}}
    try:
        path = make_input(workdir, args.queries, args)
        for r in range(args.pairs):  # alternating, so a slow spell hits both alike
            run, scratch = os.path.join(workdir, f"run-{r}"), os.path.join(workdir, f"w-{r}")
            parts: dict = {}
            wall, _ = child_build(path, run, args, ["--direct_running_mode=in_memory"], parts)
            spent = floors(path, run, scratch, args)
            total = sum(spent[name] for name in FLOORS)
            result["build_s"].append(wall)
            result["parts"].append(parts)
            result["floor_sum_s"].append(total)
            result["ratio"].append(wall / total)
            for name in FLOORS:
                result["floors"][name].append(spent[name])
            print(f"pair {r + 1}: build {wall:.1f}s, floors " + ", ".join(
                f"{n} {spent[n]:.2f}" for n in FLOORS) + f" (sum {total:.1f}s): "
                f"{wall / total:.2f}x", flush=True)
            shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = render(result, args)
    print("\n".join(lines))
    write(args.out, "bench_floors.py", args, facts, lines,
          {"result": result, "load_after": load_now(),
           "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
