"""Benchmark: difficulty scoring through the Beam pipeline vs. a raw vectorized torch loop.

Generates a synthetic reranking set (queries x documents x features, graded labels 0-4) in the
canonical QUERY_SCHEMA as Parquet, then times in one process:

  (a) pipeline: Parquet splits -> [spread] -> ScoreSplitFn (read, validate, base policy, fixed k,
      non-adaptive) -> difficulty columns -> WriteShards, on FnApiRunner
      (pipelines.options.pipeline_options), built by `build_scoring`;
  (b) raw: the same policy model over the same data held in memory as padded [B, D] tensors,
      Gumbel top-k sampling, NDCG@10 >= 0.7 pass, per-query pass counts, in plain torch.

Both do one round of k rollouts per query over batches of --batch-size queries. Each is repeated,
interleaved (medians reported; a phase stops repeating once a run takes over two minutes). Prints
the ratio pipeline / raw, the core count and peak memory; checks that every pipeline run wrote
one row per query with the same pass counts.

Usage:
  python benchmarks/bench_scoring.py                             # 20,000 x 100 x 136, k=16
  python benchmarks/bench_scoring.py --queries 300 --repeats 1   # smoke run (~15 s)
  python benchmarks/bench_scoring.py --spread --workers 2        # with the Reshuffle build() adds
                                                                 # when it has several workers
Unknown arguments are passed to Beam's PipelineOptions (--direct_running_mode=multi_threading
fails in Beam 2.77 on the Reshuffle with "Invalid PaneInfoEncoding: 5").
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import bench_out  # noqa: E402
from data_contracts.schema import QUERY_SCHEMA, conform  # noqa: E402
from difficulty.policy import base_policy  # noqa: E402
from difficulty.rewards import parse_reward  # noqa: E402
from pipelines.config import CurriculumConfig  # noqa: E402
from pipelines.decide import difficulty_rows  # noqa: E402
from pipelines.options import pipeline_options  # noqa: E402
from pipelines.score import ScoreSplitFn  # noqa: E402
from pipelines.splits import plan_splits  # noqa: E402
from pipelines.write import WriteShards, tag  # noqa: E402

REWARD = "ndcg@10>=0.7"
LONG_RUN_S = 120.0  # a phase whose run takes longer than this is not repeated further


# --- data ------------------------------------------------------------------------------------
def make_data(n_queries: int, n_docs: int, n_features: int, seed: int) -> dict:
    """Padded in-memory arrays: features [Q, D, F] float32, labels [Q, D] float32, query ids.

    Each query has a relevance level drawn uniformly in [0, 4]; its documents' graded labels
    are that level plus unit Gaussian noise, rounded and clipped to 0..4. The untrained base
    policy scores documents almost uniformly, so its pass rate is set by the labels: queries
    range from hopeless (few relevant documents) to easy (most highly relevant). Features are
    Gaussian; the first quarter also carry the label (a signal a trained policy could learn).
    """
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.0, 4.0, size=(n_queries, 1)).astype(np.float32)
    labels = level + rng.standard_normal((n_queries, n_docs), dtype=np.float32)
    labels = np.clip(np.rint(labels), 0, 4).astype(np.float32)
    features = rng.standard_normal((n_queries, n_docs, n_features), dtype=np.float32)
    features[..., :max(1, n_features // 4)] += 0.5 * labels[..., None]
    query_ids = [f"bench-{i:07d}" for i in range(n_queries)]
    return {"features": features, "labels": labels, "query_ids": query_ids}


def _list_array(offsets_len: int, count: int, values: pa.Array) -> pa.Array:
    """A list array of `count` rows of `offsets_len` values each (int32 offsets)."""
    offsets = pa.array(np.arange(0, (count + 1) * offsets_len, offsets_len, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def to_arrow(data: dict, start: int, stop: int) -> pa.Table:
    """Queries [start, stop) as a table in QUERY_SCHEMA, built from flat buffers (no row loop)."""
    features = data["features"][start:stop]
    labels = data["labels"][start:stop]
    q, d, f = features.shape
    flat = pa.array(features.reshape(-1), type=pa.float32())
    feature_col = _list_array(d, q, _list_array(f, q * d, flat))
    doc_names = np.array([f"d{j:04d}" for j in range(d)], dtype=object)
    doc_col = _list_array(d, q, pa.array(np.tile(doc_names, q), type=pa.string()))
    label_col = _list_array(d, q, pa.array(labels.reshape(-1), type=pa.float32()))
    columns = {
        "query_id": pa.array(data["query_ids"][start:stop], pa.string()),
        "doc_ids": doc_col, "features": feature_col, "labels": label_col,
        "teacher_scores": pa.nulls(q, pa.list_(pa.float32())),
        "teacher_order": pa.nulls(q, pa.list_(pa.int32())),
        "source": pa.array(["bench"] * q, pa.string()),
        "split": pa.array(["train"] * q, pa.string()),
    }
    return conform(pa.table(columns), QUERY_SCHEMA)  # new nullable columns come as nulls


def write_parquet(data: dict, path: str, chunk: int = 1024) -> None:
    """Writes the data in QUERY_SCHEMA, `chunk` queries per row group, uncompressed."""
    n = len(data["query_ids"])
    with pq.ParquetWriter(path, QUERY_SCHEMA, compression="none", use_dictionary=False) as writer:
        for start in range(0, n, chunk):
            writer.write_table(to_arrow(data, start, min(n, start + chunk)))


# --- (a) the Beam pipeline ---------------------------------------------------------------------
def build_scoring(p: beam.Pipeline, config: CurriculumConfig, root: str, spread: bool):
    """splits -> [spread] -> read, validate, score (pass 1's ScoreSplitFn) -> difficulty shards.

    The same transforms as pass 1 of pipelines.graph.build, without routing or pass 2.
    `spread` reshuffles the splits (tiny elements) so direct_num_workers > 1 read in parallel.
    """
    splits = p | "Splits" >> beam.Create(plan_splits(config))
    if spread:
        splits = splits | "Spread" >> beam.Reshuffle()
    small = splits | "ReadAndScore" >> beam.ParDo(ScoreSplitFn(config, root)).with_outputs(
        ScoreSplitFn.QUARANTINE, ScoreSplitFn.STATS, main="small")
    difficulty = small.small | "DifficultyColumns" >> beam.Map(difficulty_rows)
    return (difficulty | "TagDifficulty" >> tag("difficulty")
            | "Write_difficulty" >> WriteShards(config, root))


def run_pipeline(config: CurriculumConfig, root: str, beam_args: list[str], spread: bool
                 ) -> None:
    options, runner = pipeline_options(beam_args)
    with beam.Pipeline(runner=runner, options=options) as p:
        build_scoring(p, config, root, spread)


def read_difficulty(root: str) -> pa.Table:
    folder = os.path.join(root, "difficulty")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if f.endswith(".parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.sort_by("query_id")


# --- (b) the raw torch loop ----------------------------------------------------------------------
def raw_scoring(data: dict, model: torch.nn.Module, k: int, batch_size: int, seed: int,
                temperature: float = 1.0) -> np.ndarray:
    """Per-query pass counts of k Gumbel top-k rankings under NDCG@cut >= tau, plain torch."""
    spec = parse_reward(REWARD)
    cut, tau = spec.k, spec.tau
    features, labels = data["features"], data["labels"]
    n, d = labels.shape
    cut = min(cut, d)
    discount = 1.0 / torch.log2(torch.arange(2, cut + 2, dtype=torch.float64))
    generator = torch.Generator().manual_seed(seed)
    counts = np.zeros(n, dtype=np.int64)
    mask_all = torch.ones((min(batch_size, n), d), dtype=torch.bool)  # every document is real
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = torch.from_numpy(features[start:start + batch_size])
            lab = torch.from_numpy(labels[start:start + batch_size]).to(torch.float64)
            b = x.shape[0]
            mask = mask_all[:b]
            scores = model(x, mask)                                          # [B, D]
            gumbel = torch.empty((b, k, d)).exponential_(generator=generator).log_().neg_()
            perturbed = (scores.unsqueeze(1) / temperature + gumbel).masked_fill_(
                ~mask.unsqueeze(1), -1e30)
            top = perturbed.topk(cut, dim=-1).indices                          # [B, k, cut]
            gains = torch.gather(lab.unsqueeze(1).expand(-1, k, -1), 2, top)
            dcg = (gains * discount).sum(-1)
            idcg = (lab.topk(cut, dim=-1).values * discount).sum(-1, keepdim=True)
            ndcg = torch.where(idcg > 0, dcg / idcg.clamp(min=1e-300), torch.zeros_like(dcg))
            counts[start:start + b] = (ndcg >= tau - 1e-12).sum(-1).numpy()
    return counts


# --- memory ------------------------------------------------------------------------------------
def ru_maxrss() -> int:
    """getrusage's peak RSS in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Peak resident memory of this process over a block: VmHWM after resetting it (Linux
    clear_refs), else the highest VmRSS seen by a sampling thread.

    Resetting VmHWM also resets ru_maxrss, so the process peak before each reset is kept in
    `PeakRSS.process_peak`.
    """

    process_peak = 0

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def _status(key: str) -> int:
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._status("VmRSS"))

    def __enter__(self):
        PeakRSS.process_peak = max(PeakRSS.process_peak, ru_maxrss())
        self._reset = False
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current RSS
            self._reset = True
        except OSError:
            pass
        self.peak = self._status("VmRSS")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._status("VmRSS"))
        if self._reset:
            self.peak = max(self.peak, self._status("VmHWM"))
        PeakRSS.process_peak = max(PeakRSS.process_peak, ru_maxrss(), self.peak)
        return False


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB"


# --- main --------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--features", type=int, default=136)
    parser.add_argument("--k", type=int, default=16, help="rollouts per query")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="Beam direct_num_workers")
    parser.add_argument("--spread", action="store_true",
                        help="add build()'s Reshuffle after validation (needed for --workers > 1 "
                             "to score in parallel; encodes every batch once)")
    parser.add_argument("--batch-size", type=int, default=256, help="queries per batch (both)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the input and outputs go "
                                                        "(default: a temporary folder)")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip the extra, untimed pipeline run under tracemalloc")
    bench_out.add_arguments(parser)
    args, beam_args = parser.parse_known_args(argv)
    if args.smoke:
        args.queries, args.docs, args.features, args.repeats = 100, 10, 8, 1
        args.no_tracemalloc = True
    return args, beam_args


def main(argv=None) -> int:
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    args, beam_args = parse_args(argv)
    facts = bench_out.machine()
    beam_args = [f"--direct_num_workers={args.workers}"] + beam_args
    workdir = tempfile.mkdtemp(prefix="bench_scoring-", dir=args.workdir)
    cores = os.cpu_count()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"machine: {cores} cores ({affinity} usable), torch threads "
          f"{torch.get_num_threads()}, python {sys.version.split()[0]}, beam {beam.__version__}, "
          f"torch {torch.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}")
    print(f"data: {args.queries} queries x {args.docs} docs x {args.features} features, "
          f"k={args.k}, reward {REWARD}, batch {args.batch_size}, spread {args.spread}, "
          f"beam args {beam_args}")
    if args.workers != 1 and not args.spread:
        print("note: without --spread the whole input is one bundle, so extra workers idle")
    try:
        config = CurriculumConfig(inputs=[], input_format="parquet", policy="base",
                                  reward=REWARD, k=args.k, k_max=args.k, adaptive=False,
                                  seed=args.seed, batch_size=args.batch_size,
                                  out=os.path.join(workdir, "unused"))
        spec = config.policy_spec()
        model = base_policy(args.features, spec.seed, spec.hidden).eval()  # as PolicyScorer

        t0 = time.perf_counter()
        data = make_data(args.queries, args.docs, args.features, args.seed)
        t1 = time.perf_counter()
        path = os.path.join(workdir, "queries.parquet")
        write_parquet(data, path)
        config.inputs = [path]
        t2 = time.perf_counter()
        print(f"generated in {t1 - t0:.1f}s, wrote {gib(os.path.getsize(path))} Parquet in "
              f"{t2 - t1:.1f}s", flush=True)

        times = {"pipeline": [], "raw": []}
        peaks = {"pipeline": 0, "raw": 0}
        done = {"pipeline": False, "raw": False}
        pipe_counts = raw_counts = None
        for r in range(args.repeats):
            if not done["pipeline"]:
                root = os.path.join(workdir, f"run-{r}")
                with PeakRSS() as peak:
                    start = time.perf_counter()
                    run_pipeline(config, root, beam_args, args.spread)
                    elapsed = time.perf_counter() - start
                peaks["pipeline"] = max(peaks["pipeline"], peak.peak)
                times["pipeline"].append(elapsed)
                table = read_difficulty(root)
                shutil.rmtree(root)
                if table.num_rows != args.queries:
                    raise RuntimeError(f"pipeline wrote {table.num_rows} rows, expected "
                                       f"{args.queries}")
                successes = table.column("successes").to_numpy()
                if pipe_counts is not None and not np.array_equal(successes, pipe_counts):
                    raise RuntimeError("pipeline runs disagree: results are not deterministic")
                pipe_counts = successes
                done["pipeline"] = elapsed > LONG_RUN_S
                print(f"  run {r + 1}: pipeline {elapsed:7.2f}s", flush=True)
            if not done["raw"]:
                with PeakRSS() as peak:
                    start = time.perf_counter()
                    raw_counts = raw_scoring(data, model, args.k, args.batch_size, args.seed + r)
                    elapsed = time.perf_counter() - start
                peaks["raw"] = max(peaks["raw"], peak.peak)
                times["raw"].append(elapsed)
                done["raw"] = elapsed > LONG_RUN_S
                print(f"  run {r + 1}: raw      {elapsed:7.2f}s", flush=True)

        traced = None
        if not args.no_tracemalloc:
            root = os.path.join(workdir, "run-traced")
            tracemalloc.start()
            run_pipeline(config, root, beam_args, args.spread)
            traced = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            shutil.rmtree(root)

        pipe_s, raw_s = statistics.median(times["pipeline"]), statistics.median(times["raw"])
        ratio = pipe_s / raw_s
        trials = args.k * args.queries
        both = np.stack([pipe_counts, raw_counts]).astype(float)
        corr = np.corrcoef(both)[0, 1] if both.std(1).min() > 0 else float("nan")
        print()
        print(f"pipeline: median {pipe_s:.2f}s over {len(times['pipeline'])} runs "
              f"{[round(t, 2) for t in times['pipeline']]}, {args.queries / pipe_s:,.0f} "
              f"queries/s")
        print(f"raw:      median {raw_s:.2f}s over {len(times['raw'])} runs "
              f"{[round(t, 2) for t in times['raw']]}, {args.queries / raw_s:,.0f} queries/s")
        print(f"ratio pipeline/raw: {ratio:.2f}x (target <= 2x: "
              f"{'met' if ratio <= 2.0 else 'NOT met'})")
        print(f"pass rate: pipeline {pipe_counts.sum() / trials:.4f}, raw "
              f"{raw_counts.sum() / trials:.4f}; per-query pass counts correlate {corr:.3f} "
              f"(independent random streams: close, not equal)")
        print(f"cores: {cores}")
        process = max(PeakRSS.process_peak, ru_maxrss())
        print(f"peak RSS: pipeline phase {gib(peaks['pipeline'])}, raw phase "
              f"{gib(peaks['raw'])}, process (ru_maxrss) {gib(process)}; the in-memory data "
              f"for the raw loop is {gib(data['features'].nbytes + data['labels'].nbytes)} and "
              f"stays resident throughout")
        if traced is not None:
            print(f"pipeline tracemalloc peak (Python and numpy allocations; Arrow and torch "
                  f"buffers are not traced): {gib(traced)}")
        print(f"arrow memory pool peak (whole process): "
              f"{gib(pa.default_memory_pool().max_memory() or 0)}")

        def row(name: str, seconds: list[float]) -> list[str]:
            median = statistics.median(seconds)
            return [name, f"{median:.2f}", f"{min(seconds):.2f}..{max(seconds):.2f}",
                    f"{args.queries / median:,.0f}", gib(peaks[name.split()[0]])]

        bench_out.write(args.out, "bench_scoring.py", args, facts, [
            f"Pass-1 scoring of {args.queries} queries x {args.docs} documents x "
            f"{args.features} features, k={args.k}, {args.workers} Beam worker(s):",
            "",
            *bench_out.table(["scoring", "median s", "range s", "queries/s", "peak RSS"], [
                row("pipeline (read Parquet, validate, sample, reward)", times["pipeline"]),
                row("raw (a vectorized torch loop over the data in memory)", times["raw"])]),
            "",
            f"Ratio pipeline/raw {ratio:.2f}x (target at most 2x: "
            f"{'met' if ratio <= 2.0 else 'not met'}).",
        ], {"seconds": times, "peak_rss_bytes": peaks, "ratio": ratio})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
